"""The cluster benchmark: a real 3-node cluster and a separate load-generator OS process.

    python benchmarks/bench_cluster.py [--duration 5] [--warmup 1] [--clients 1,16,64]
        [--workloads W1,W2,W3,W4,W5,W5hot,W6] [--storage leveldb|memory]
        [--json benchmarks/results/cluster.json] [--profile /tmp/leader-w1 [--profile-cell W1:64]]

Processes: this one (the driver) starts the cluster with `LocalCluster` (3 `global-kv
node` processes on 127.0.0.1, LevelDB; the Raft log is fsynced on every append batch)
and one load generator (this file run with `--loadgen`), whose client actors each
use their own `GlobalClient`, exactly as an application would. The driver sends the
load generator one JSON command per workload cell on its stdin and reads progress
and results from its stdout; the load generator exits at EOF on stdin.

Workloads (100-byte values, 10,000 keys preloaded, closed loop: each of C clients
issues its next request when the previous one is answered; a warm-up, then a fixed
duration):
  W1     put to random keys
  W2     linearizable get (through the leader, ReadIndex)
  W3     read_index get, clients talking only to the followers
  W4     follower get, clients spread over the three nodes
  W5     lock + unlock pairs, each client on its own keys
  W5hot  lock + unlock pairs, all clients on one key (they queue as waiters)
  W6     put load (C clients), the leader is killed with SIGKILL after the warm-up;
         reported: time from the kill until the first write issued after the kill
         is acknowledged, and the longest gap between acknowledged writes (the
         measured window lasts at least until a write is acknowledged again)

It never leaves a process behind: the load generator and every node are stopped by
PID in `finally` blocks (also on errors and Ctrl-C), and both kinds of child exit
when their stdin (held only by this process) closes. It must never change the
cluster's configuration to flatter the numbers: nodes run with their defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from itertools import pairwise
from pathlib import Path
from typing import Any

import trio
from _hops import format_timeline, load_events, timeline
from _procstat import Interrupted, ProcSample, cores_used_pct, guarded, sample, spent

import ergo_py
from global_kv.cli import LocalCluster, open_session, parse_bootstrap
from global_kv.client import open_client
from global_kv.protocol import MetricsRequest

ROOT = Path(__file__).resolve().parents[1]

KEYS = 10_000
VALUE = bytes(range(100))
ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W5hot", "W6")


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _key(i: int) -> str:
    return f"bench/{i:05d}"


# ======================================================================================
# The load generator (a separate OS process)
# ======================================================================================


class _Cell:
    """One measured run: latencies of operations that completed inside the window."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.measuring = False
        self.done_at: list[tuple[float, float]] = []  # (start, end) wall times, W6 only
        self.record_times = False

    def record(self, start: float, end: float, wall_start: float) -> None:
        if self.measuring:
            self.latencies.append(end - start)
        if self.record_times:
            self.done_at.append((wall_start, time.time()))


async def _op_loop(kind: str, client: Any, index: int, cell: _Cell, stop: trio.Event, seed: str) -> None:
    rng = random.Random(seed)
    own = 0
    while not stop.is_set():
        wall = time.time()
        start = time.perf_counter()
        try:
            if kind in ("W1", "W6"):
                await client.put(_key(rng.randrange(KEYS)), VALUE)
            elif kind in ("W2", "W3", "W4"):
                value = await client.get(_key(rng.randrange(KEYS)))
                if value != VALUE:
                    raise AssertionError(f"read {value!r} for a preloaded key")
            elif kind == "W5":
                own += 1
                handle = await client.lock(f"lock/{index}/{own % 100}")
                await handle.unlock()
            elif kind == "W5hot":
                handle = await client.lock("lock/hot")
                await handle.unlock()
            else:
                raise ValueError(f"unknown workload {kind}")
        except Exception as exc:  # counted per type and reported with the cell (Unavailable, ...)
            if isinstance(exc, AssertionError):
                raise
            cell.errors[type(exc).__name__] += 1
            await trio.sleep(0.01)
            continue
        cell.record(start, time.perf_counter(), wall)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _loadgen_cell(node: ergo_py.Node, names: list[str], cmd: dict[str, Any], stdin_lines: Any) -> dict[str, Any]:
    kind, c = cmd["workload"], int(cmd["clients"])
    leader = cmd["leader"]
    followers = [n for n in names if n != leader]
    cell = _Cell()
    cell.record_times = kind == "W6"
    stop = trio.Event()
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(c):
            if kind == "W3":
                nodes, consistency = [followers[i % len(followers)]], "read_index"
            elif kind == "W4":
                nodes, consistency = [names[i % len(names)]], "follower"
            elif kind == "W2":
                nodes, consistency = [leader] + followers, "linearizable"
            else:
                nodes, consistency = [leader] + followers, None
            clients.append(
                await stack.enter_async_context(open_client(node, nodes, consistency=consistency, timeout=10.0))
            )
        async with trio.open_nursery() as nursery:
            for i, client in enumerate(clients):
                nursery.start_soon(_op_loop, kind, client, i, cell, stop, f"{kind}/{c}/{i}")
            await trio.sleep(cmd["warmup"])
            killed_at = None
            if kind == "W6":
                _emit({"event": "kill-now"})
                reply = json.loads(await stdin_lines.receive())
                killed_at = reply["killed_at"]
            cell.measuring = True
            _emit({"event": "measuring"})
            t0 = time.perf_counter()
            end = t0 + cmd["duration"]
            last = 0
            # W6 measures at least until the cluster acknowledged a write again (bounded by
            # the client's timeout): a window shorter than the outage would measure nothing.
            give_up = t0 + cmd["duration"] + 10.0
            while time.perf_counter() < end or (kind == "W6" and not cell.latencies and time.perf_counter() < give_up):
                await trio.sleep(max(0.01, min(1.0, end - time.perf_counter())))
                _emit({"event": "progress", "ops": len(cell.latencies) - last, "errors": sum(cell.errors.values())})
                last = len(cell.latencies)
            elapsed = time.perf_counter() - t0
            cell.measuring = False
            stop.set()
    lat = sorted(cell.latencies)
    result: dict[str, Any] = {
        "workload": kind,
        "clients": c,
        "ops": len(lat),
        "seconds": round(elapsed, 3),
        "ops_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(_percentile(lat, 0.50) * 1000, 3),
        "p95_ms": round(_percentile(lat, 0.95) * 1000, 3),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 3),
        "errors": dict(cell.errors),
    }
    if kind == "W1":
        # The leader's own view (proposed -> applied and answered): close to the latency a
        # client on the leader's node would see, without the hop from the load generator.
        # Its window is the leader's last 4,096 writes, nearly all from this cell.
        try:
            metrics = await node.call(ergo_py.ProcessID("global", leader), MetricsRequest(), timeout=5.0)
            result["leader_commit_ms"] = {q: round(v, 3) for q, v in metrics["commit_latency_ms"].items()}
        except Exception as exc:  # a benchmark reports what it could not measure, it does not stop
            result["leader_commit_ms"] = {"error": f"{type(exc).__name__}: {exc}"}
    if killed_at is not None:
        after = sorted(end_ for start_, end_ in cell.done_at if start_ >= killed_at)
        # Acknowledgements around the kill (the kill itself counts as a point: writes in
        # flight then stall, so the gap that follows it is the outage as clients saw it).
        ends = sorted([killed_at] + [end_ for _, end_ in cell.done_at if end_ >= killed_at - 0.5])
        gaps = [b - a for a, b in pairwise(ends)]
        result["recovery_s"] = round(after[0] - killed_at, 3) if after else None
        result["longest_gap_s"] = round(max(gaps), 3) if gaps else None
    return result


async def _preload(client: Any) -> None:
    for start in range(0, KEYS, 500):
        await client.batch_put({_key(i): VALUE for i in range(start, min(KEYS, start + 500))})


async def loadgen_main(bootstrap: str, cookie: str) -> None:
    peers = parse_bootstrap(bootstrap)
    names = [p.node for p in peers]
    send, receive = trio.open_memory_channel[str](10)

    async def read_stdin() -> None:
        stream = trio.lowlevel.FdStream(os.dup(0))
        buffer = b""
        async with send:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    await send.send(line.decode())

    async with open_session(peers, cookie=cookie, timeout=10.0) as session, trio.open_nursery() as nursery:
        nursery.start_soon(read_stdin)
        node = session.node
        await _preload(session.client)
        _emit({"event": "preloaded", "keys": KEYS})
        async for line in receive:
            cmd = json.loads(line)
            for n in names:
                with trio.move_on_after(2.0):
                    try:
                        await node.connect(n)
                    except (ergo_py.ErgoError, OSError):
                        pass
            result = await _loadgen_cell(node, names, cmd, receive)
            _emit({"event": "result", "result": result})
        nursery.cancel_scope.cancel()


# ======================================================================================
# The driver
# ======================================================================================


class _LoadGen:
    """The load-generator child: JSON lines in on stdin, JSON lines out on stdout."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all((json.dumps(obj) + "\n").encode())

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"the load generator exited (code {self.process.poll()}); see its stderr above")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    async def stop(self) -> None:
        """Close its stdin (it exits), then SIGKILL by PID if it lingers; always reaps."""
        with trio.CancelScope(shield=True):
            if self.process.returncode is None:
                if self.process.stdin is not None:
                    await self.process.stdin.aclose()
                with trio.move_on_after(5.0):
                    await self.process.wait()
                if self.process.returncode is None:
                    os.kill(self.process.pid, signal.SIGKILL)
            await self.process.wait()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _profile_leader(pid: int, seconds: float, out: str) -> dict[str, Any]:
    """py-spy the leader for `seconds`: a flame graph (svg) and a top-functions list from raw stacks."""
    py_spy = Path(sys.executable).with_name("py-spy")
    raw = out + ".txt"
    cmd = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--format",
        "raw",
        "--output",
        raw,
        "--rate",
        "1000",
        "--nonblocking",
        "--gil",  # only samples holding the GIL: CPU spent in Python, not waits in epoll or a worker thread
    ]
    result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.decode(errors="replace")[-500:]}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in Path(raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        by_package[_package(frames[-1])] += n
        for frame in set(frames):
            inclusive[frame] += n

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(25)]

    return {
        "samples": total,
        "raw": raw,
        "self_pct": top(own),
        "inclusive_pct": top(inclusive),
        "self_by_package_pct": top(by_package),
    }


def _package(frame: str) -> str:
    """'fn (trio/_core/_run.py:12)' -> 'trio/_core' (the directory of the file a sample was in)."""
    path = frame.rpartition("(")[2].rpartition(":")[0]
    return path.rpartition("/")[0] or path


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workload | C | ops/s | p50 ms | p95 ms | p99 ms | errors | CPU µs/op all (leader) "
        "| wakeups/op servers (leader) | CPU % (leader*, loadgen) | cores used % | notes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
    )
    lines = [head]
    for r in rows:
        cpu = " ".join(f"{k} {v}" for k, v in r.get("cpu_pct", {}).items())
        notes = ""
        on_leader = r.get("leader_commit_ms")
        if isinstance(on_leader, dict) and "0.5" in on_leader:
            notes = f"on the leader: p50 {on_leader['0.5']:.2f} ms, p99 {on_leader['0.99']:.2f} ms"
        if "recovery_s" in r:
            notes = f"recovery {r['recovery_s']} s, longest gap {r['longest_gap_s']} s"
        lines.append(
            f"| {r['workload']} | {r['clients']} | {r['ops_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {sum(r['errors'].values())} "
            f"| {r.get('cpu_us_per_op', '')} ({r.get('leader_cpu_us_per_op', '')}) "
            f"| {r.get('wakeups_per_op', '')} ({r.get('leader_wakeups_per_op', '')}) | {cpu} "
            f"| {r.get('cores_used_pct', '')} | {notes} |"
        )
    return "\n".join(lines)


async def trace_driver(args: argparse.Namespace) -> dict[str, Any]:
    """`--trace N`: N sequential puts, then N linearizable gets, from one in-process client
    (`LocalCluster.open_client()`, given a follower first, as a client that does not know
    the leader starts), with every node recording its hops (GLOBAL_KV_TRACE); the
    timelines are read from the nodes' trace files once the cluster has stopped."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    ops: dict[str, list[tuple[float, float]]] = {"put": [], "get": []}
    try:
        cluster = LocalCluster(
            3, storage=args.storage, metrics=False, log_level="WARNING", env={"GLOBAL_KV_TRACE": str(tmp)}
        )
        async with cluster:
            leader = cluster.nodes[await cluster.wait_for_leader()].name
            names = {n.pid: n.name for n in cluster.nodes if n.pid is not None}
            order = sorted(cluster.names, key=lambda name: name == leader)  # the followers first
            async with cluster.open_client(nodes=order) as client:
                await _preload(client)
                rng = random.Random(1)
                for kind, n in (("put", args.trace), ("get", args.trace)):
                    for i in range(n + 20):
                        key = _key(rng.randrange(KEYS))
                        start = time.monotonic()
                        if kind == "put":
                            await client.put(key, VALUE)
                        else:
                            await client.get(key)
                        end = time.monotonic()
                        if i >= 20:  # the first ones warm up (connections, caches)
                            ops[kind].append((start, end))
            if leader != cluster.nodes[await cluster.wait_for_leader()].name:
                raise RuntimeError("the leader changed during the trace; run it again")
        events = load_events(tmp, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(events) < 3:
        raise RuntimeError(f"trace files from {sorted(events)} only: a node did not exit cleanly")
    return {
        "storage": args.storage,
        "client": "LocalCluster.open_client(), a follower first, in the driver, C=1",
        "leader": leader,
        "timelines": {kind: timeline(kind, o, events, leader) for kind, o in ops.items()},
    }


async def driver(args: argparse.Namespace) -> dict[str, Any]:
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(ALL_WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; choose from {','.join(ALL_WORKLOADS)}")
    counts = [int(c) for c in args.clients.split(",")]
    rows: list[dict[str, Any]] = []
    idle_cpu: dict[str, float] = {}
    idle_wakeups: dict[str, float] = {}
    profile: dict[str, Any] | None = None
    load = os.getloadavg()
    _log(f"load average before start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    async with LocalCluster(3, storage=args.storage, metrics=False, log_level="WARNING") as cluster:
        leader = await cluster.wait_for_leader()
        _log(
            f"cluster up: {cluster.bootstrap} (leader {cluster.nodes[leader].name}, pids "
            f"{[n.pid for n in cluster.nodes]}, storage {args.storage})"
        )
        env = dict(os.environ, BOOTSTRAP=cluster.bootstrap, COOKIE=cluster.cookie, PYTHONUNBUFFERED="1")
        process = await trio.lowlevel.open_process(
            [sys.executable, str(Path(__file__).resolve()), "--loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        gen = _LoadGen(process)
        _log(f"load generator pid {process.pid}")
        try:
            msg = await gen.receive()
            assert msg["event"] == "preloaded", msg
            _log(f"preloaded {msg['keys']} keys of {len(VALUE)} bytes")
            # What the processes burn with no load at all (Raft ticks, heartbeats): part of
            # every cell's CPU figures, dominant in the low-rate ones.
            idle_pids: dict[str, int | None] = {n.name.split("@")[0]: n.pid for n in cluster.nodes}
            idle_pids["loadgen"] = process.pid
            before, t0 = sample(idle_pids), time.perf_counter()
            await trio.sleep(args.idle)
            idle_wall = time.perf_counter() - t0
            idle = spent(before, sample(idle_pids), 1, idle_wall)
            idle_cpu = {k: v["cpu_pct"] for k, v in idle.items()}
            idle_wakeups = {k: round(v["wakeups_per_op"] / idle_wall, 1) for k, v in idle.items()}
            _log(f"idle, {idle_wall:.0f} s with no load: CPU % {idle_cpu}, wakeups/s {idle_wakeups}")
            cells = [(w, c) for w in workloads if w != "W6" for c in counts]
            if "W6" in workloads:
                cells.append(("W6", 16 if 16 in counts else counts[-1]))
            for kind, c in cells:
                leader = await cluster.wait_for_leader()
                leader_node = cluster.nodes[leader]
                _log(f"{kind} C={c}: warm-up {args.warmup:g} s, then {args.duration:g} s (leader {leader_node.name})")
                await gen.send(
                    {
                        "workload": kind,
                        "clients": c,
                        "warmup": args.warmup,
                        "duration": args.duration,
                        "leader": leader_node.name,
                    }
                )
                profiling: trio.Nursery | None = None
                pids: dict[str, int | None] = {}
                cpu_start: dict[str, ProcSample] = {}
                wall_start = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    cell_kind, _, cell_c = args.profile_cell.partition(":")
                    want_profile = (
                        args.profile
                        and kind == cell_kind
                        and c == (max(counts) if cell_c in ("", "max") else int(cell_c))
                        and profile is None
                    )
                    while True:
                        msg = await gen.receive()
                        if msg["event"] == "progress":
                            _log(f"  {kind} C={c}: {msg['ops']} ops/s (errors so far {msg['errors']})")
                            if want_profile and profiling is None:
                                profiling = nursery
                                pid = leader_node.pid
                                assert pid is not None

                                async def run_profile(pid: int = pid) -> None:
                                    nonlocal profile
                                    profile = await _profile_leader(pid, max(1.0, args.duration - 1.5), args.profile)

                                nursery.start_soon(run_profile)
                        elif msg["event"] == "measuring":
                            pids = {
                                n.name.split("@")[0] + ("*" if n.index == leader else ""): n.pid for n in cluster.nodes
                            }
                            pids["loadgen"] = process.pid
                            cpu_start, wall_start = sample(pids), time.perf_counter()
                        elif msg["event"] == "kill-now":
                            killed_at = time.time()
                            await cluster.kill(leader)
                            _log(f"  W6: SIGKILLed the leader {leader_node.name}")
                            await gen.send({"killed_at": killed_at})
                        elif msg["event"] == "result":
                            r = msg["result"]
                            wall = time.perf_counter() - wall_start
                            # CPU time and wakeups per operation barely depend on how busy the
                            # machine is (unlike ops/s): they say where the time goes.
                            ops = max(1, round(r["ops_per_s"] * wall))
                            procs = r["procs"] = spent(cpu_start, sample(pids), ops, wall)
                            r["cpu_pct"] = {k: round(v["cpu_pct"]) for k, v in procs.items()}
                            r["cores_used_pct"] = cores_used_pct(procs)
                            servers = {k: v for k, v in procs.items() if k != "loadgen"}
                            r["cpu_us_per_op"] = round(sum(v["cpu_us_per_op"] for v in procs.values()))
                            r["leader_cpu_us_per_op"] = round(
                                sum(v["cpu_us_per_op"] for k, v in servers.items() if k.endswith("*"))
                            )
                            r["wakeups_per_op"] = round(sum(v["wakeups_per_op"] for v in servers.values()), 1)
                            r["leader_wakeups_per_op"] = round(
                                sum(v["wakeups_per_op"] for k, v in servers.items() if k.endswith("*")), 1
                            )
                            rows.append(r)
                            _log(
                                f"  -> {r['ops_per_s']:,.0f} ops/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                                f"cpu % {r['cpu_pct']}"
                                + (f", recovery {r.get('recovery_s')} s" if kind == "W6" else "")
                            )
                            break
                if kind == "W6":
                    await cluster.restart(leader)
        finally:
            await gen.stop()
    load_after = os.getloadavg()
    return {
        "storage": args.storage,
        "fsync": "Raft log fsynced per append batch" if args.storage != "memory" else "none (memory)",
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "keys": KEYS,
        "value_bytes": len(VALUE),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in load_after],
        "idle_cpu_pct": idle_cpu,
        "idle_wakeups_per_s": idle_wakeups,
        "results": rows,
        "leader_profile": {"cell": args.profile_cell, **profile} if profile else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell (default 1)")
    parser.add_argument("--clients", default="1,16,64", help="concurrent clients per cell (default 1,16,64)")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of no load measured first (default 5)")
    parser.add_argument("--storage", default="leveldb", choices=("leveldb", "memory", "lmdb", "hybrid"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cluster.json"))
    parser.add_argument(
        "--profile",
        default=None,
        metavar="PREFIX",
        help="py-spy the leader during one cell (--profile-cell); raw stacks go to PREFIX.txt",
    )
    parser.add_argument(
        "--profile-cell",
        default="W1:max",
        metavar="W:C",
        help="the cell to profile: workload and clients (default W1:max, the largest C)",
    )
    parser.add_argument(
        "--trace",
        type=int,
        default=0,
        metavar="N",
        help="instead of the cells: N sequential puts and N gets, and the median time of each hop",
    )
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        trio.run(loadgen_main, os.environ["BOOTSTRAP"], os.environ["COOKIE"])
        return
    try:
        report = trio.run(guarded, trace_driver if args.trace else driver, args)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    if args.trace:
        for kind, result in report["timelines"].items():
            print(format_timeline(f"{kind} (C=1, leader {report['leader']})", result) + "\n")
        if args.json:
            path = Path(args.json).with_name(Path(args.json).stem + "-trace.json")
            path.parent.mkdir(parents=True, exist_ok=True)  # (a fresh clone has no results/)
            path.write_text(json.dumps(report, indent=2) + "\n")
            print(f"JSON: {path}", file=sys.stderr)
        return
    print(_table(report["results"]))
    if report["leader_profile"]:
        prof = report["leader_profile"]
        print(f"\nleader profile during {prof['cell']} ({prof.get('samples')} samples), top self time:")
        for frame, pct in prof.get("self_pct", [])[:15]:
            print(f"  {pct:5.1f} %  {frame}")
        print("by package (self time):")
        for package, pct in prof.get("self_by_package_pct", [])[:12]:
            print(f"  {pct:5.1f} %  {package}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
