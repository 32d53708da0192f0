"""Distribution throughput: raw trio-websocket, ergo_py.net links and Nodes; two OS processes on loopback.

Side by side, in one run, with 100-byte payloads:
- raw trio-websocket, one message per websocket frame: one-way messages/s and
  sequential round trips/s (the baselines);
- ergo_py.net `Network` (the layer under the Node): one-way `Send` controls/s
  (coalesced into shared frames) and `Call`/`Reply` round trips/s with C = 1,
  16 and 64 callers in flight;
- ergo_py `Node` (what an application sees): one-way `send` between two actors
  (counted by the receiving actor) and remote `call` between actors with C = 1,
  16 and 64 calling actors, with p50/p99 call latency.
Goals from issue 5: one-way >= 2x the raw one-way rate; calls/s at C=64 >= the raw
round-trip rate. The peer runs in a separate process (this file with --serve),
which the benchmark starts, and kills and reaps when it ends.

Usage:  .venv/bin/python benchmarks/bench_distribution.py [--messages 20000]
            [--json benchmarks/results/distribution.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel
import trio_websocket

import ergo_py as e
from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import Call, Network, NetworkHandlers, Reply, Send

PAYLOAD = b"x" * 100
COOKIE = "bench-cookie"
SERVER, CLIENT = "server@bench", "client@bench"
NODE_SERVER, NODE_CLIENT = "node-server@bench", "node-client@bench"
CONCURRENCY = (1, 16, 64)
DEFAULT_JSON = str(Path(__file__).resolve().parent / "results" / "distribution.json")
# A producer yields to the scheduler every this many sends (an actor that never
# yields would hold the link's sender off until its callback returns).
YIELD_EVERY = 100


# -- the actors of the Node-level figures ----------------------------------------------------


class Sink(e.Actor):
    """Counts what arrives; a call answers (its PID, the count so far)."""

    async def init(self) -> None:
        self.count = 0

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.count += 1

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        return self.pid, self.count


class Echo(e.Actor):
    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        return request


class Producer(e.Actor):
    """Sends n payloads to a remote sink, then asks it for its count (the link keeps order)."""

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        sink, n = request
        for i in range(n):
            self.send(sink, PAYLOAD)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await trio.lowlevel.checkpoint()
        _, count = await self.call(sink, "count", timeout=600)
        return count


class Caller(e.Actor):
    """Makes k sequential remote calls; returns each one's latency in ns."""

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        target, k = request
        latencies = []
        for _ in range(k):
            t0 = time.perf_counter_ns()
            await self.call(target, PAYLOAD, timeout=60)
            latencies.append(time.perf_counter_ns() - t0)
        return latencies


# -- the peer process ----------------------------------------------------------------------


async def serve() -> None:
    """Raw websocket server and ergo_py.net node in one process; prints their ports."""

    async def raw_handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            mode = await ws.get_message()
            if isinstance(mode, bytes) and mode.startswith(b"oneway:"):
                for _ in range(int(mode.split(b":")[1])):
                    await ws.get_message()
                await ws.send_message(b"done")
            else:
                while True:
                    await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    received = 0
    net: Network

    def on_control(peer: str, control: Any) -> None:
        nonlocal received
        if isinstance(control, Send):
            received += 1
        elif isinstance(control, Call):
            value = received if control.request == "count" else control.request
            net.send(peer, Reply(control.from_, control.ref, True, value))

    handlers = NetworkHandlers(on_control=on_control, on_link_up=lambda *a: None, on_link_down=lambda *a: None)
    net = Network(SERVER, 1, handlers=handlers, cookie=COOKIE, listen=("127.0.0.1", 0))
    node_options = e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery, e.start_node(NODE_SERVER, node_options) as node:
        raw = await nursery.start(trio_websocket.serve_websocket, raw_handler, "127.0.0.1", 0, None)
        await net.start(nursery)
        await node.spawn(Sink, name="sink")
        await node.spawn(Echo, name="echo")
        print(f"PORTS {raw.port} {net.port} {node.port}", flush=True)
        await trio.sleep_forever()


# -- the measuring process -----------------------------------------------------------------


async def raw_oneway(port: int, n: int) -> float:
    async with trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
        await ws.send_message(f"oneway:{n}".encode())
        start = time.perf_counter()
        for _ in range(n):
            await ws.send_message(PAYLOAD)
        assert await ws.get_message() == b"done"
        return n / (time.perf_counter() - start)


async def raw_roundtrip(port: int, n: int) -> float:
    async with trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
        await ws.send_message(b"echo")
        start = time.perf_counter()
        for _ in range(n):
            await ws.send_message(PAYLOAD)
            await ws.get_message()
        return n / (time.perf_counter() - start)


class NetCaller:
    """Matches replies to calls by ref, as the Node does."""

    def __init__(self) -> None:
        self.waiting: dict[Ref, trio.Event] = {}
        self.values: dict[Ref, Any] = {}
        self.next_ref = 0

    def on_control(self, peer: str, control: Any) -> None:
        if isinstance(control, Reply):
            self.values[control.ref] = control.value
            self.waiting.pop(control.ref).set()

    async def call(self, net: Network, request: Any) -> Any:
        self.next_ref += 1
        ref = Ref(CLIENT, 1, self.next_ref)
        done = self.waiting[ref] = trio.Event()
        net.send(SERVER, Call(PID(CLIENT, 1, 1), ProcessID("svc", SERVER), ref, request))
        await done.wait()
        return self.values.pop(ref)


async def net_measurements(port: int, n: int) -> dict[str, float]:
    caller = NetCaller()
    handlers = NetworkHandlers(on_control=caller.on_control, on_link_up=lambda *a: None, on_link_down=lambda *a: None)
    results: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        net = Network(CLIENT, 1, handlers=handlers, cookie=COOKIE, routes={SERVER: f"ws://127.0.0.1:{port}"})
        await net.start(nursery)
        await net.connect(SERVER)
        before = await caller.call(net, "count")
        start = time.perf_counter()
        for i in range(n):
            net.send(SERVER, Send(PID(CLIENT, 1, 1), PID(SERVER, 1, 1), PAYLOAD))
            if i % 100 == 99:
                await trio.lowlevel.checkpoint()  # a producer that yields now and then, as actors do
        # Ordered link: once this call returns, every send before it has been received.
        count = await caller.call(net, "count")
        results["net_oneway"] = n / (time.perf_counter() - start)
        assert count - before == n, (count, before, n)
        for concurrency in CONCURRENCY:
            per_task = calls_per_caller(n, concurrency)

            async def worker(k: int = per_task) -> None:
                for _ in range(k):
                    await caller.call(net, PAYLOAD)

            start = time.perf_counter()
            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            results[f"net_calls_c{concurrency}"] = per_task * concurrency / (time.perf_counter() - start)
        stats = net.statistics()
        results["net_controls_per_frame"] = stats.controls_sent / max(1, stats.frames_sent)
        await net.aclose()
    return results


def calls_per_caller(n: int, concurrency: int) -> int:
    """Sequential calls per caller: a quarter of n for a lone caller, n in all otherwise."""
    return max(1, n // (4 * concurrency)) if concurrency == 1 else max(1, n // concurrency)


def percentile(sorted_values: list[int], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] / 1000  # ns -> us


async def node_measurements(port: int, n: int) -> dict[str, float]:
    """The same figures one level up: actors on two Nodes, through mailboxes, send and call."""
    results: dict[str, float] = {}
    options = e.NodeOptions(cookie=COOKIE, routes={NODE_SERVER: f"ws://127.0.0.1:{port}"})
    async with e.start_node(NODE_CLIENT, options) as node:
        await node.connect(NODE_SERVER)
        sink, before = await node.call(ProcessID("sink", NODE_SERVER), "count")
        echo = ProcessID("echo", NODE_SERVER)
        producer = await node.spawn(Producer)
        start = time.perf_counter()
        count = await node.call(producer, (sink, n), timeout=600)
        results["node_oneway"] = n / (time.perf_counter() - start)
        assert count - before == n, (count, before, n)
        callers = [await node.spawn(Caller) for _ in range(max(CONCURRENCY))]
        await node.call(callers[0], (echo, 100), timeout=600)  # warm-up, not counted
        for concurrency in CONCURRENCY:
            per_caller = calls_per_caller(n, concurrency)
            latencies: list[int] = []

            async def run_caller(pid: PID, k: int = per_caller, out: list[int] = latencies) -> None:
                out.extend(await node.call(pid, (echo, k), timeout=600))

            start = time.perf_counter()
            async with trio.open_nursery() as workers:
                for pid in callers[:concurrency]:
                    workers.start_soon(run_caller, pid)
            results[f"node_calls_c{concurrency}"] = per_caller * concurrency / (time.perf_counter() - start)
            latencies.sort()
            results[f"node_call_p50_us_c{concurrency}"] = percentile(latencies, 0.50)
            results[f"node_call_p99_us_c{concurrency}"] = percentile(latencies, 0.99)
        stats = node._net.statistics()
        results["node_controls_per_frame"] = stats.controls_sent / max(1, stats.frames_sent)
    return results


async def read_ports(proc: trio.Process) -> list[int]:
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(30):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(256)
            if not chunk:
                raise RuntimeError(f"the peer process exited before listening (rc={proc.poll()})")
            buf += chunk
    line = buf.split(b"\n")[0].decode()
    if not line.startswith("PORTS "):
        raise RuntimeError(f"unexpected first line from the peer process: {line!r}")
    return [int(p) for p in line.split()[1:]]


async def measure(n: int) -> dict[str, float]:
    proc = await trio.lowlevel.open_process([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    try:
        raw_port, net_port, node_port = await read_ports(proc)
        results = {
            "raw_oneway": await raw_oneway(raw_port, n),
            "raw_roundtrip": await raw_roundtrip(raw_port, max(1, n // 4)),
        }
        results.update(await net_measurements(net_port, n))
        results.update(await node_measurements(node_port, n))
        return results
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


def add_ratios(results: dict[str, float]) -> dict[str, float]:
    """Each figure over its baseline: one-way over raw one-way, calls over raw round trips."""
    ratios = {
        "net_oneway_ratio": results["net_oneway"] / results["raw_oneway"],
        "node_oneway_ratio": results["node_oneway"] / results["raw_oneway"],
    }
    for c in CONCURRENCY:
        ratios[f"net_calls_c{c}_ratio"] = results[f"net_calls_c{c}"] / results["raw_roundtrip"]
        ratios[f"node_calls_c{c}_ratio"] = results[f"node_calls_c{c}"] / results["raw_roundtrip"]
    ratios["goal_oneway_met"] = ratios["node_oneway_ratio"] >= 2.0
    ratios["goal_calls_c64_met"] = ratios["node_calls_c64_ratio"] >= 1.0
    return ratios


def report(results: dict[str, Any], n: int) -> str:
    lines = [
        (
            f"distribution benchmark: {n} messages of {len(PAYLOAD)} bytes, two processes on 127.0.0.1, "
            f"cpu count {os.cpu_count()}"
        ),
        f"  {'figure':44} {'rate':>10}  {'unit':8} {'vs raw':>7}  {'latency p50 / p99':>20}  goal",
    ]

    def row(label: str, rate: float, unit: str, ratio: float | None, latency: str = "", goal: str = "") -> None:
        ratio_text = "" if ratio is None else f"{ratio:6.1f}x"
        lines.append(f"  {label:44} {rate:>10,.0f}  {unit:8} {ratio_text:>7}  {latency:>20}  {goal}")

    row("raw trio-websocket one-way (1 msg/frame)", results["raw_oneway"], "msg/s", None)
    row("raw trio-websocket round trip (C=1)", results["raw_roundtrip"], "rt/s", None)
    row("ergo_py.net Network one-way Send", results["net_oneway"], "msg/s", results["net_oneway_ratio"])
    for c in CONCURRENCY:
        row(
            f"ergo_py.net Network Call/Reply C={c}",
            results[f"net_calls_c{c}"],
            "calls/s",
            results[f"net_calls_c{c}_ratio"],
        )
    oneway_goal = "met" if results["goal_oneway_met"] else "MISSED"
    row(
        "ergo_py Node actor send one-way",
        results["node_oneway"],
        "msg/s",
        results["node_oneway_ratio"],
        goal=f">= 2x raw one-way: {oneway_goal}",
    )
    for c in CONCURRENCY:
        latency = f"{results[f'node_call_p50_us_c{c}']:,.0f} / {results[f'node_call_p99_us_c{c}']:,.0f} us"
        goal = ""
        if c == 64:
            goal = ">= 1x raw round trip: " + ("met" if results["goal_calls_c64_met"] else "MISSED")
        row(
            f"ergo_py Node actor call C={c}",
            results[f"node_calls_c{c}"],
            "calls/s",
            results[f"node_calls_c{c}_ratio"],
            latency,
            goal,
        )
    lines.append(
        f"  controls per frame: Network {results['net_controls_per_frame']:.1f}, "
        f"Node {results['node_controls_per_frame']:.1f} (whole run)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages per one-way measurement")
    parser.add_argument("--json", default=DEFAULT_JSON, help="write the figures to this JSON file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve)
        return
    results: dict[str, Any] = dict(trio.run(measure, args.messages))
    results.update(add_ratios(results))
    print(report(results, args.messages))
    meta = {
        "messages": args.messages,
        "payload_bytes": len(PAYLOAD),
        "python": sys.version.split()[0],
        "trio": trio.__version__,
        "cpu_count": os.cpu_count(),
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({**meta, **results}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
