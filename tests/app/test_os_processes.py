"""Global on three OS processes (LevelDB, fsync): kill -9, restarts, whole-cluster restart, exactly-once."""

from __future__ import annotations

import trio

from ergo_py import ErgoError, ProcessID
from global_kv import GlobalKVError
from global_kv.cli import LocalCluster
from global_kv.protocol import PutRequest, SessionTag


async def test_kill_leader_new_leader_within_2s_nothing_acknowledged_lost_and_catch_up() -> None:
    with trio.fail_after(120):
        async with LocalCluster(3, config={"snapshot_interval": 200}) as cluster:
            leader = await cluster.wait_for_leader()
            async with cluster.open_client(timeout=10) as kv:
                acknowledged = []
                for i in range(100):
                    await kv.put(f"k{i}", b"v%d" % i)
                    acknowledged.append(i)
                await cluster.kill(leader)
                killed_at = trio.current_time()
                await kv.put("after-kill", b"1")
                assert trio.current_time() - killed_at < 2.0
                for i in acknowledged:
                    assert await kv.get(f"k{i}") == b"v%d" % i
                # Enough writes while it is down for a snapshot and a compaction on the others.
                for i in range(100, 600):
                    await kv.put(f"k{i}", b"v%d" % i)
                await cluster.restart(leader)
                name = cluster.names[leader]
                with trio.fail_after(20):
                    while True:  # until the restarted node has applied past every write
                        try:
                            status = await kv.status(name)
                        except (ErgoError, GlobalKVError):  # still starting: not answering yet
                            status = None
                        if status is not None and status.last_applied >= 600:
                            break
                        await trio.sleep(0.1)
            # Read the restarted node's own state.
            async with cluster.open_client(nodes=[name], timeout=10) as local:
                assert await local.get("k599", consistency="follower") == b"v599"
                assert await local.get("k0", consistency="follower") == b"v0"


async def test_whole_cluster_restart_on_leveldb_and_retried_write_applied_once() -> None:
    with trio.fail_after(120):
        async with LocalCluster(3) as cluster:
            await cluster.wait_for_leader()
            async with cluster.open_client(timeout=10) as kv:
                for i in range(50):
                    await kv.put(f"k{i}", b"v%d" % i)
                # A write retried with the same session tag - as after a leader died - applies once.
                leader = ProcessID("global", cluster.names[await cluster.wait_for_leader()])
                await kv.process.call(leader, PutRequest(b"once", b"first", SessionTag("retrying-client", 1, 1)))
                await kv.put("once", b"overwritten later")
                await kv.process.call(leader, PutRequest(b"once", b"first", SessionTag("retrying-client", 1, 1)))
                assert await kv.get("once") == b"overwritten later"
            for i in range(3):
                assert await cluster.stop(i) == 0  # SIGTERM: a clean stop
            for i in range(3):
                await cluster.start_node(i)
            await cluster.wait_for_leader()
            async with cluster.open_client(timeout=10) as kv:
                assert await kv.prefix_scan("k") == sorted((b"k%d" % i, b"v%d" % i) for i in range(50))
                assert await kv.get("once") == b"overwritten later"
