"""etcd and global-kv side by side, through the same client, in one run.

    python benchmarks/bench_etcd.py [--clients 1,16,64] [--duration 5] [--warmup 1]
        [--workloads put,get,sget,lock] [--json out.json]

Why: bench_cluster.py measures global-kv through its own Python client; this one asks
what an etcd user would see. Both systems are driven through etcd's v3 JSON gateway
(HTTP/1.1, keep-alive) by one compiled load generator (benchmarks/etcdload, Go, standard
library only), so neither side's numbers include a Python client.

Needs Debian's etcd 3.4 and Go (checked at start; this script never installs anything):

    apt-get install -y etcd-server golang-go

How: in a temporary directory (removed at the end) it builds the load generator
(`go build`, its own GOCACHE/GOPATH, GOTOOLCHAIN=local, GOPROXY=off), starts 3 etcd
members on free 127.0.0.1 ports and `LocalCluster(3, etcd_api=True)` (3 `global-kv node`
processes, LevelDB), waits until every member's /health says true, and writes the 1,000
keys (64-byte values) once into each. Then, for each workload and C, it runs the load
generator against etcd and against ours, alternating which goes first from one cell
to the next (drift on a shared host then favours neither). Workloads: put (POST
/v3/kv/put), get (POST /v3/kv/range, linearizable: etcd's default), sget (the same with
"serializable": true, answered by the member asked), lock (a lock and unlock pair through
the v3lock service, each client on a lock of its own under a lease it holds for the
run: etcd's recipe, and ours behind the same RPCs). The load generator's C goroutines
each take the three endpoints in turn, so followers forward writes (and, for get, the
read round) to the leader in both systems. Both run with their defaults (etcd fsyncs
its WAL, global-kv its Raft log, per batch).

Reported per cell and system: ops/s and p50/p99 of requests completed in the measured
window, errors, and per operation the servers' CPU and wakeups (voluntary context
switches; from /proc: the three members, whole run), which move far less with the
host's load than ops/s does; per member (the leader starred) in the JSON; and the share
of the machine's cores the servers and the load generator used together. Caveat: the load
generator runs on the same 2 cores as the six servers and competes with them for CPU,
and the cluster not under test stays up (its idle CPU is printed).

Every process it starts is stopped by PID (SIGTERM, then SIGKILL) in `finally` blocks,
also on Ctrl-C, SIGTERM and errors; etcd members also get SIGKILL if this process dies.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import trio
from _procstat import Interrupted, cores_used_pct, guarded, sample, spent

from global_kv.cli import LocalCluster

HERE = Path(__file__).resolve().parent
WORKLOADS = ("put", "get", "sget", "lock")
KEYS = 1000
VALUE_BYTES = 64
CAVEAT = (
    "caveat: the load generator runs on the same cores as the six servers and competes with them "
    "for CPU, and both clusters stay up (the idle one's background CPU, printed at the start, is "
    "taken from the one measured): ops/s are relative to this machine and this client, not either "
    "system's capacity; server CPU µs/op (whole run, warm-up included) is the steadier figure."
)
_LIBC = ctypes.CDLL(None, use_errno=True)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _healthy(url: str) -> bool:
    try:
        with _OPENER.open(url + "/health", timeout=2) as answer:
            return json.loads(answer.read()).get("health") == "true"  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return False


async def wait_healthy(urls: list[str], timeout: float, what: str, check: Any = None) -> None:
    """Until every URL's /health says true; `check()` may raise (a member exited)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        states = [await trio.to_thread.run_sync(_healthy, url) for url in urls]
        if all(states):
            return
        if time.monotonic() > deadline:
            sick = [u for u, ok in zip(urls, states, strict=True) if not ok]
            raise RuntimeError(f"{what}: /health not true on {sick}")
        await trio.sleep(0.2)


async def _kill_group(process: trio.Process) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # go build and the compilers it started


async def build_loadgen(go: str, tmp: Path) -> Path:
    out = tmp / "etcdload"
    env = dict(os.environ, GOCACHE=str(tmp / "gocache"), GOPATH=str(tmp / "gopath"), GOTOOLCHAIN="local")
    env.update(GOTMPDIR=str(tmp), GOPROXY="off", GOFLAGS="", GOENV="off", GOWORK="off", CGO_ENABLED="0")
    t0 = time.perf_counter()
    done = await trio.run_process(
        [go, "build", "-o", str(out), "."],
        cwd=HERE / "etcdload",
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        start_new_session=True,
        deliver_cancel=_kill_group,
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build failed:\n{done.stderr.decode(errors='replace')}")
    _log(f"built the load generator in {time.perf_counter() - t0:.1f} s")
    return out


def _die_with_parent() -> None:
    """In the child: PR_SET_PDEATHSIG, SIGKILL when the thread that forked it ends (so fork
    from the main thread, with subprocess.Popen: trio's open_process forks in a worker)."""
    _LIBC.prctl(1, int(signal.SIGKILL))


class EtcdCluster:
    """3 etcd members on free 127.0.0.1 ports with data under `root`; always stopped on exit."""

    def __init__(self, etcd: str, root: Path, size: int = 3) -> None:
        self.etcd, self.root, self.size = etcd, root, size
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def __aenter__(self) -> EtcdCluster:
        ports = _free_ports(2 * self.size)
        names = [f"e{i + 1}" for i in range(self.size)]
        self.urls = [f"http://127.0.0.1:{p}" for p in ports[: self.size]]
        peers = [f"http://127.0.0.1:{p}" for p in ports[self.size :]]
        initial = ",".join(f"{n}={u}" for n, u in zip(names, peers, strict=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self.root.mkdir(parents=True)
        try:
            for name, client, peer in zip(names, self.urls, peers, strict=True):
                cmd = [self.etcd, "--name", name, "--data-dir", str(self.root / name)]
                cmd += ["--listen-client-urls", client, "--advertise-client-urls", client]
                cmd += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
                cmd += ["--initial-cluster", initial, "--initial-cluster-state", "new"]
                cmd += ["--initial-cluster-token", f"bench-{os.getpid()}", "--logger", "zap", "--log-level", "warn"]
                with open(self.root / f"{name}.log", "wb") as log:  # Popen in this thread: see _die_with_parent
                    kw: dict[str, Any] = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
                    self.procs.append(subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kw))
            await wait_healthy(self.urls, 30.0, "etcd", self._check)
        except BaseException:
            await self.aclose()
            raise
        return self

    def _check(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                tail = (self.root / f"e{i + 1}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"etcd member e{i + 1} exited with {p.returncode}:\n{tail}")

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            with trio.move_on_after(5.0):
                while any(p.poll() is None for p in self.procs):
                    await trio.sleep(0.05)
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                p.wait()


def _leader_index(urls: list[str]) -> int | None:
    """Which member leads, from each one's /v3/maintenance/status (the same in both)."""
    for i, url in enumerate(urls):
        try:
            request = urllib.request.Request(url + "/v3/maintenance/status", data=b"{}", method="POST")
            with _OPENER.open(request, timeout=2) as answer:
                status = json.loads(answer.read())
        except (OSError, ValueError):
            continue
        if status.get("leader") and status.get("leader") == status.get("header", {}).get("member_id"):
            return i
    return None


async def run_load(binary: Path, urls: list[str], pids: list[int], workload: str, c: int, args: Any) -> dict[str, Any]:
    """One run of the load generator; adds what the servers spent over the whole run."""
    cmd = [str(binary), "-endpoints", ",".join(urls), "-workload", workload, "-c", str(c)]
    cmd += ["-warmup", f"{args.warmup}s", "-duration", f"{args.duration}s"]
    cmd += ["-keys", str(KEYS), "-value-bytes", str(VALUE_BYTES)]
    leader = await trio.to_thread.run_sync(_leader_index, urls)
    names = {f"m{i + 1}" + ("*" if i == leader else ""): pid for i, pid in enumerate(pids)}
    before, t0 = sample(names), time.perf_counter()
    done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    after, wall = sample(names), time.perf_counter() - t0
    out = (done.stdout + done.stderr).decode(errors="replace").strip()
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the load generator failed ({done.returncode}): {out}")
    r: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    ops = max(1, r["total_ops"])
    procs = r["servers"] = spent(before, after, ops, wall)
    r["server_cpu_pct"] = round(sum(p["cpu_pct"] for p in procs.values()))
    r["server_cpu_us_per_op"] = round(sum(p["cpu_us_per_op"] for p in procs.values()))
    r["server_wakeups_per_op"] = round(sum(p["wakeups_per_op"] for p in procs.values()), 1)
    r["loadgen_cpu_pct"] = round(100 * r["cpu_s"] / wall)
    r["loadgen_wakeups_per_op"] = round(r.get("wakeups", 0) / ops, 1)
    r["cores_used_pct"] = cores_used_pct({**procs, "loadgen": {"cpu_pct": r["loadgen_cpu_pct"]}})
    return r


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | C | etcd ops/s | ours ops/s | ours/etcd | etcd p50 / p99 ms | ours p50 / p99 ms "
        "| server CPU µs/op etcd / ours | server wakeups/op etcd / ours | cores used % etcd / ours "
        "| errors etcd / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        e, o = row["etcd"], row["ours"]
        lines.append(
            f"| {row['workload']} | {row['clients']} | {e['ops_per_s']:,.0f} | {o['ops_per_s']:,.0f} "
            f"| {row['ratio']:.2f} | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {o['p50_ms']:.2f} / {o['p99_ms']:.2f} "
            f"| {e['server_cpu_us_per_op']} / {o['server_cpu_us_per_op']} "
            f"| {e['server_wakeups_per_op']} / {o['server_wakeups_per_op']} "
            f"| {e['cores_used_pct']} / {o['cores_used_pct']} | {e['errors']} / {o['errors']} |"
        )
    return "\n".join(lines)


async def driver(args: argparse.Namespace, etcd: str, go: str) -> dict[str, Any]:
    workloads = [w for w in args.workloads.split(",") if w]
    if set(workloads) - set(WORKLOADS):
        raise SystemExit(f"unknown workloads {sorted(set(workloads) - set(WORKLOADS))}; choose from {WORKLOADS}")
    counts = [int(c) for c in args.clients.split(",")]
    version = subprocess.run([etcd, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    load = os.getloadavg()
    _log(f"{version}; load average before start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-etcd-"))
    try:
        binary = await build_loadgen(go, tmp)
        async with (
            EtcdCluster(etcd, tmp / "etcd") as etcd_cluster,
            LocalCluster(3, etcd_api=True, metrics=False, log_level="WARNING") as ours,
        ):
            await ours.wait_for_leader()
            our_urls = [n.client_url for n in ours.nodes if n.client_url]
            await wait_healthy(our_urls, 30.0, "global-kv")
            systems = {
                "etcd": (etcd_cluster.urls, etcd_cluster.pids),
                "ours": (our_urls, [n.pid for n in ours.nodes if n.pid is not None]),
            }
            for name, (urls, pids) in systems.items():
                _log(f"{name}: {','.join(urls)} (pids {pids})")
                r = await run_load(binary, urls, pids, "populate", 16, args)
                _log(f"  wrote {r['total_ops']} keys of {VALUE_BYTES} bytes in {r['seconds']:.2f} s")
            named = {n: {f"m{i + 1}": pid for i, pid in enumerate(p)} for n, (_, p) in systems.items()}
            before, t0 = {n: sample(p) for n, p in named.items()}, time.perf_counter()
            await trio.sleep(args.idle)
            wall = time.perf_counter() - t0
            idle = {n: spent(before[n], sample(p), 1, wall) for n, p in named.items()}
            idle_cpu = {n: {m: v["cpu_pct"] for m, v in ms.items()} for n, ms in idle.items()}
            idle_wakeups = {
                n: {m: round(v["wakeups_per_op"] / wall, 1) for m, v in ms.items()} for n, ms in idle.items()
            }
            _log(f"idle, {wall:.0f} s with no load, per member: CPU % {idle_cpu}; wakeups/s {idle_wakeups}")
            _log(CAVEAT)
            for k, (workload, c) in enumerate((w, c) for w in workloads for c in counts):
                row: dict[str, Any] = {"workload": workload, "clients": c}
                for name in ("etcd", "ours") if k % 2 == 0 else ("ours", "etcd"):
                    urls, pids = systems[name]
                    r = row[name] = await run_load(binary, urls, pids, workload, c, args)
                    _log(
                        f"{workload} C={c} {name}: {r['ops_per_s']:,.0f} ops/s, p50 {r['p50_ms']:.2f} ms, "
                        f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']}, servers {r['server_cpu_pct']} % CPU "
                        f"({r['server_cpu_us_per_op']} µs/op, {r['server_wakeups_per_op']} wakeups/op), "
                        f"loadgen {r['loadgen_cpu_pct']} %, cores used {r['cores_used_pct']} %"
                        + (f"; first error: {r['first_error']}" if r.get("first_error") else "")
                    )
                row["first"] = "etcd" if k % 2 == 0 else "ours"
                row["ratio"] = row["ours"]["ops_per_s"] / max(row["etcd"]["ops_per_s"], 1e-9)
                rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    _log(f"load average at the end: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    setup: dict[str, Any] = {"etcd": version, "ours": "LocalCluster(3, etcd_api=True)", "client": "etcdload"}
    setup |= {"warmup_s": args.warmup, "duration_s": args.duration, "keys": KEYS, "value_bytes": VALUE_BYTES}
    loads = {"load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in load_after]}
    setup |= {"cpus": os.cpu_count(), **loads, "idle_cpu_pct": idle_cpu, "idle_wakeups_per_s": idle_wakeups}
    return {**setup, "caveat": CAVEAT, "results": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,16,64", help="concurrent clients per cell (default 1,16,64)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (default 1)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="default put,get,sget,lock")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of no load measured first (default 5)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    etcd, go = shutil.which("etcd"), shutil.which("go")
    if etcd is None or go is None:
        missing = " and ".join(n for n, p in (("etcd", etcd), ("go", go)) if p is None)
        print(f"bench_etcd: {missing} not found on PATH; on Debian: apt-get install -y etcd-server golang-go",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    try:
        report = trio.run(guarded, driver, args, etcd, go)
    except Interrupted as exc:
        print(f"{exc}; the temp dir was removed", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    print(_table(report["results"]))
    print(f"\n{CAVEAT}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
