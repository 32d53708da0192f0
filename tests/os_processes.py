"""Helpers for tests that start OS processes: read what a child announces, check a PID,
find every process a test started (by a marker in its environment), and stop a child by
its PID even while the test is failing or being cancelled."""

from __future__ import annotations

import os
from pathlib import Path

import trio


async def read_port(proc: trio.Process) -> int:
    """The port in the child's first stdout line, `PORT <n>`."""
    assert proc.stdout is not None
    buf = b""
    while b"\n" not in buf:
        chunk = await proc.stdout.receive_some(1024)
        if not chunk:
            raise AssertionError(f"the child exited before listening (rc={proc.poll()})")
        buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    assert line.startswith("PORT "), line
    return int(line.split()[1])


async def reap(proc: trio.Process) -> None:
    """Kill and wait for the child, even while this test is being cancelled or failing."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.kill()
        with trio.move_on_after(5):
            await proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                await stream.aclose()


def alive(pid: int) -> bool:
    """Whether a process with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries `marker` (our children inherit it)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
