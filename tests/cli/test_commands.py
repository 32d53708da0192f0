"""The `cluster` and `demo` commands end to end, as OS processes, as a newcomer runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import trio

from global_kv.cli import open_session, parse_bootstrap
from tests.os_processes import alive

CLI = [sys.executable, "-m", "global_kv.cli"]


async def read_until(stream: trio.abc.ReceiveStream, pattern: bytes, buffer: bytearray) -> None:
    while pattern not in buffer:
        chunk = await stream.receive_some(4096)
        assert chunk, f"EOF before {pattern!r}; got {bytes(buffer)!r}"
        buffer += chunk


async def test_cluster_command_serves_until_sigint_then_stops_every_node() -> None:
    env = {**os.environ, "COOKIE": "cluster-cmd-test"}
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            [*CLI, "cluster", "--nodes", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        try:
            assert process.stdout is not None
            out = bytearray()
            await read_until(process.stdout, b"Ctrl-C stops every node.", out)
            text = out.decode()
            ready = re.search(r"^READY nodes=3 cluster=local bootstrap=(\S+)$", text, re.MULTILINE)
            assert ready is not None, text
            pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
            assert len(pids) == 3 and all(alive(p) for p in pids)
            assert "export COOKIE" not in text  # the cookie came from the environment: not echoed
            async with open_session(parse_bootstrap(ready[1]), cookie="cluster-cmd-test", timeout=10) as session:
                await session.client.put("via-cluster-command", b"yes")
                assert await session.client.get("via-cluster-command") == b"yes"
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
            rest = bytearray(out)
            while chunk := await process.stdout.receive_some(4096):
                rest += chunk
            assert b"stopped every node" in rest
            assert not any(alive(p) for p in pids)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_demo_runs_the_whole_tour_and_leaves_no_process_behind() -> None:
    with trio.fail_after(90):
        result = await trio.run_process([*CLI, "demo"], capture_stdout=True, capture_stderr=True, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    for expected in (
        "elected leader",
        "linearizable",
        "read_index",
        "follower",
        "actor B acquired it after waiting",
        "refuses A's stale token",
        "the lease expired and took its key",
        "SIGKILL the leader",
        "writes resumed",
        "acknowledged writes read back",
        "-> 200",
        "from its own state",
        "demo finished in",
    ):
        assert expected in out, expected
    first, second = (int(t) for t in re.findall(r"token=(\d+)", out)[:2])
    assert second > first
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    pids += [int(p) for p in re.findall(r"\d+", out.split("stopped and reaped every node process")[1].split("\n")[0])]
    assert len(pids) >= 3 and not any(alive(p) for p in pids)
    assert float(re.search(r"demo finished in ([\d.]+) s", out)[1]) < 60  # type: ignore[index]
