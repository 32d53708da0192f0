"""Distribution throughput: raw trio-websocket versus ergo_py.net links, two OS processes on loopback.

Side by side, in one run, with 100-byte payloads:
- raw trio-websocket, one message per websocket frame: one-way messages/s and
  sequential round trips/s (the baselines);
- ergo_py.net `Network` (the layer under the Node): one-way `Send` controls/s
  (coalesced into shared frames) and `Call`/`Reply` round trips/s with C = 1,
  16 and 64 callers in flight.
Goals from issue 5: one-way >= 2x the raw one-way rate; calls/s at C=64 >= the raw
round-trip rate. The peer runs in a separate process (this file with --serve).

Usage:  .venv/bin/python benchmarks/bench_distribution.py [--messages 20000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import trio
import trio.lowlevel
import trio_websocket

from ergo_py._ids import PID, ProcessID, Ref
from ergo_py.net import Call, Network, NetworkHandlers, Reply, Send

PAYLOAD = b"x" * 100
COOKIE = "bench-cookie"
SERVER, CLIENT = "server@bench", "client@bench"


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

    handlers = NetworkHandlers(
        on_control=on_control, on_link_up=lambda *a: None, on_link_down=lambda *a: None
    )
    net = Network(SERVER, 1, handlers=handlers, cookie=COOKIE, listen=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        raw = await nursery.start(trio_websocket.serve_websocket, raw_handler, "127.0.0.1", 0, None)
        await net.start(nursery)
        print(f"PORTS {raw.port} {net.port}", flush=True)
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


class Caller:
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
    caller = Caller()
    handlers = NetworkHandlers(
        on_control=caller.on_control, on_link_up=lambda *a: None, on_link_down=lambda *a: None
    )
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
        for concurrency in (1, 16, 64):
            per_task = max(1, n // (4 * concurrency)) if concurrency == 1 else max(1, n // concurrency)

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


async def measure(n: int) -> dict[str, float]:
    proc = await trio.lowlevel.open_process([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        buf = b""
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(256)
            if not chunk:
                raise RuntimeError("the peer process did not start")
            buf += chunk
        _, raw_port, net_port = buf.split(b"\n")[0].decode().split()
        results = {
            "raw_oneway": await raw_oneway(int(raw_port), n),
            "raw_roundtrip": await raw_roundtrip(int(raw_port), max(1, n // 4)),
        }
        results.update(await net_measurements(int(net_port), n))
        return results
    finally:
        proc.kill()
        await proc.wait()


def report(results: dict[str, float], n: int) -> str:
    lines = [
        (
            f"distribution benchmark: {n} messages of {len(PAYLOAD)} bytes, two processes on 127.0.0.1, "
            f"cpu count {os.cpu_count()}"
        ),
        f"  raw trio-websocket one-way (1 msg/frame)   {results['raw_oneway']:>10,.0f} msg/s",
        f"  raw trio-websocket round trip (C=1)        {results['raw_roundtrip']:>10,.0f} rt/s",
        (
            f"  ergo_py.net one-way Send                   {results['net_oneway']:>10,.0f} msg/s"
            f"   ({results['net_oneway'] / results['raw_oneway']:.1f}x raw one-way; goal >= 2x)"
        ),
        f"    controls per frame (whole run)          {results['net_controls_per_frame']:>10,.1f}",
    ]
    for c in (1, 16, 64):
        rate = results[f"net_calls_c{c}"]
        lines.append(
            f"  ergo_py.net Call/Reply C={c:<2}                {rate:>10,.0f} calls/s"
            f"   ({rate / results['raw_roundtrip']:.1f}x raw round trip)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages per one-way measurement")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve)
        return
    results = trio.run(measure, args.messages)
    print(report(results, args.messages))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"messages": args.messages, "payload_bytes": len(PAYLOAD), **results}, f, indent=2)


if __name__ == "__main__":
    main()
