"""A peer in another OS process is killed with SIGKILL: the survivor hears of it within 2 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from net_helpers import COOKIE, Cluster, url

from ergo_py._ids import PID, ProcessID, Ref
from ergo_py.net import Call, Reply, Send

A, B = "a@host", "b@host"
SCRIPT = Path(__file__).resolve().parent / "net_peer_script.py"


async def read_port(proc: trio.Process) -> int:
    buf = b""
    assert proc.stdout is not None
    while b"\n" not in buf:
        chunk = await proc.stdout.receive_some(1024)
        if not chunk:
            raise AssertionError(f"peer exited before listening (rc={proc.poll()})")
        buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    assert line.startswith("PORT "), line
    return int(line.split()[1])


async def start_peer(*args: str) -> trio.Process:
    env = dict(os.environ, ERGO_COOKIE=COOKIE)
    return await trio.lowlevel.open_process([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, env=env)


async def reap(proc: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.kill()
        with trio.move_on_after(5):
            await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()


@pytest.mark.parametrize("who_dials", ["survivor", "victim"])
async def test_sigkilled_peer_is_reported_within_two_seconds(cluster: Cluster, who_dials: str) -> None:
    a, ra = await cluster.start(A)
    extra = [] if who_dials == "survivor" else [A, url(a)]
    proc = await start_peer(B, "5", *extra)
    try:
        with trio.fail_after(20):
            port = await read_port(proc)
            pending = Ref(A, 1, 1)
            if who_dials == "survivor":
                a.add_route(B, f"ws://127.0.0.1:{port}")
                a.send(B, Call(PID(A, 1, 1), ProcessID("svc", B), pending, "hang"))  # never answered
                a.send(B, Call(PID(A, 1, 1), ProcessID("svc", B), Ref(A, 1, 2), "ping"))
                await ra.wait_for(lambda: bool(ra.controls))
                assert ra.controls == [(B, Reply(PID(A, 1, 1), Ref(A, 1, 2), True, ("echo", "ping")))]
            else:
                await ra.wait_for(lambda: bool(ra.controls))
                assert ra.controls == [(B, Send(PID(B, 1, 5), PID(A, 1, 1), "hello"))]
            assert ra.ups == [(B, 5)]
            proc.kill()  # SIGKILL: no goodbye of any kind
            killed_at = trio.current_time()
            await ra.wait_for(lambda: bool(ra.downs))
            elapsed = trio.current_time() - killed_at
            assert ra.downs[0][0] == B
            assert elapsed < 2.0, f"link loss noticed after {elapsed:.2f} s"
            assert a.connected_nodes() == []
    finally:
        await reap(proc)
    assert proc.returncode == -9
