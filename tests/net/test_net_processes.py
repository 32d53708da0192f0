"""A peer in another OS process is killed with SIGKILL: the survivor hears of it within 2 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from net_helpers import COOKIE, Cluster, url

from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import Call, Reply, Send
from tests.os_processes import read_port, reap

A, B = "a@host", "b@host"
SCRIPT = Path(__file__).resolve().parent / "net_peer_script.py"


async def start_peer(*args: str) -> trio.Process:
    env = dict(os.environ, ERGO_COOKIE=COOKIE)
    return await trio.lowlevel.open_process([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, env=env)


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
