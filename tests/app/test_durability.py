"""Restarts on LevelDB: whole-cluster restart, catch-up by snapshot, a corrupt log refusing to start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.app import Application, GlobalConfig
from global_kv.client import open_client

from .test_global_cluster import NAMES, cluster, leader_of

BOOT = tuple(ProcessID("global", n) for n in NAMES)


def config(tmp: Path, name: str, **kw: Any) -> GlobalConfig:
    return GlobalConfig(bootstrap=BOOT, storage_type="leveldb", data_dir=str(tmp / name), **kw)


async def start_all(nodes: dict[str, e.Node], tmp: Path, **kw: Any) -> None:
    for name in NAMES:
        await nodes[name].application_start(Application(config(tmp, name, **kw)))


async def stop_all(nodes: dict[str, e.Node]) -> None:
    for name in NAMES:
        await nodes[name].application_stop("global")


async def test_whole_cluster_restart_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path)
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                for i in range(100):
                    await c.put(f"k{i:03}", b"v%d" % i)
            await stop_all(nodes)
            await start_all(nodes, tmp_path)
            async with open_client(nodes[NAMES[1]], NAMES, timeout=10) as c:
                rows = await c.prefix_scan("k")
                assert rows == [(b"k%03d" % i, b"v%d" % i) for i in range(100)]
                await c.put("after-restart", b"ok")


async def test_stopped_node_catches_up_by_snapshot_after_compaction(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path, snapshot_interval=50)
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                leader = await leader_of(c)
                lagging = next(n for n in NAMES if n != leader)
                await nodes[lagging].application_stop("global")
                for i in range(300):  # several snapshots and compactions meanwhile
                    await c.put(f"k{i}", b"v%d" % i)
                await nodes[lagging].application_start(Application(config(tmp_path, lagging, snapshot_interval=50)))
            async with open_client(nodes[lagging], [lagging], timeout=10) as local:
                with trio.fail_after(10):
                    while await local.get("k299", consistency="follower") != b"v299":
                        await trio.sleep(0.05)
                assert await local.get("k0", consistency="follower") == b"v0"
                status = await local.status(lagging)
                assert status.last_applied >= 300


async def test_corrupt_log_refuses_to_start_and_the_others_keep_serving(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with cluster(start_apps=False) as nodes:
            await start_all(nodes, tmp_path)
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as c:
                for i in range(50):
                    await c.put(f"k{i}", b"x" * 100)
            victim = NAMES[2]
            await nodes[victim].application_stop("global")
            segments = sorted((tmp_path / victim / "raft").glob("*.log")) or sorted(
                p for p in (tmp_path / victim / "raft").iterdir() if p.is_file() and p.stat().st_size > 4096
            )
            assert segments, list((tmp_path / victim / "raft").iterdir())
            data = bytearray(segments[0].read_bytes())
            middle = len(data) // 2
            data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
            segments[0].write_bytes(bytes(data))
            with pytest.raises(e.SpawnError, match="corrupt"):
                await nodes[victim].application_start(Application(config(tmp_path, victim)))
            async with open_client(nodes[NAMES[0]], NAMES[:2], timeout=10) as c:
                await c.put("still", b"serving")
                assert await c.get("still") == b"serving"


async def test_full_disk_on_one_node_fails_it_clearly_and_loses_nothing(
    tmp_path: Path, small_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = NAMES[2]
    with trio.fail_after(90):
        async with cluster(start_apps=False) as nodes:
            for name in NAMES:
                where = small_tmpfs if name == full else tmp_path
                await nodes[name].application_start(Application(config(where, name)))
            acknowledged = []
            async with open_client(nodes[NAMES[0]], NAMES[:2], timeout=10) as c:
                for i in range(400):  # ~4 MiB of values: more than the small disk holds
                    await c.put(f"k{i}", bytes([i % 256]) * 10_000)
                    acknowledged.append(i)
                with trio.fail_after(20):
                    while nodes[full].applications()["global"]["running"]:
                        await trio.sleep(0.1)
                for i in acknowledged:
                    assert await c.get(f"k{i}") == bytes([i % 256]) * 10_000
                await c.put("after", b"still serving")
    assert any("StorageFull" in r.getMessage() or "full" in r.getMessage().lower() for r in caplog.records)
