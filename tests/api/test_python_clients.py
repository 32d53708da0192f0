"""etcd's Python client libraries from PyPI, unchanged, against a 3-node cluster of node
processes serving etcd's API: etcd3gw (the JSON gateway, over requests) and aetcd (gRPC,
over grpcio's asyncio API). Each talks to a follower, so every write and linearizable
read is forwarded; what one member wrote another must show."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aetcd
import etcd3gw
import trio

from global_kv.cli import LocalCluster

T = TypeVar("T")


async def in_thread(fn: Callable[[], T], timeout: float = 60) -> T:
    """The blocking `fn` in a worker thread, bounded: abandoned (and failing) after `timeout`."""
    with trio.fail_after(timeout):
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


# -- etcd3gw: the JSON gateway ---------------------------------------------------------------


def gw_kv_and_txn(c: etcd3gw.Etcd3Client, other: etcd3gw.Etcd3Client) -> None:
    assert c.put("gw/a", "1") is True and c.put("gw/b", "2") is True
    assert c.get("gw/a") == [b"1"] and other.get("gw/b") == [b"2"]
    found = c.get_prefix("gw/")
    assert [(v, m["key"], m["version"]) for v, m in found] == [(b"1", b"gw/a", "1"), (b"2", b"gw/b", "1")]
    assert c.delete("gw/b") is True and c.delete("gw/b") is False
    assert other.get("gw/b") == []

    txn = {
        "compare": [{"key": b64("gw/a"), "result": "EQUAL", "target": "VALUE", "value": b64("1")}],
        "success": [{"request_put": {"key": b64("gw/a"), "value": b64("10")}}],
        "failure": [{"request_range": {"key": b64("gw/a")}}],
    }
    done = c.transaction(txn)
    assert done["succeeded"] is True and "response_put" in done["responses"][0], done
    done = c.transaction(txn)
    assert not done.get("succeeded"), done
    (kv,) = done["responses"][0]["response_range"]["kvs"]
    assert base64.b64decode(kv["value"]) == b"10" and kv["version"] == "2", done
    assert c.replace("gw/a", "10", "11") is True and c.replace("gw/a", "10", "12") is False
    assert c.create("gw/new", "x") is True and c.create("gw/new", "y") is False
    assert other.get("gw/a") == [b"11"] and other.get("gw/new") == [b"x"]


def gw_leases(c: etcd3gw.Etcd3Client, other: etcd3gw.Etcd3Client) -> None:
    lease = c.lease(60)
    assert lease.id > 0
    assert c.put("gw/leased", "x", lease=lease) is True
    assert lease.keys() == [b"gw/leased"]
    assert 50 <= lease.ttl() <= 60
    _, meta = other.get("gw/leased", metadata=True)[0]
    assert int(meta["lease"]) == lease.id
    assert lease.revoke() is True
    assert other.get("gw/leased") == [] and c.get("gw/leased") == []
    assert lease.ttl() == -1  # etcd answers a TimeToLive of a revoked lease with TTL -1
    # A keep-alive: one request on /v3/lease/keepalive, whose answer ends with it.
    kept = c.lease(60)
    assert kept.refresh() == 60 and 50 <= kept.ttl() <= 60
    assert kept.revoke() is True


def gw_cluster_state(c: etcd3gw.Etcd3Client, lead: etcd3gw.Etcd3Client, names: list[str], url: str) -> None:
    mine, theirs = c.status(), lead.status()
    assert mine["version"] == "3.5.0" and "errors" not in mine, mine
    assert mine["leader"] == theirs["leader"] == theirs["header"]["member_id"], (mine, theirs)
    assert mine["header"]["member_id"] != mine["leader"]
    members = c.members()
    assert sorted(m["name"] for m in members) == sorted(names), members
    assert {m["ID"] for m in members} >= {mine["header"]["member_id"], mine["leader"]}
    assert [m["name"] for m in members if url in m.get("clientURLs", [])] != [], members


def gw_watch(c: etcd3gw.Etcd3Client, other: etcd3gw.Etcd3Client) -> None:
    # From the next revision on, so a put that beats the watch's creation is still seen.
    start = int(c.status()["header"]["revision"]) + 1
    events, cancel = c.watch_prefix("gw/w/", start_revision=start)
    timer = threading.Timer(20, cancel)  # bounds the iterator's blocking wait
    timer.start()
    try:
        assert other.put("gw/w/x", "1") is True
        assert other.delete("gw/w/x") is True
        seen = []
        for event in events:
            seen.append((event.get("type", "PUT"), event["kv"]["key"], event["kv"].get("value", b"")))
            if len(seen) == 2:
                break
        assert seen == [("PUT", b"gw/w/x", b"1"), ("DELETE", b"gw/w/x", b"")], seen
    finally:
        timer.cancel()
        cancel()
    assert list(events) == []  # cancelled: the iterator ends


async def test_etcd3gw_on_a_follower() -> None:
    with trio.fail_after(180):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            clients = [etcd3gw.client(host="127.0.0.1", port=n.client_port or 0, timeout=10) for n in cluster.nodes]
            lead, f1, f2 = clients[leader], *(c for i, c in enumerate(clients) if i != leader)
            f1_url = next(n.client_url for i, n in enumerate(cluster.nodes) if i != leader)
            names = [n.name for n in cluster.nodes]
            await in_thread(lambda: gw_kv_and_txn(f1, f2))
            await in_thread(lambda: gw_cluster_state(f1, lead, names, f1_url or ""))
            await in_thread(lambda: gw_watch(f1, lead))
            await in_thread(lambda: gw_leases(f1, lead))


# -- aetcd: gRPC ---------------------------------------------------------------------------


async def ae_kv_and_txn(c: aetcd.Client, other: aetcd.Client) -> None:
    first = await c.put(b"ae/a", b"0")
    second = await c.put(b"ae/a", b"1", prev_kv=True)
    assert second.prev_kv is not None and second.prev_kv.value == b"0"
    assert second.header.revision == first.header.revision + 1
    await c.put(b"ae/b", b"2")
    got = await c.get(b"ae/a")
    assert got is not None and (got.value, got.version, got.mod_revision) == (b"1", 2, second.header.revision)
    assert (await other.get(b"ae/b")).value == b"2"  # type: ignore[union-attr]
    found = await c.get_prefix(b"ae/")
    assert found.count == 2 and [(kv.key, kv.value) for kv in found] == [(b"ae/a", b"1"), (b"ae/b", b"2")]
    gone = await c.delete(b"ae/b", prev_kv=True)
    assert gone is not None and gone.deleted == 1 and gone.prev_kv is not None and gone.prev_kv.value == b"2"
    assert await c.delete(b"ae/b") is None and await other.get(b"ae/b") is None

    tx = c.transactions
    compare = [tx.value(b"ae/a") == b"1", tx.version(b"ae/a") == 2]
    ok, responses = await c.transaction(compare, [tx.put(b"ae/a", b"10"), tx.get(b"ae/a")], [tx.get(b"ae/a")])
    assert ok is True and responses[1][0][0] == b"10", responses
    compare = [tx.value(b"ae/a") == b"1"]
    ok, responses = await c.transaction(compare, [tx.delete(b"ae/a")], [tx.get(b"ae/a")])
    assert ok is False and responses[0][0][0] == b"10" and responses[0][0][1].version == 3, responses
    assert (await other.get(b"ae/a")).value == b"10"  # type: ignore[union-attr]


async def ae_leases(c: aetcd.Client, other: aetcd.Client) -> None:
    lease = await c.lease(60)
    assert lease.id > 0 and lease.ttl == 60
    await c.put(b"ae/leased", b"x", lease=lease)
    assert await lease.keys() == [b"ae/leased"]
    assert 50 <= await lease.remaining_ttl() <= 60 and await lease.granted_ttl() == 60
    assert (await other.get(b"ae/leased")).lease == lease.id  # type: ignore[union-attr]
    reply = await lease.refresh()
    assert (reply.ID, reply.TTL) == (lease.id, 60)
    await lease.revoke()
    assert await other.get(b"ae/leased") is None and await c.get(b"ae/leased") is None


async def ae_watch_and_status(c: aetcd.Client, other: aetcd.Client, leader_name: str, names: list[str]) -> None:
    watch = await c.watch_prefix(b"ae/w/")  # returns once the member answered "created"
    await other.put(b"ae/w/x", b"1")
    await other.delete(b"ae/w/x")
    seen = []
    async with asyncio.timeout(20):
        async for event in watch:
            seen.append((event.kind, event.kv.key, event.kv.value))
            if len(seen) == 2:
                break
    assert seen == [("PUT", b"ae/w/x", b"1"), ("DELETE", b"ae/w/x", b"")], seen
    await watch.cancel()

    status = await c.status()
    assert status.version == "3.5.0" and status.raft_term >= 1 and status.raft_index >= 1
    assert status.leader is not None and status.leader.name == leader_name
    assert sorted([m.name async for m in c.members()]) == sorted(names)


async def test_aetcd_on_a_follower() -> None:
    with trio.fail_after(180):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            ports = [n.client_port or 0 for n in cluster.nodes]
            follower, other = (p for i, p in enumerate(ports) if i != leader)
            names = [n.name for n in cluster.nodes]

            def run(scenario: Callable[..., Any], *args: Any, peer: int = ports[leader]) -> Callable[[], None]:
                async def main() -> None:
                    async with (
                        aetcd.Client(host="127.0.0.1", port=follower, timeout=10) as c,
                        aetcd.Client(host="127.0.0.1", port=peer, timeout=10) as o,
                    ):
                        await scenario(c, o, *args)

                return lambda: asyncio.run(main())

            await in_thread(run(ae_kv_and_txn, peer=other))
            await in_thread(run(ae_leases))
            await in_thread(run(ae_watch_and_status, names[leader], names))
