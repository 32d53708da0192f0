"""A peer Node in another OS process is SIGKILLed: monitors, links and calls learn of it at once.

The peer (`remote_peer_node.py`) gets its cookie only from ERGO_COOKIE, so the
handshake succeeding here also shows that path works. Nothing says goodbye when a
process is SIGKILLed; the kernel closing its socket is all this node sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

import ergo_py as e
from ergo_py import PID, ProcessID, Ref
from tests.os_processes import read_port, reap

COOKIE = "os-process-cookie"
LOCAL, PEER = "local@localhost", "peer@localhost"
SCRIPT = Path(__file__).resolve().parent / "remote_peer_node.py"
REPO = Path(__file__).resolve().parents[2]
NOTICE_WITHIN = 2.0  # seconds from SIGKILL to every notification
CALL_TIMEOUT = 30.0


class Recorder(e.Actor):
    """Does what it is told by call; records every message with its arrival time."""

    async def init(self, trap: bool, got: list[tuple[float, Any]]) -> None:
        self.trap_exit = trap
        self.got = got

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.got.append((trio.current_time(), message))

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        op, *args = request
        if op == "monitor":
            return self.monitor(args[0])
        if op == "link":
            self.link(args[0])
            return None
        if op == "call":
            # The outcome of our own remote call, whatever it is, with when it came.
            try:
                value: Any = await self.call(args[0], args[1], timeout=args[2])
            except e.ErgoError as exc:
                value = exc
            return trio.current_time(), value
        raise ValueError(f"unknown request {request!r}")


async def wait_until(predicate: Any) -> None:
    while not predicate():
        await trio.sleep(0.005)


async def test_sigkilled_peer_node_fires_monitors_links_and_fails_calls() -> None:
    env = dict(os.environ, ERGO_COOKIE=COOKIE)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with trio.fail_after(30):
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(SCRIPT), PEER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(REPO),
        )
        try:
            port = await read_port(proc)
            options = e.NodeOptions(cookie=COOKIE, routes={PEER: f"ws://127.0.0.1:{port}"})
            async with e.start_node(LOCAL, options) as node:
                target_name = ProcessID("target", PEER)
                target = await node.call(target_name, "pid")
                assert isinstance(target, PID) and target.node == PEER

                watched: list[tuple[float, Any]] = []
                trapped: list[tuple[float, Any]] = []
                watcher = await node.spawn(Recorder, False, watched)
                trapper = await node.spawn(Recorder, True, trapped)
                caller = await node.spawn(Recorder, False, [])
                await node.call(watcher, ("monitor", target))
                await node.call(watcher, ("monitor", target_name))
                await node.call(watcher, ("monitor", PEER))
                await node.call(trapper, ("link", target))

                outcome: list[tuple[float, Any]] = []

                async def pending_call() -> None:
                    request = ("call", target, "hang", CALL_TIMEOUT)
                    outcome.append(await node.call(caller, request, timeout=60))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pending_call)
                    # The peer holds the two monitors, the link and the hanging call before it dies.
                    with trio.fail_after(5):
                        while await node.call(target, "state") != (2, 1, 1):
                            await trio.sleep(0.01)
                    assert PEER in node.connected_nodes()
                    assert watched == [] and trapped == []

                    proc.kill()  # SIGKILL: the peer says no goodbye of any kind
                    killed_at = trio.current_time()
                    with trio.move_on_after(NOTICE_WITHIN):
                        await wait_until(lambda: len(watched) >= 3 and trapped and outcome)
                    nursery.cancel_scope.cancel()  # a call still pending now is a failure, reported below

                assert len(watched) >= 3 and trapped and outcome, (
                    f"{NOTICE_WITHIN} s after SIGKILL: watcher got {watched}, trapper got {trapped}, "
                    f"pending call ended with {outcome}"
                )
                assert len(watched) == 3, watched
                by_message = {message: at - killed_at for at, message in watched}
                assert set(by_message) == {
                    e.MessageDownPID(target, e.NOCONNECTION),
                    e.MessageDownProcessID(target_name, e.NOCONNECTION),
                    e.MessageDownNode(PEER),
                }
                assert max(by_message.values()) < NOTICE_WITHIN

                [(exit_at, exit_message)] = trapped
                assert exit_message == e.MessageExitPID(target, e.NOCONNECTION)
                assert exit_at - killed_at < NOTICE_WITHIN
                assert node.is_alive(trapper)  # it traps exits: a message, not a death

                [(failed_at, error)] = outcome
                assert isinstance(error, e.NoConnection), error
                assert error.node == PEER
                assert failed_at - killed_at < NOTICE_WITHIN < CALL_TIMEOUT

                # Nothing about the dead peer is left behind in the node's tables.
                assert node.connected_nodes() == []
                stats = node.statistics()
                assert stats["remote_monitors"] == stats["node_monitors"] == 0
                assert stats["remote_links"] == stats["pending_calls"] == 0
        finally:
            await reap(proc)
    assert proc.returncode == -9
