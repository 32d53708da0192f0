"""Leases on a 3-node cluster: keys that vanish when their lease expires or is revoked,
keep-alives, process-owned leases that end with their actor, and a leader change that
neither restarts a lease's TTL nor cuts it short."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from global_kv import LeaseNotFound
from global_kv.client import GlobalClient, open_client

from .test_global_cluster import NAMES, cluster, leader_of


async def _gone(client: GlobalClient, key: str, within: float) -> float:
    """Seconds until `key` reads as absent (fails after `within`)."""
    start = trio.current_time()
    with trio.fail_after(within):
        while await client.get(key) is not None:
            await trio.sleep(0.05)
    return trio.current_time() - start


async def test_a_key_put_with_a_lease_vanishes_when_it_expires_and_keep_alives_hold_it() -> None:
    with trio.fail_after(30):
        async with cluster(lock_check_interval=20) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as client:
                lease = await client.lease_grant(0.6)
                put = await client.put_kv("svc/a", b"10.0.0.1", lease=lease.lease_id)
                assert (await client.range_kv("svc/a")).kvs[0].lease == lease.lease_id
                ttl = await client.lease_time_to_live(lease.lease_id, keys=True)
                assert 0 < ttl.ttl <= 0.6 and ttl.granted_ttl == 0.6 and ttl.keys == (b"svc/a",)
                assert await _gone(client, "svc/a", 3) < 1.5
                gone = await client.range_kv("svc/a", revision=put.header.revision)
                assert gone.kvs[0].value == b"10.0.0.1"  # its history stays until compacted
                with pytest.raises(LeaseNotFound):
                    await client.lease_keepalive(lease.lease_id)
                with pytest.raises(LeaseNotFound):
                    await client.put_kv("svc/b", b"x", lease=lease.lease_id)
                async with client.lease(0.6) as held:
                    await client.put_kv("svc/c", b"up", lease=held.lease_id)
                    await trio.sleep(1.5)  # 2.5 TTLs: the keep-alives hold it
                    assert await client.get("svc/c") == b"up"
                    assert held.lease_id in (await client.leases()).leases
                assert await client.get("svc/c") is None  # revoked on leaving the block
                assert (await client.lease_time_to_live(held.lease_id)).ttl == -1


class _Presence(e.Actor):
    """Registers itself under a key tied to its own life (a process-owned lease)."""

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        client = GlobalClient(NAMES, self, timeout=10)
        lease = await client.lease_grant(60.0, owner=self)
        await client.put_kv(request, b"here", lease=lease.lease_id)
        return lease.lease_id


async def test_a_process_owned_lease_ends_the_moment_its_owner_dies() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            node = nodes[NAMES[1]]
            worker = await node.spawn(_Presence)
            lease_id = await node.call(worker, "workers/1")
            async with open_client(nodes[NAMES[2]], NAMES) as client:
                assert await client.get("workers/1") == b"here"
                node.kill(worker)
                assert await _gone(client, "workers/1", 5) < 2  # not its 60 s TTL
                assert (await client.lease_time_to_live(lease_id)).ttl == -1


async def test_a_leader_change_neither_restarts_a_lease_nor_cuts_it_short() -> None:
    with trio.fail_after(40):
        async with cluster(lock_check_interval=20) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as probe:
                leader = await leader_of(probe)
            survivors = [n for n in NAMES if n != leader]
            async with open_client(nodes[survivors[0]], survivors, timeout=10) as client:
                lease = await client.lease_grant(3.0)
                granted_at = trio.current_time()
                await client.put_kv("ephemeral", b"1", lease=lease.lease_id)
                await trio.sleep(1.0)
                await nodes[leader].application_stop("global")
                await client.put("sync", b"new leader")  # a new leader serves
                left = (await client.lease_time_to_live(lease.lease_id)).ttl
                elapsed = trio.current_time() - granted_at
                # Not restarted (etcd would answer ~3 s here) and not cut short.
                assert 0 < left <= 3.0 - elapsed + 0.3, (left, elapsed)
                assert await client.get("ephemeral") == b"1"
                waited = await _gone(client, "ephemeral", 6)
                ended = trio.current_time() - granted_at
                assert 2.9 <= ended <= 4.5, (ended, waited)
