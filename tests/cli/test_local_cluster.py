"""LocalCluster: real node processes started, faulted by signal, stopped cleanly, always reaped."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from ergo_py import ProcessID
from global_kv.cli import LocalCluster, NodeStartError
from global_kv.cli import ctl as run_ctl
from global_kv.cli._node import parse_status_line
from global_kv.protocol import StatusRequest
from tests.os_processes import alive, reap


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def http_get(url: str) -> tuple[int, bytes]:
    return await trio.to_thread.run_sync(_get, url)


async def test_sigterm_stops_every_node_cleanly_and_a_restart_resumes_from_disk(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, data_dir=tmp_path, metrics=False) as cluster:
            assert [n.ready_fields["node"] for n in cluster.nodes] == cluster.names
            assert all(n.ready_fields["storage"] == "leveldb" for n in cluster.nodes)
            leader = await cluster.wait_for_leader()
            async with cluster.open_client(timeout=10) as kv:
                for i in range(30):
                    await kv.put(f"k{i}", b"%d" % i)
                # SIGTERM the leader under a write load: it exits 0 promptly, writes go on elsewhere.
                acked: list[int] = []

                async def writer() -> None:
                    for i in range(10_000):
                        await kv.put(f"load{i}", b"x")
                        acked.append(i)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer)
                    await trio.sleep(0.3)
                    started = trio.current_time()
                    assert await cluster.stop(leader) == 0
                    assert trio.current_time() - started < 5 and cluster.nodes[leader].stopped_cleanly
                    at_stop = len(acked)
                    with trio.fail_after(10):
                        while len(acked) < at_stop + 20:
                            await trio.sleep(0.02)
                    nursery.cancel_scope.cancel()
                for i in acked:
                    assert await kv.get(f"load{i}") == b"x"
            await cluster.start_node(leader)
            for i in range(3):
                assert await cluster.stop(i) == 0  # SIGTERM: a clean stop exits 0 ...
                assert cluster.nodes[i].stopped_cleanly  # ... after saying STOPPED
            for i in range(3):
                await cluster.start_node(i)
            await cluster.wait_for_leader()
            async with cluster.open_client() as kv:
                assert [await kv.get(f"k{i}") for i in range(30)] == [b"%d" % i for i in range(30)]
                await kv.put("after-restart", b"ok")
            await cluster.restart(1)  # one node at a time keeps the cluster serving
            async with cluster.open_client(nodes=[cluster.names[1]]) as local:
                with trio.fail_after(10):
                    while await local.get("after-restart", consistency="follower") != b"ok":
                        await trio.sleep(0.05)
        assert all(not n.running for n in cluster.nodes)
        assert (tmp_path / "n1").is_dir() and (tmp_path / "n1.log").stat().st_size > 0  # a given data dir is kept


async def test_kill_pause_and_resume_and_every_process_is_reaped_at_the_end() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            data_dir = cluster.data_dir
            pids = [n.pid for n in cluster.nodes]
            leader = await cluster.wait_for_leader()
            follower = next(i for i in range(3) if i != leader)
            cluster.pause(follower)  # SIGSTOP: the other two still make a majority
            async with cluster.open_client(timeout=10) as kv:
                await kv.put("while-paused", b"1")
                cluster.resume(follower)
                async with cluster.open_client(nodes=[cluster.names[follower]]) as local:
                    with trio.fail_after(10):
                        while await local.get("while-paused", consistency="follower") != b"1":
                            await trio.sleep(0.05)
                assert await cluster.kill(leader) == -9
                new_leader = await cluster.wait_for_leader(exclude=[leader])
                assert new_leader != leader
                await kv.put("after-kill", b"2")
                assert await kv.get("after-kill") == b"2"
            # A node whose parent goes away (its stdin closes) stops by itself, cleanly.
            other = next(i for i in range(3) if i not in (leader, new_leader))
            process = cluster.nodes[other].process
            assert process is not None and process.stdin is not None
            await process.stdin.aclose()
            with trio.fail_after(15):
                assert await process.wait() == 0
            cluster.pause(new_leader)  # aclose must also reap a stopped (SIGSTOP) process
        assert all(not alive(pid) for pid in pids if pid is not None)
        assert data_dir is not None and not data_dir.exists()  # the temporary directory is removed


async def test_a_quiet_leader_that_hangs_is_replaced_once_a_follower_is_asked_for_a_write() -> None:
    """A quiet group's leader hangs (SIGSTOP: its links stay up, so no monitor fires). A write
    sent to a follower wakes that follower's election timer: a new leader within a second or
    two, not when the links' heartbeat gives up (5 s + 15 s)."""
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            leader = await cluster.wait_for_leader()
            async with cluster.open_client() as kv:
                await kv.put("warm", b"1")
            await trio.sleep(1.0)  # idle: the group goes quiet within a heartbeat or two
            follower, other = (i for i in range(3) if i != leader)
            cluster.pause(leader)
            # Only the other follower is asked who leads: any input gives a replica the ticks
            # it slept through, so polling the one under test would wake it by itself.
            observer = ProcessID("global", cluster.names[other])
            async with (
                cluster.open_client(nodes=[cluster.names[follower]], timeout=30, try_timeout=20) as kv,
                cluster.open_client_node() as probe,
            ):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(kv.put, "after-hang", b"2")  # forwarded to the hung leader
                    start = trio.current_time()
                    with trio.fail_after(5):
                        while True:
                            st = await probe.call(observer, StatusRequest(), timeout=1)
                            if st.leader is not None and st.leader.node != cluster.names[leader]:
                                break
                            await trio.sleep(0.05)
                    assert trio.current_time() - start < 3.0
                    nursery.cancel_scope.cancel()
                await kv.put("after-hang", b"3")
            cluster.resume(leader)


async def test_health_and_metrics_over_http_and_503_without_quorum() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3) as cluster:
            await cluster.wait_for_leader()
            async with cluster.open_client() as kv:
                for i in range(10):
                    await kv.put(f"k{i}", b"v")
            healths = []
            for n in cluster.nodes:
                code, body = await http_get(f"{n.metrics_url}/health")
                assert code == 200
                healths.append(json.loads(body))
            assert sum(h["is_leader"] for h in healths) == 1
            leader = next(i for i, h in enumerate(healths) if h["is_leader"])
            assert all(h["leader"] == cluster.names[leader] for h in healths)
            assert all(h["status"] == "ok" and h["has_quorum"] and h["storage_ok"] for h in healths)
            code, body = await http_get(f"{cluster.nodes[leader].metrics_url}/metrics")
            assert code == 200
            got = {
                (s.name, s.labels.get("peer")): s.value
                for f in text_string_to_metric_families(body.decode())
                for s in f.samples
            }
            assert got[("global_is_leader", None)] == 1 and got[("global_peers_count", None)] == 3
            assert got[("global_writes_total", None)] >= 10
            assert {peer for name, peer in got if name == "global_replication_match_index"} == {
                n.name for i, n in enumerate(cluster.nodes) if i != leader
            }

            survivor = (leader + 1) % 3
            for i in range(3):
                if i != survivor:
                    assert await cluster.stop(i) == 0
            with trio.fail_after(10):  # within a few election timeouts it knows it has no quorum
                while (result := await http_get(f"{cluster.nodes[survivor].metrics_url}/health"))[0] != 503:
                    await trio.sleep(0.1)
            health = json.loads(result[1])
            assert health["status"] == "unhealthy" and health["has_quorum"] is False


async def test_a_node_that_cannot_start_is_reported_with_its_log_and_nothing_is_left() -> None:
    with trio.fail_after(60):
        cluster = LocalCluster(1, storage="no-such-engine", metrics=False)
        with pytest.raises(NodeStartError) as info:
            async with cluster:
                pass
        assert "exited with code 2" in str(info.value) and "storage_type" in str(info.value)
        assert all(not n.running for n in cluster.nodes)


async def test_a_port_taken_between_picking_and_binding_is_retried_with_new_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from global_kv.cli import _cluster

    real = _cluster._free_ports
    picks: list[list[int]] = []
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]

        def first_pick_taken(host: str, count: int) -> list[int]:
            ports = real(host, count)
            if not picks:
                ports[0] = taken  # as if another program bound it before our node did
            picks.append(ports)
            return ports

        monkeypatch.setattr(_cluster, "_free_ports", first_pick_taken)
        with trio.fail_after(60):
            async with LocalCluster(1, storage="memory", metrics=False) as cluster:
                assert len(picks) == 2 and cluster.nodes[0].port == picks[1][0] != taken
                assert cluster.nodes[0].running
            with pytest.raises(NodeStartError, match="already in use"):  # a fixed base port is not moved
                async with LocalCluster(1, storage="memory", metrics=False, base_port=taken):
                    pass


def _split_manual(line: str) -> tuple[dict[str, str], list[str]]:
    """A printed `VAR=value ... python -m global_kv.cli node ...` line: (its environment, its argv)."""
    words = shlex.split(line)
    env = {}
    while words and "=" in words[0] and not words[0].startswith("/"):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


async def _start_by_hand(line: str, cookie: str, log: Path, **change: str | None) -> trio.Process:
    """Start a node from a printed line as a shell would (COOKIE exported), with `change`d settings.

    Also given --exit-with-stdin, so that it cannot outlive this test even if the test is killed.
    """
    settings, argv = _split_manual(line)
    for key, value in change.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    node_vars = ("NODE_NAME", "CLUSTER_ID", "BOOTSTRAP", "ROUTES", "DATA_DIR", "LISTEN", "METRICS", "STORAGE")
    env = {k: v for k, v in os.environ.items() if k not in (*node_vars, "ERGO_COOKIE")}
    env.update(settings, COOKIE=cookie, PYTHONUNBUFFERED="1")
    with open(log, "ab") as err:
        return await trio.lowlevel.open_process(
            [*argv, "--exit-with-stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )


async def _first_line(proc: trio.Process) -> str:
    assert proc.stdout is not None
    buf = b""
    while b"\n" not in buf:
        chunk = await proc.stdout.receive_some(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").split("\n", 1)[0]


async def test_a_node_killed_by_pid_and_restarted_by_hand_with_the_printed_line_rejoins(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, data_dir=tmp_path / "cluster", metrics=False) as cluster:
            text = cluster.describe()
            word, fields = parse_status_line(text.splitlines()[0])
            assert word == "READY" and fields == {"nodes": "3", "cluster": "local", "bootstrap": cluster.bootstrap}
            assert f"export COOKIE={cluster.cookie}" in text and "export CLUSTER_ID=local" in text
            lines = [line.strip() for line in text.splitlines() if " -m global_kv.cli node" in line]
            assert len(lines) == 3 and all("CLUSTER_ID=local" in line and "COOKIE" not in line for line in lines)
            leader = await cluster.wait_for_leader()
            victim = (leader + 1) % 3
            name = cluster.names[victim]
            async with cluster.open_client(timeout=10) as kv:
                await kv.put("before", b"1")
                pid = cluster.nodes[victim].pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)  # kill -9 PID, as an operator would
                assert await cluster.wait_exit(victim, 10) == -9
                await kv.put("while-down", b"2")  # two of three still serve

                # Restarted with the README's defaults (cluster id "global"): refused, one line.
                log = tmp_path / "by-hand.log"
                wrong = await _start_by_hand(lines[victim], cluster.cookie, log, CLUSTER_ID=None)
                try:
                    with trio.fail_after(30):
                        assert await wrong.wait() == 1
                finally:
                    await reap(wrong)
                last = log.read_text().strip().splitlines()[-1]
                assert "Traceback" not in log.read_text()
                assert last.startswith("global-kv node: the Global replica did not start: data dir ")
                assert "cluster 'local'" in last and "cluster 'global'" in last and "CLUSTER_ID=local" in last

                # Restarted with the printed line: it rejoins and catches up; writes go on.
                proc = await _start_by_hand(lines[victim], cluster.cookie, log)
                try:
                    with trio.fail_after(30):
                        ready = await _first_line(proc)
                    assert ready.startswith("READY ") and f"node={name}" in ready and "cluster=local" in ready
                    await kv.put("after", b"3")
                    async with cluster.open_client(nodes=[name]) as local:
                        with trio.fail_after(15):
                            while await local.get("after", consistency="follower") != b"3":
                                await trio.sleep(0.05)
                        assert await local.get("while-down", consistency="follower") == b"2"
                    assert proc.returncode is None
                finally:
                    await reap(proc)


async def test_global_kv_cluster_keeps_serving_a_node_killed_by_pid_and_restarted_from_its_printed_line(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COOKIE", "ERGO_COOKIE", "BOOTSTRAP", "CLUSTER_ID")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "global_kv.cli", "cluster", "--nodes", "3", "--no-metrics"]
    cmd += ["--data-dir", str(tmp_path / "data")]
    cluster = await trio.lowlevel.open_process(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    by_hand: trio.Process | None = None
    try:
        assert cluster.stdout is not None
        text = ""
        with trio.fail_after(60):
            while "Ctrl-C stops every node." not in text:
                chunk = await cluster.stdout.receive_some(4096)
                assert chunk, f"global-kv cluster exited early: {text}"
                text += chunk.decode()
        word, fields = parse_status_line(text.splitlines()[0])
        assert word == "READY" and fields["cluster"] == "local" and fields["nodes"] == "3"
        exports = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in text.splitlines()
            if line.strip().startswith("export ")
        )
        cookie, bootstrap = exports["COOKIE"], shlex.split(exports["BOOTSTRAP"])[0]
        assert shlex.split(exports["CLUSTER_ID"]) == ["local"]
        pids = [int(line.split(" pid ")[1].split()[0]) for line in text.splitlines() if " pid " in line]
        lines = [line.strip() for line in text.splitlines() if " -m global_kv.cli node" in line]
        assert len(pids) == 3 and len(lines) == 3

        async def kv(*argv: str) -> tuple[int, str]:
            out, err = io.StringIO(), io.StringIO()
            code = await run_ctl(list(argv), env={"BOOTSTRAP": bootstrap, "COOKIE": cookie}, out=out, err=err)
            return code, out.getvalue() + err.getvalue()

        with trio.fail_after(60):
            assert await kv("put", "before", "1") == (0, "OK\n")
            os.kill(pids[1], signal.SIGKILL)
            while alive(pids[1]):
                await trio.sleep(0.05)
            assert (await kv("put", "while-down", "2"))[0] == 0
            by_hand = await _start_by_hand(lines[1], cookie, tmp_path / "by-hand.log")
            ready = await _first_line(by_hand)
            assert ready.startswith("READY ") and "cluster=local" in ready
            assert (await kv("put", "after", "3"))[0] == 0
            name = parse_status_line(ready)[1]["node"]
            while (await kv("get", "after", "--consistency", "follower", "--node", name)) != (0, "3\n"):
                await trio.sleep(0.1)
            assert cluster.returncode is None  # `global-kv cluster` kept serving throughout
    finally:
        if by_hand is not None:
            await reap(by_hand)
        with trio.CancelScope(shield=True):
            if cluster.returncode is None:
                cluster.send_signal(signal.SIGINT)
                with trio.move_on_after(20):
                    await cluster.wait()
        await reap(cluster)
