"""A 3-node Global cluster in one OS process over real loopback websockets."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv import CASFailed, Compacted, ConfChangeRejected, InvalidRequest, NotLeader, Unavailable
from global_kv.app import Application, GlobalConfig, GlobalConfigError
from global_kv.client import GlobalClient, open_client, ops
from global_kv.protocol import AddPeerRequest, MetricsRequest, PutRequest, SessionTag

NAMES = ("g1@localhost", "g2@localhost", "g3@localhost")
COOKIE = "global-test"


@asynccontextmanager
async def cluster(start_apps: bool = True, **config: Any) -> AsyncIterator[dict[str, e.Node]]:
    bootstrap = tuple(ProcessID("global", n) for n in NAMES)
    nodes: dict[str, e.Node] = {}
    stops: dict[str, trio.Event] = {}
    async with trio.open_nursery() as nursery:

        async def run_node(name: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            stops[name] = trio.Event()
            async with e.start_node(name, e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as node:
                nodes[name] = node
                task_status.started()
                await stops[name].wait()

        for name in NAMES:
            await nursery.start(run_node, name)
        for a in NAMES:
            for b in NAMES:
                if a != b:
                    nodes[a].add_route(b, f"ws://127.0.0.1:{nodes[b].port}")
        for name in NAMES:
            if start_apps:
                await nodes[name].application_start(Application(GlobalConfig(bootstrap=bootstrap, **config)))
        try:
            yield nodes
        finally:
            for ev in stops.values():
                ev.set()


async def leader_of(client: GlobalClient) -> str:
    with trio.fail_after(5):
        while True:
            status = await client.status()
            if status.leader is not None:
                return status.leader.node
            await trio.sleep(0.02)


async def test_kv_operations_through_any_member() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            for name in NAMES:
                async with open_client(nodes[name], [name]) as client:  # one member: forwarding
                    await client.put(f"key-{name}", name.encode())
            async with open_client(nodes[NAMES[0]], NAMES) as c:
                for name in NAMES:
                    assert await c.get(f"key-{name}") == name.encode()
                assert await c.get("missing") is None
                await c.cas("counter", None, b"1")
                await c.cas("counter", b"1", b"2")
                with pytest.raises(CASFailed) as info:
                    await c.cas("counter", b"1", b"3")
                assert info.value.current == b"2"
                await c.batch_put({"p/1": b"a", "p/2": b"b", "q": b"c"})
                assert await c.prefix_scan("p/") == [(b"p/1", b"a"), (b"p/2", b"b")]
                assert await c.range("p/", "q", limit=1) == [(b"p/1", b"a")]
                await c.batch_delete(["p/1", "q"])
                await c.delete("p/2")
                assert await c.prefix_scan("p/") == []
                for level in ("linearizable", "read_index", "follower"):
                    assert await c.get("counter", consistency=level) in (b"2", None if level == "follower" else b"2")
                status = await c.status(NAMES[1])
                assert status.commit_index >= status.last_applied > 0 and status.storage_ok


async def test_read_index_and_linearizable_reads_see_the_latest_write() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as writer:
                leader = await leader_of(writer)
                follower = next(n for n in NAMES if n != leader)
                async with open_client(nodes[follower], [follower]) as reader:
                    for i in range(20):
                        await writer.put("x", str(i).encode())
                        assert await reader.get("x", consistency="read_index") == str(i).encode()
                        assert await reader.get("x", consistency="linearizable") == str(i).encode()


async def test_any_member_reads_a_key_as_it_was_at_a_past_revision() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as client:
                await client.put("cfg/a", b"1")
                first = await client.range_kv("cfg/a")
                await client.put("cfg/a", b"2")
                await client.put("cfg/b", b"3")
                then = first.kvs[0].mod_revision
                for level in ("linearizable", "read_index"):
                    old = await client.range_kv("cfg/", b"cfg0", revision=then, consistency=level)
                    assert [(kv.key, kv.value, kv.version) for kv in old.kvs] == [(b"cfg/a", b"1", 1)]
                    now = await client.range_kv("cfg/", b"cfg0", limit=1, consistency=level)
                    assert now.header.revision == then + 2 and (now.more, now.count) == (True, 2)
                    assert [(kv.key, kv.value, kv.version, kv.create_revision) for kv in now.kvs] == [
                        (b"cfg/a", b"2", 2, then)
                    ]
                    newest = await client.range_kv(
                        "cfg/", b"cfg0", limit=1, sort_target="mod", sort_order="descend", keys_only=True
                    )
                    assert [(kv.key, kv.value) for kv in newest.kvs] == [(b"cfg/b", b"")] and newest.more


async def test_etcds_put_delete_range_and_compact_through_a_follower() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as writer:
                leader = await leader_of(writer)
                follower = next(n for n in NAMES if n != leader)
                async with open_client(nodes[follower], [follower]) as client:  # writes are forwarded
                    one = await client.put_kv("job/1", b"a")
                    two = await client.put_kv("job/1", b"b", prev_kv=True)
                    assert two.header.revision == one.header.revision + 1
                    assert two.prev_kv is not None and (two.prev_kv.value, two.prev_kv.version) == (b"a", 1)
                    gone = await client.delete_range("job/", b"job0", prev_kv=True)
                    assert gone.deleted == 1 and [kv.value for kv in gone.prev_kvs] == [b"b"]
                    await client.compact(gone.header.revision)
                    with pytest.raises(Compacted) as compacted:
                        await client.range_kv("job/1", revision=one.header.revision)
                    assert compacted.value.compact_revision == gone.header.revision
                    latest = await client.range_kv("job/", b"job0", revision=gone.header.revision)
                    assert latest.kvs == () and latest.count == 0


async def test_a_transaction_through_a_follower_and_cas_and_batches_built_on_it() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as writer:
                leader = await leader_of(writer)
                follower = next(n for n in NAMES if n != leader)
                async with open_client(nodes[follower], [follower]) as client:
                    await client.batch_put({"svc/a": b"1", "svc/b": b"2"})
                    answer = await client.txn(
                        [ops.value("svc/a") == b"1", ops.version("svc/", prefix=True) > 0],
                        [ops.put("svc/a", b"10"), ops.delete("svc/b"), ops.get("svc/", prefix=True)],
                        [ops.get("svc/a")],
                    )
                    assert answer.succeeded and len(answer.responses) == 3
                    listed = answer.responses[2]
                    assert [(kv.key, kv.value) for kv in listed.kvs] == [(b"svc/a", b"10")]  # type: ignore[union-attr]
                    assert await writer.get("svc/b") is None
                    with pytest.raises(InvalidRequest, match="written twice"):
                        await client.txn(success=[ops.put("x", b"1"), ops.put("x", b"2")])
                    await client.cas("svc/a", b"10", b"11")
                    with pytest.raises(CASFailed) as failed:
                        await client.cas("svc/a", b"10", b"12")
                    assert failed.value.current == b"11"
                    await client.cas("svc/new", None, b"n")
                    await client.batch_delete(["svc/a", "svc/new", "svc/a"])
                    assert await writer.range("svc/", "svc0") == []


async def test_leader_killed_new_leader_serves_writes_and_nothing_acknowledged_is_lost() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            survivor = NAMES[0]
            async with open_client(nodes[survivor], NAMES, timeout=10) as c:
                for i in range(50):
                    await c.put(f"k{i}", b"v%d" % i)
                leader = await leader_of(c)
                if leader == survivor:
                    survivor = next(n for n in NAMES if n != leader)
                async with open_client(nodes[survivor], NAMES, timeout=10) as c2:
                    await nodes[leader].application_stop("global")
                    start = trio.current_time()
                    await c2.put("after", b"failover")
                    assert trio.current_time() - start < 3
                    for i in range(50):
                        assert await c2.get(f"k{i}") == b"v%d" % i
                    assert await c2.get("after") == b"failover"


async def test_retried_write_is_applied_once() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as c:
                leader = ProcessID("global", await leader_of(c))
                await c.put("k", b"original")
                # The same (client, seq) sent again - as a retry after a timeout would - is a duplicate:
                # it returns the original result and does not write again.
                first = PutRequest(b"k", b"v1", SessionTag("retry-client", 1, 1))
                await c.process.call(leader, first)
                await c.put("k", b"changed since")
                await c.process.call(leader, PutRequest(b"k", b"v1", SessionTag("retry-client", 1, 1)))
                assert await c.get("k") == b"changed since"


async def test_no_quorum_is_unavailable_not_success() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                await c.put("a", b"1")
                for name in NAMES[1:]:
                    await nodes[name].application_stop("global")
            async with open_client(nodes[NAMES[0]], [NAMES[0]], timeout=1.5) as c:
                with pytest.raises((Unavailable, NotLeader)):
                    await c.put("b", b"2")


def test_bad_config_is_rejected_with_the_field_named() -> None:
    with pytest.raises(GlobalConfigError, match="storage_type"):
        GlobalConfig(storage_type="badger")
    with pytest.raises(GlobalConfigError, match="data_dir"):
        GlobalConfig(storage_type="leveldb")
    with pytest.raises(GlobalConfigError, match="read_consistency"):
        GlobalConfig(read_consistency="eventual")
    with pytest.raises(GlobalConfigError, match="heartbeat_interval"):
        GlobalConfig(heartbeat_interval=500)


async def test_large_values_are_compressed_in_the_log_and_read_back_whole() -> None:
    value = b"compressible " * 1000  # 13 kB
    with trio.fail_after(30):
        async with cluster(compress_values=True, compress_threshold=1024) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as c:
                await c.put("big", value)
                await c.put("small", b"tiny")
                await c.cas("big", value, value + b"!")
                assert await c.get("big") == value + b"!"
                assert await c.get("small") == b"tiny"
                leader = await leader_of(c)
            proc = nodes[leader]._local(nodes[leader].whereis("global"))  # type: ignore[arg-type]
            assert proc is not None
            raft = proc.actor.raft  # type: ignore[attr-defined]
            sizes = [len(e.data) for e in raft.entries(raft.first_index, raft.last_index + 1)]
            assert max(sizes) < len(value) // 4, sizes  # the entry carried zlib, not 13 kB


async def test_leader_reports_replication_lag_per_follower_in_ms() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                await c.put("k", b"v")
                leader = await leader_of(c)
                followers = [n for n in NAMES if n != leader]
                # Caught up: every follower holds every entry, so no lag.
                with trio.fail_after(5):
                    while True:
                        lag = (await nodes[leader].call("global", MetricsRequest()))["replication_lag_ms"]
                        if set(lag.values()) == {0.0}:
                            break
                        await trio.sleep(0.02)
                assert {key.partition("@")[2] for key in lag} == set(followers)
                # One follower stops: writes still commit, and its lag grows with time.
                await nodes[followers[0]].application_stop("global")
                await c.put("k2", b"v2")
                await trio.sleep(0.3)
                await c.put("k3", b"v3")
                lag = (await nodes[leader].call("global", MetricsRequest()))["replication_lag_ms"]
                stopped = next(ms for key, ms in lag.items() if key.endswith(followers[0]))
                running = next(ms for key, ms in lag.items() if key.endswith(followers[1]))
                assert stopped >= 250, lag
                assert running < stopped, lag
            # A follower has no view of the others.
            assert (await nodes[followers[1]].call("global", MetricsRequest()))["replication_lag_ms"] == {}


async def test_replica_reports_garbage_collector_pauses_per_generation() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            node = nodes[NAMES[0]]
            before = (await node.call("global", MetricsRequest()))["gc_pause"]
            gc.collect(2)
            after = (await node.call("global", MetricsRequest()))["gc_pause"]
            assert after["count"][2] >= before["count"][2] + 1
            assert after["seconds"][2] > before["seconds"][2]
            assert after["max_seconds"][2] > 0


async def test_membership_errors_cross_the_wire_as_themselves() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                await c.put("k", b"v")
                leader = await leader_of(c)
                follower = next(n for n in NAMES if n != leader)
                caller = next(n for n in NAMES if n != follower)  # a remote call either way
                member = ProcessID("global", NAMES[0])
                with pytest.raises(NotLeader) as info:
                    await nodes[caller].call(ProcessID("global", follower), AddPeerRequest(member), timeout=5)
                assert info.value.leader_hint == ProcessID("global", leader)  # followable, not a Raft id
                asker = next(n for n in NAMES if n != leader)
                with pytest.raises(ConfChangeRejected) as rejected:
                    await nodes[asker].call(ProcessID("global", leader), AddPeerRequest(member), timeout=5)
                assert "already a voter" in rejected.value.reason
