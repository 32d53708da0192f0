"""Benchmark watch fan-out: events per second delivered to 1, 100 and 1,000 watchers, and
put-to-event latency.

    .venv/bin/python benchmarks/bench_watch.py [--watchers 1,100,1000] [--puts 200]
        [--json benchmarks/results/watch.json]

A real 3-node cluster (`LocalCluster`: `global-kv node` processes on 127.0.0.1, memory
engine) and, in this process, one client node per member holding a third of the
watchers (each a `GlobalClient.watch` on the same prefix, so every member serves some).
A writer puts `--puts` keys one after another; for each watcher count the table gives
the events delivered per second over the whole run (puts x watchers / elapsed) and the
latency from the put's call to each event's arrival (p50, p99), measured on this
process's clock. The watchers and the writer share this process's one core, so this
measures the client side too, as an application with that many watches would see it.
Processes and temp dirs are stopped and removed (LocalCluster does it, also on errors).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import trio
from _report import write_report

from global_kv.cli import LocalCluster
from global_kv.client import open_client

RESULTS = Path(__file__).resolve().parent / "results"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def measure(cluster: LocalCluster, watchers: int, puts: int, run: int) -> dict[str, Any]:
    prefix = f"bench{run}/"
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    done = trio.Event()
    delivered = 0
    expected = watchers * puts
    members = cluster.names
    async with open_client(cluster.bootstrap, cookie=cluster.cookie, timeout=30) as writer:
        async with trio.open_nursery() as nursery:
            clients = []
            for i in range(len(members)):
                order = members[i:] + members[:i]  # each client watches at its own member first
                clients.append(await nursery.start(_client, cluster, order))
            ready = trio.Semaphore(0)

            async def one(client: Any) -> None:
                nonlocal delivered
                async with client.watch(prefix, prefix=True) as events:
                    ready.release()
                    got = 0
                    async for event in events:
                        latencies.append(time.perf_counter() - sent[event.kv.key])
                        got += 1
                        delivered += 1
                        if delivered == expected:
                            done.set()
                        if got == puts:
                            return

            for w in range(watchers):
                nursery.start_soon(one, clients[w % len(clients)])
            for _ in range(watchers):
                await ready.acquire()
            start = time.perf_counter()
            for i in range(puts):
                key = f"{prefix}{i:06d}".encode()
                sent[key] = time.perf_counter()
                await writer.put(key, b"x" * 100)
            with trio.fail_after(120):
                await done.wait()
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
    return {
        "watchers": watchers,
        "puts": puts,
        "events": delivered,
        "events_per_s": round(delivered / elapsed, 1),
        "p50_ms": round(_quantile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 2),
    }


async def _client(cluster: LocalCluster, order: list[str], task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with open_client(cluster.bootstrap, order, cookie=cluster.cookie, timeout=30) as client:
        task_status.started(client)
        await trio.sleep_forever()


async def main(args: argparse.Namespace) -> None:
    rows = []
    async with LocalCluster(3, metrics=False) as cluster:
        await cluster.wait_for_leader()
        for run, watchers in enumerate(int(w) for w in args.watchers.split(",")):
            rows.append(await measure(cluster, watchers, args.puts, run))
            r = rows[-1]
            print(f"  {watchers} watchers: {r['events_per_s']:,} events/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    print(f"\n{'watchers':>9} {'events':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['watchers']:>9} {r['events']:>9} {r['events_per_s']:>10,} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    write_report(args.json, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", default="1,100,1000")
    parser.add_argument("--puts", type=int, default=200)
    parser.add_argument("--json", default=str(RESULTS / "watch.json"))
    trio.run(main, parser.parse_args())
