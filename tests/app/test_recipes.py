"""Elections and semaphores for any client, on a 3-node cluster: a campaign that waits
its turn, an observer that sees every leader and value in order, resign and lease loss
handing over, and a semaphore's permits, waiters, timeouts and owner-death release."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from global_kv import LockTimeout
from global_kv.client import GlobalClient, NotElected, open_client

from .test_global_cluster import NAMES, cluster


async def test_an_election_observed_by_a_second_process_sees_each_leader_in_turn() -> None:
    with trio.fail_after(40):
        async with cluster() as nodes:
            async with (
                open_client(nodes[NAMES[0]], NAMES) as a,
                open_client(nodes[NAMES[1]], NAMES) as b,
                open_client(nodes[NAMES[2]], NAMES) as watcher,
            ):
                seen: list[Any] = []
                lease_a = (await a.lease_grant(30.0)).lease_id
                lease_b = (await b.lease_grant(30.0)).lease_id
                async with trio.open_nursery() as nursery:

                    async def observe() -> None:
                        async for leader in watcher.election("jobs").observe():
                            seen.append(None if leader is None else leader.value)
                            if seen[-1] is None and len(seen) > 1:
                                return

                    nursery.start_soon(observe)
                    election_a, election_b = a.election("jobs"), b.election("jobs")
                    await election_a.campaign(b"a", lease_a)
                    elected_b = trio.Event()

                    async def campaign_b() -> None:
                        await election_b.campaign(b"b", lease_b)
                        elected_b.set()

                    nursery.start_soon(campaign_b)
                    await trio.sleep(0.5)
                    assert not elected_b.is_set()  # waits behind a
                    assert (await watcher.election("jobs").leader()).value == b"a"  # type: ignore[union-attr]
                    await election_a.proclaim(b"a2", lease_a)
                    await election_a.resign()
                    with pytest.raises(NotElected):
                        await election_a.proclaim(b"again", lease_a)
                    with trio.fail_after(5):
                        await elected_b.wait()
                    await b.lease_revoke(lease_b)  # b's lease ends: nobody leads
                assert seen[0] in (None, b"a") and seen[-3:] == [b"a2", b"b", None], seen


class _PermitHolder(e.Actor):
    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        client = GlobalClient(NAMES, self, timeout=10)
        handle = await client.semaphore("pool", 2).acquire(ttl=60.0)
        return handle.token


async def test_a_semaphore_serves_its_permits_in_order_and_frees_one_when_its_owner_dies() -> None:
    with trio.fail_after(40):
        async with cluster() as nodes:
            holder = await nodes[NAMES[1]].spawn(_PermitHolder)
            first = await nodes[NAMES[1]].call(holder, "acquire")
            async with open_client(nodes[NAMES[0]], NAMES) as a, open_client(nodes[NAMES[2]], NAMES) as b:
                pool_a, pool_b = a.semaphore("pool", 2), b.semaphore("pool", 2)
                second = await pool_a.acquire(ttl=60.0)
                assert second.token > first
                with pytest.raises(LockTimeout):
                    await pool_b.acquire(ttl=60.0, timeout=0.5)  # both permits held
                assert len(await pool_b.holders()) == 2
                got: list[int] = []
                async with trio.open_nursery() as nursery:

                    async def wait_for_one() -> None:
                        async with pool_b.hold(ttl=2.0) as handle:
                            got.append(handle.token)

                    nursery.start_soon(wait_for_one)
                    await trio.sleep(0.3)
                    nodes[NAMES[1]].kill(holder)  # its process-owned lease ends with it
                assert got and got[0] > second.token
                await pool_a.release(second)
                assert await pool_a.holders() == []


async def test_a_first_campaigner_leads_at_once_and_campaigning_again_with_its_lease_keeps_its_place() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes, open_client(nodes[NAMES[0]], NAMES) as a:
            lease = (await a.lease_grant(30.0)).lease_id
            election = a.election("solo")
            kv = await election.campaign(b"v1", lease)  # nobody ahead: answered by the one txn
            assert (kv.key, kv.value, kv.lease, kv.create_revision) == (election.key, b"v1", lease, election.revision)
            again = a.election("solo")
            kv2 = await again.campaign(b"v2", lease)  # the same key: its place, the new value
            assert (kv2.key, kv2.create_revision, kv2.value) == (kv.key, kv.create_revision, b"v2")
            assert (await a.election("solo").leader()).value == b"v2"  # type: ignore[union-attr]
