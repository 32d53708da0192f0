"""Local runtime speed against trio's own memory channels, measured in the same run.

    python benchmarks/bench_runtime.py [--n 200000] [--json benchmarks/results/runtime.json]

Figures:
  raw ping-pong      two tasks bouncing a message over two trio memory channels
  actor ping-pong    two actors bouncing a message with `send` (same pattern)
  actor stream       one actor sending N messages to another (one way)
  call               round trips of `call` between two actors, with p50/p99 latency
  spawn+exit         processes started and ended per second
Each actor figure is also given as a ratio of the raw ping-pong rate (the goals:
send >= 40 %, call >= 25 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import trio

import ergo_py as e


async def raw_ping_pong(n: int) -> float:
    a_send, a_recv = trio.open_memory_channel[int](1)
    b_send, b_recv = trio.open_memory_channel[int](1)

    async def ponger() -> None:
        async for v in a_recv:
            await b_send.send(v)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        start = time.perf_counter()
        for i in range(n):
            await a_send.send(i)
            await b_recv.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return 2 * n / elapsed  # messages per second


class Ponger(e.Actor):
    async def handle_message(self, from_: Any, message: Any) -> None:
        self.send(from_, message)

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        return request


class Pinger(e.Actor):
    async def init(self, peer: e.PID, n: int, done: trio.Event, out: list[float]) -> None:
        self.peer, self.n, self.done, self.out = peer, n, done, out
        self.count = 0

    async def handle_message(self, from_: Any, message: Any) -> None:
        if message == "go":
            self.start = time.perf_counter()
            self.send(self.peer, 0)
            return
        self.count += 1
        if self.count >= self.n:
            self.out.append(time.perf_counter() - self.start)
            self.done.set()
            return
        self.send(self.peer, message)


class Sink(e.Actor):
    async def init(self, n: int, done: trio.Event) -> None:
        self.n, self.done, self.count = n, done, 0

    async def handle_message(self, from_: Any, message: Any) -> None:
        self.count += 1
        if self.count >= self.n:
            self.done.set()


class Streamer(e.Actor):
    async def handle_message(self, from_: Any, message: Any) -> None:
        sink, n = message
        for i in range(n):
            self.send(sink, i)


class Caller(e.Actor):
    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        peer, n = request
        lat = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter_ns()
            await self.call(peer, i)
            lat.append(time.perf_counter_ns() - t0)
        return time.perf_counter() - start, lat


class Nop(e.Actor):
    async def handle_message(self, from_: Any, message: Any) -> None:
        self.stop(e.NORMAL)


async def actor_figures(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with e.start_node("bench@localhost") as node:
        ponger = await node.spawn(Ponger)
        done = trio.Event()
        times: list[float] = []
        pinger = await node.spawn(Pinger, ponger, n, done, times)
        node.send(pinger, "go")
        await done.wait()
        out["actor_ping_pong_msgs_per_s"] = 2 * n / times[0]

        done = trio.Event()
        sink = await node.spawn(Sink, n, done)
        streamer = await node.spawn(Streamer)
        start = time.perf_counter()
        node.send(streamer, (sink, n))
        await done.wait()
        out["actor_stream_msgs_per_s"] = n / (time.perf_counter() - start)

        caller = await node.spawn(Caller)
        calls = max(n // 4, 1000)
        elapsed, lat = await node.call(caller, (ponger, calls), timeout=600)
        out["call_round_trips_per_s"] = calls / elapsed
        lat.sort()
        out["call_p50_us"] = lat[len(lat) // 2] / 1000
        out["call_p99_us"] = lat[int(len(lat) * 0.99)] / 1000
        out["call_mean_us"] = statistics.fmean(lat) / 1000

        spawns = max(n // 20, 1000)
        baseline = len(node.processes())
        start = time.perf_counter()
        for _ in range(spawns):
            pid = await node.spawn(Nop)
            node.send(pid, "stop")
        while len(node.processes()) > baseline:
            await trio.sleep(0)
        out["spawn_exit_per_s"] = spawns / (time.perf_counter() - start)
    return out


async def main(n: int, json_path: str) -> dict[str, Any]:
    raw = await raw_ping_pong(n)
    figures = await actor_figures(n)
    result = {"n": n, "python": sys.version.split()[0], "trio": trio.__version__, "raw_ping_pong_msgs_per_s": raw}
    result.update(figures)
    rows = [
        ("raw trio channel ping-pong", raw, "msgs/s", 1.0),
        ("actor send ping-pong", figures["actor_ping_pong_msgs_per_s"], "msgs/s", None),
        ("actor send one-way stream", figures["actor_stream_msgs_per_s"], "msgs/s", None),
        ("actor call round trips", figures["call_round_trips_per_s"], "calls/s", None),
        ("spawn + exit", figures["spawn_exit_per_s"], "procs/s", None),
    ]
    result["send_ratio"] = figures["actor_ping_pong_msgs_per_s"] / raw
    result["stream_ratio"] = figures["actor_stream_msgs_per_s"] / raw
    # A call is a round trip: two messages, as one ping-pong exchange.
    result["call_ratio"] = 2 * figures["call_round_trips_per_s"] / raw
    print(f"{'figure':32} {'rate':>14} {'unit':8} {'vs raw':>8}")
    for label, rate, unit, _ in rows:
        ratio = {
            "actor send ping-pong": result["send_ratio"],
            "actor send one-way stream": result["stream_ratio"],
            "actor call round trips": result["call_ratio"],
        }.get(label)
        print(f"{label:32} {rate:14,.0f} {unit:8} {'' if ratio is None else f'{ratio:7.0%}':>8}")
    print(
        f"call latency: p50 {figures['call_p50_us']:.1f} us, p99 {figures['call_p99_us']:.1f} us "
        f"(goals: send >= 40 %, call >= 25 % of raw)"
    )
    os.makedirs(os.path.dirname(json_path) or ".", exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {json_path}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--json", default="benchmarks/results/runtime.json")
    args = parser.parse_args()
    trio.run(main, args.n, args.json)
