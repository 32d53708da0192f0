"""Three replicas in three OS processes: the leader is SIGKILLed, a new one leads within 1 s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

SCRIPT = Path(__file__).resolve().parent / "leader_node.py"
NAMES = ["r1@localhost", "r2@localhost", "r3@localhost"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Replica:
    def __init__(self, name: str, port: int, members: list[str]) -> None:
        env = dict(os.environ, ERGO_COOKIE="leader-os-test")
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), name, str(port), *members],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.lines: list[tuple[float, str]] = []

    async def read_lines(self) -> None:
        while True:
            line = await trio.to_thread.run_sync(self.proc.stdout.readline, abandon_on_cancel=True)  # type: ignore[union-attr]
            if not line:
                return
            self.lines.append((trio.current_time(), line.decode().strip()))

    def events(self) -> list[str]:
        return [text for _, text in self.lines if text != "READY"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


async def test_sigkilled_leader_is_replaced_within_a_second_and_callbacks_fire_once() -> None:
    ports = free_ports(3)
    members = [f"{n}={p}" for n, p in zip(NAMES, ports, strict=True)]
    replicas = [Replica(n, p, members) for n, p in zip(NAMES, ports, strict=True)]
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for r in replicas:
                    nursery.start_soon(r.read_lines)
                while not all(any(t == "READY" for _, t in r.lines) for r in replicas):
                    await trio.sleep(0.02)
                while not any(e.startswith("LEADER") for r in replicas for e in r.events()):
                    await trio.sleep(0.02)
                await trio.sleep(0.5)  # settled, and quiet: only the survivors' monitors see the kill
                [leader] = [r for r in replicas if any(e.startswith("LEADER") for e in r.events())]
                old_term = int(leader.events()[-1].split()[1])
                for r in replicas:
                    if r is not leader:
                        # One transition so far (none -> the leader): exactly one callback.
                        assert r.events() == [f"FOLLOWER {old_term} {leader.name}"], r.events()
                before = {r.name: len(r.events()) for r in replicas}
                leader.proc.send_signal(signal.SIGKILL)
                killed_at = trio.current_time()
                survivors = [r for r in replicas if r is not leader]
                while not any(e.startswith("LEADER") for r in survivors for e in r.events()[before[r.name] :]):
                    await trio.sleep(0.01)
                elected_at = min(
                    t for r in survivors for t, text in r.lines if text.startswith("LEADER") and t >= killed_at
                )
                assert elected_at - killed_at < 1.0
                await trio.sleep(0.5)
                [new] = [r for r in survivors if any(e.startswith("LEADER") for e in r.events()[before[r.name] :])]
                new_term = int([e for e in new.events() if e.startswith("LEADER")][-1].split()[1])
                assert new_term > old_term
                other = next(r for r in survivors if r is not new)
                # The other survivor saw: the old leader gone (maybe), then the new leader - once each.
                tail = other.events()[before[other.name] :]
                assert tail[-1] == f"FOLLOWER {new_term} {new.name}", tail
                assert len(tail) == len(set(tail)) <= 2, tail
                for r in survivors:
                    r.proc.stdin.close()  # type: ignore[union-attr]
                nursery.cancel_scope.cancel()
    finally:
        for r in replicas:
            r.stop()
