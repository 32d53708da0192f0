"""What each process of a benchmark spent: CPU seconds and wakeups, read from /proc.

A wakeup is a voluntary context switch (the process blocked, in epoll or on a lock, and
was woken), summed over all its threads. Counted per thread: a thread that ended between
two samples (trio's idle worker threads end after 10 s) takes its count with it, so a
difference of sums could go negative; `spent` adds, per thread alive in the later sample,
its count since the earlier one (all of it for a thread born in between). Wakeups of a
thread that ended in between, after the first sample, are not counted. Per operation, CPU time and wakeups barely
depend on how busy the shared host is, unlike ops/s, so they say where the time goes:
few wakeups with much CPU each is work per wakeup; many wakeups is rounds that wait.

Also the signal guard both side-by-side drivers run under. Imported by the benchmark
scripts run as `python benchmarks/<name>.py` (their folder is then on `sys.path`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

__all__ = ["Interrupted", "ProcSample", "cores_used_pct", "guarded", "sample", "spent"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system, all threads (the kernel keeps ended threads' time)
    threads: Mapping[int, int]  # voluntary context switches by thread id

    @property
    def wakeups(self) -> int:
        return sum(self.threads.values())

    def wakeups_since(self, before: ProcSample) -> int:
        return sum(n - before.threads.get(tid, 0) for tid, n in self.threads.items())


def _one(pid: int) -> ProcSample | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        threads: dict[int, int] = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        threads[int(task.name)] = int(line.split()[1])
                        break
            except OSError:
                continue  # a thread that ended meanwhile
    except OSError:
        return None  # the process ended
    return ProcSample((int(fields[11]) + int(fields[12])) / _TICK, threads)


def sample(pids: Mapping[str, int | None]) -> dict[str, ProcSample]:
    """A sample of each live process, by name."""
    out: dict[str, ProcSample] = {}
    for name, pid in pids.items():
        if pid is not None and (s := _one(pid)) is not None:
            out[name] = s
    return out


def spent(
    before: Mapping[str, ProcSample], after: Mapping[str, ProcSample], ops: int, wall: float
) -> dict[str, dict[str, float]]:
    """Per process between two samples: CPU % of one core, CPU µs and wakeups per operation."""
    out: dict[str, dict[str, float]] = {}
    ops = max(1, ops)
    for name, b in before.items():
        a = after.get(name)
        if a is None:
            continue
        cpu, woke = a.cpu_s - b.cpu_s, a.wakeups_since(b)
        out[name] = {
            "cpu_pct": round(100 * cpu / wall, 1),
            "cpu_us_per_op": round(1e6 * cpu / ops),
            "wakeups_per_op": round(woke / ops, 2),
        }
    return out


def cores_used_pct(used: Mapping[str, Mapping[str, float]]) -> float:
    """All the processes' CPU as a share of the machine's cores (100 = every core busy)."""
    return round(sum(p["cpu_pct"] for p in used.values()) / (os.cpu_count() or 1), 1)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: every process was stopped; the run is incomplete."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}; every process it started was stopped")


async def guarded(driver: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> dict[str, Any]:
    """`driver(*args)`, cancelled (so its `finally` blocks stop every process) on SIGINT or
    SIGTERM, which then raise `Interrupted`. Handling the signals here rather than relying
    on KeyboardInterrupt also covers a run started in the background, where SIGINT
    arrives ignored."""
    received: list[int] = []
    report: dict[str, Any] = {}
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    received.append(signum)
                    print(f"{signal.Signals(signum).name}: stopping every process...", file=sys.stderr, flush=True)
                    nursery.cancel_scope.cancel()

            async def work() -> None:
                report.update(await driver(*args))
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(work)
    if received:
        raise Interrupted(received[0])
    return report
