"""Snapshots on LevelDB while the cluster works: built in steps, written by a helper
process, and every crash or restart around them recoverable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

import ergo_py as e
from global_kv import StorageError
from global_kv.app import Application
from global_kv.client import open_client
from global_kv.protocol import MetricsRequest, SnapshotRequest
from global_kv.storage._kv_stream import KVStreamDecoder

from .test_durability import config, start_all, stop_all
from .test_global_cluster import NAMES, cluster, leader_of

VALUE = b"v" * 300


async def snapshots_taken(node: e.Node) -> int:
    return int((await node.call("global", MetricsRequest()))["snapshots_total"])


async def test_large_snapshots_span_steps_while_writes_go_on_and_every_node_restarts_from_them(
    tmp_path: Path,
) -> None:
    # ~1 MB of state: a snapshot is ~120 chunks of 8 KB, read over many 2 ms steps.
    with trio.fail_after(90):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path, snapshot_interval=40)
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                for batch in range(30):
                    await c.batch_put({f"k{batch:02}-{i:03}": VALUE for i in range(100)})
                leader = await leader_of(c)
                follower = next(n for n in NAMES if n != leader)
                await nodes[follower].application_stop("global")
                for i in range(200):  # compactions meanwhile: it must catch up from a snapshot
                    await c.put(f"late-{i:03}", b"%d" % i)
                await nodes[follower].application_start(Application(config(tmp_path, follower, snapshot_interval=40)))
                # Restarted with its commit index on disk behind what it applied: a snapshot
                # asked for at once must still compact its log (it wrote the commit first).
                before = await snapshots_taken(nodes[follower])
                await nodes[follower].call("global", SnapshotRequest())
                async with open_client(nodes[follower], [follower], timeout=10) as local:
                    with trio.fail_after(20):
                        while await local.get("late-199", consistency="follower") != b"199":
                            await trio.sleep(0.05)
                with trio.fail_after(10):
                    while await snapshots_taken(nodes[follower]) <= before:
                        await c.put("nudge", b"x")  # applied entries, so a drain runs the compaction
                        await trio.sleep(0.05)
            await stop_all(nodes)
            await start_all(nodes, tmp_path, snapshot_interval=40)
            for name in NAMES:
                async with open_client(nodes[name], [name], timeout=10) as local:
                    with trio.fail_after(20):
                        while await local.get("late-199", consistency="follower") != b"199":
                            await trio.sleep(0.05)
                    rows = await local.prefix_scan("k", consistency="follower")
                    assert len(rows) == 3000 and all(v == VALUE for _, v in rows), name


async def test_a_crash_between_writing_a_snapshot_and_compacting_the_log_loses_nothing(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path, snapshot_interval=30)
            victim = NAMES[2]
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                for i in range(40):
                    await c.put(f"a{i:03}", b"%d" % i)
                with trio.fail_after(10):
                    while await snapshots_taken(nodes[victim]) < 1:
                        await trio.sleep(0.05)
                # The victim's next compaction of its log on disk fails after the snapshot
                # file is written: its replica crashes there, and its supervisor restarts it
                # from what is on disk.
                crashed = nodes[victim].whereis("global")
                store = _replica(nodes[victim])._store

                def crash(meta: Any) -> None:
                    raise StorageError("injected: the process died before compacting the log")

                store.compact = crash
                for i in range(40, 100):
                    await c.put(f"a{i:03}", b"%d" % i)
                with trio.fail_after(10):
                    while nodes[victim].whereis("global") in (None, crashed):
                        await trio.sleep(0.05)
                # It starts from the snapshot its log names (not the newer file), and serves.
                raft = _replica(nodes[victim]).raft
                snapshot = raft._log.snapshot
                assert snapshot is not None and _stream_index(snapshot.data) == snapshot.meta.index
                async with open_client(nodes[victim], [victim], timeout=10) as local:
                    with trio.fail_after(10):
                        while await local.get("a099", consistency="follower") != b"99":
                            await trio.sleep(0.05)
                    assert len(await local.prefix_scan("a", consistency="follower")) == 100


def _replica(node: e.Node) -> Any:
    pid = node.whereis("global")
    assert pid is not None
    return node._procs[pid.id].actor  # the replica's Raft shell: what is on its disk is internal


def _stream_index(data: bytes) -> int:
    index = KVStreamDecoder([data]).last_index
    assert index is not None
    return index


async def test_a_follower_restarted_with_its_commit_index_behind_on_disk_compacts_without_failing(
    tmp_path: Path,
) -> None:
    # A follower writes its commit index lazily (with entries): after a restart of an idle
    # cluster it has applied more than its log on disk knows is committed. A snapshot then
    # must first write the commit index, or compacting the log on disk is refused.
    with trio.fail_after(60):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path)
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                for i in range(30):
                    await c.put(f"b{i:02}", b"%d" % i)
                leader = await leader_of(c)
            follower = next(n for n in NAMES if n != leader)
            async with open_client(nodes[follower], [follower], timeout=10) as local:
                with trio.fail_after(10):
                    while await local.get("b29", consistency="follower") != b"29":
                        await trio.sleep(0.05)
            await nodes[follower].application_stop("global")
            await nodes[follower].application_start(Application(config(tmp_path, follower)))
            replica = nodes[follower].whereis("global")
            before = await snapshots_taken(nodes[follower])
            await nodes[follower].call("global", SnapshotRequest())
            with trio.fail_after(10):
                while await snapshots_taken(nodes[follower]) <= before:
                    assert nodes[follower].whereis("global") == replica, "the replica crashed"
                    await trio.sleep(0.05)
            await trio.sleep(0.3)  # the log on disk is compacted after the snapshot is counted
            assert nodes[follower].whereis("global") == replica, "the replica crashed"
            async with open_client(nodes[follower], [follower], timeout=10) as local:
                assert await local.get("b29", consistency="follower") == b"29"
