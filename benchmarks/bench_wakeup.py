"""What it costs this machine to wake a sleeping process: CPU time per wakeup.

Every hop of a request between processes ends a sleep somewhere (a node waiting in
epoll for the next frame). On a virtual machine a wakeup from idle is expensive, and
the Python code that runs right after it runs on cold caches; at low concurrency these
costs, not the work itself, dominate the cluster's CPU per operation. This benchmark
measures them apart from the product: a bare `time.sleep` loop, a bare `epoll.poll`
loop, and a trio loop (`trio.sleep`), each at several sleep lengths, reporting CPU µs
(user + system, of this process) per wakeup.

    python benchmarks/bench_wakeup.py [--seconds 2] [--json benchmarks/results/wakeup.json]
"""

from __future__ import annotations

import argparse
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import trio
from _report import write_report

ROOT = Path(__file__).resolve().parent.parent
SLEEPS = (0.0, 0.001, 0.01)


def _measure(step: Callable[[], object], seconds: float) -> tuple[float, int]:
    """CPU µs per call of `step` over `seconds` of wall time, and the number of calls."""
    cpu0, end, n = time.process_time(), time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        step()
        n += 1
    return (time.process_time() - cpu0) / n * 1e6, n


def _trio_measure(sleep: float, seconds: float) -> tuple[float, int]:
    async def main() -> tuple[float, int]:
        cpu0, end, n = time.process_time(), time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            await trio.sleep(sleep)
            n += 1
        return (time.process_time() - cpu0) / n * 1e6, n

    return trio.run(main)


def run(seconds: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    epoll = select.epoll()
    a, b = socket.socketpair()
    epoll.register(a.fileno(), select.EPOLLIN)
    try:
        for sleep in SLEEPS:
            for kind, measure in (
                ("time.sleep", lambda s=sleep: _measure(lambda: time.sleep(s), seconds)),
                ("epoll.poll", lambda s=sleep: _measure(lambda: epoll.poll(s), seconds)),
                ("trio.sleep", lambda s=sleep: _trio_measure(s, seconds)),
            ):
                cpu_us, n = measure()
                rows.append({"loop": kind, "sleep_ms": sleep * 1000, "cpu_us_per_wakeup": round(cpu_us, 1), "n": n})
    finally:
        epoll.close()
        a.close()
        b.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="wall seconds per cell (default 2)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "wakeup.json"))
    args = parser.parse_args(argv)
    rows = run(args.seconds)
    print("| loop | sleep ms | CPU µs per wakeup | wakeups |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['loop']} | {r['sleep_ms']:g} | {r['cpu_us_per_wakeup']} | {r['n']:,} |")
    write_report(args.json, rows)


if __name__ == "__main__":
    main()
