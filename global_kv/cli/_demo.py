"""`global-kv demo`: a short, narrated tour of a real 3-node cluster, then a full clean-up.

It starts three `global-kv node` processes (LevelDB in a temporary directory),
and shows, with timings: writes, reads at each consistency level, a lock handed
from one actor to another (the waiter gets it when the holder releases, with a
higher fencing token, and a fenced resource refuses the old token), the leader
killed with SIGKILL and a new one serving writes, and the killed node restarted
from its data and catching up. Every claim printed is checked as it runs; a check
that fails ends the demo with an error (exit 1), never with a cheerful line. All
processes are reaped at the end, whatever happens.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO

import trio

from .._errors import CASFailed, StaleToken
from ..client import FencedResource, open_client, ops
from ._cluster import LocalCluster
from ._errors import CLIError

__all__ = ["run_demo"]


class DemoCheckFailed(CLIError):
    """Something the tour asserts did not hold."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoCheckFailed(f"demo check failed: {what}")


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = trio.current_time()
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", file=self.out, flush=True)

    def line(self, text: str) -> None:
        print(f"    {text}", file=self.out, flush=True)

    def elapsed(self) -> float:
        return trio.current_time() - self.t0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def run_demo(*, out: TextIO | None = None, nodes: int = 3, storage: str = "leveldb") -> None:
    p = _Printer(out if out is not None else sys.stdout)
    print(
        f"global-kv demo: a {nodes}-node Global cluster as {nodes} OS processes on 127.0.0.1 ({storage})",
        file=p.out,
        flush=True,
    )
    p.title(f"start {nodes} `global-kv node` processes")
    start = trio.current_time()
    async with LocalCluster(nodes, storage=storage, log_level="WARNING") as cluster:
        for n in cluster.nodes:
            p.line(f"{n.name:14} {n.url:24} metrics {n.metrics_url}  pid {n.pid}")
        p.line(f"data and logs in {cluster.data_dir}")
        leader = await cluster.wait_for_leader()
        p.line(
            f"all ready and {cluster.nodes[leader].name} elected leader "
            f"{trio.current_time() - start:.1f} s after launch"
        )
        async with cluster.open_client_node("demo@localhost") as client_node:
            await _tour(p, cluster, client_node, leader)
        p.title("clean up")
        pids = [n.pid for n in cluster.nodes]
    _check(all(not n.running for n in cluster.nodes), "every node process was reaped")
    p.line(f"stopped and reaped every node process (pids {', '.join(map(str, pids))}); removed the data directory")
    print(f"\ndemo finished in {p.elapsed():.1f} s", file=p.out, flush=True)


async def _watch_txn_lease(p: _Printer, kv: Any) -> None:
    p.title("a watch sees a transaction and a lease's expiry (etcd's data model)")
    # From right after what we read (a watch "from now" starts at its member's own revision,
    # which a lagging follower may not have brought up to our last write yet).
    now = (await kv.range_kv("config/a")).header.revision
    async with kv.watch("config/", prefix=True, start_revision=now + 1) as events:
        answer = await kv.txn(
            [ops.value("config/a") == b"1"], [ops.put("config/a", b"10"), ops.delete("config/b")], [ops.get("config/a")]
        )
        _check(answer.succeeded, "the transaction's compare held")
        p.line(
            f"txn: if config/a = 1 then put config/a = 10, delete config/b -> one revision, {answer.header.revision}"
        )
        lease = await kv.lease_grant(1.0)
        await kv.put_kv("config/session", b"up", lease=lease.lease_id)
        p.line(f"put config/session with lease {lease.lease_id:x} (TTL 1 s, never kept alive)")
        seen: list[Any] = []
        with trio.fail_after(10):
            async for event in events:
                seen.append(event)
                p.line(f"  watch: {event.type:6} {event.kv.key.decode():15} at revision {event.kv.mod_revision}")
                if len(seen) == 4:
                    break
        _check(seen[0].kv.mod_revision == seen[1].kv.mod_revision, "a transaction's events share its revision")
        _check(seen[3].type == "delete" and seen[3].kv.key == b"config/session", "the lease's key went with it")
        p.line("the lease expired and took its key, with a revision every watcher sees")


async def _tour(p: _Printer, cluster: LocalCluster, client_node: Any, leader: int) -> None:
    names = cluster.names
    async with open_client(client_node, names, timeout=10) as kv:
        p.title(
            f"writes (through the leader {cluster.nodes[leader].name}: committed on a majority, fsynced, then answered)"
        )
        users = {f"user:{i}": json.dumps({"name": n}).encode() for i, n in enumerate(("Alice", "Bob", "Carol"), 1)}
        for key, value in users.items():
            t = trio.current_time()
            await kv.put(key, value)
            p.line(f"put {key} = {value.decode():20} {_ms(trio.current_time() - t)}")
        await kv.cas("counter", None, b"1")
        await kv.cas("counter", b"1", b"2")
        try:
            await kv.cas("counter", b"1", b"3")
            _check(False, "a CAS with a stale expected value must fail")
        except CASFailed as exc:
            _check(exc.current == b"2", "CASFailed carries the current value")
            p.line(f"cas counter: absent->1, 1->2 ok; 1->3 refused (current value {exc.current!r})")
        await kv.batch_put({"config/a": b"1", "config/b": b"2"})
        p.line("batch_put config/a, config/b (one atomic entry)")
        await _watch_txn_lease(p, kv)

        follower = next(i for i in range(len(names)) if i != leader)
        fname = names[follower]
        p.title(f"reads at each consistency level, asked of the follower {fname}")
        async with open_client(client_node, [fname], timeout=10) as fkv:
            for level, how in (
                ("linearizable", "forwarded to the leader, which confirms it still leads (one heartbeat round)"),
                ("read_index", "the follower asks the leader's commit index, waits to apply it, reads locally"),
                ("follower", "the follower's own state: fastest, may be stale"),
            ):
                t = trio.current_time()
                got = await fkv.get("user:1", consistency=level)
                took = trio.current_time() - t
                if level != "follower":
                    _check(got == users["user:1"], f"a {level} read sees the last write")
                p.line(f"{level:13} user:1 = {got.decode() if got else None}  {_ms(took)}  ({how})")
            scan = await fkv.prefix_scan("user:", consistency="read_index")
            _check([k for k, _ in scan] == sorted(k.encode() for k in users), "prefix_scan returns every user in order")
            p.line(f"prefix_scan user: -> {len(scan)} keys, in key order")

    await _locks(p, client_node, names)
    await _failover(p, cluster, client_node, leader)


async def _locks(p: _Printer, client_node: Any, names: list[str]) -> None:
    p.title("a lock handed between two actors (each client is its own process: the lock's owner)")
    resource = FencedResource("report")
    async with open_client(client_node, names, timeout=10) as a, open_client(client_node, names, timeout=10) as b:
        handle_a = await a.lock_with_ttl("jobs:report", 30)
        resource.check(handle_a.token)
        p.line(f"actor A acquired jobs:report  token={handle_a.token}")
        got_b: dict[str, Any] = {}

        async def actor_b() -> None:
            t = trio.current_time()
            got_b["handle"] = await b.lock_with_timeout("jobs:report", 30, 10)
            got_b["waited"] = trio.current_time() - t

        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor_b)
            await trio.sleep(0.5)
            _check("handle" not in got_b, "B must wait while A holds the lock")
            locks = await a.list_locks()
            waiting = next((i.waiters for i in locks if i.key == b"jobs:report"), 0)
            p.line(f"actor B asked for it and waits in line (waiters on the leader: {waiting})")
            await handle_a.unlock()
            p.line("actor A released it")
        handle_b = got_b["handle"]
        _check(handle_b.token > handle_a.token, "the next holder's fencing token is higher")
        p.line(
            f"actor B acquired it after waiting {got_b['waited']:.2f} s, token={handle_b.token} (> {handle_a.token})"
        )
        resource.check(handle_b.token)
        try:
            resource.check(handle_a.token)
            _check(False, "a fenced resource must refuse a stale token")
        except StaleToken:
            p.line(f"the fenced resource accepts token {handle_b.token} and refuses A's stale token {handle_a.token}")
        await handle_b.unlock()


async def _failover(p: _Printer, cluster: LocalCluster, client_node: Any, leader: int) -> None:
    old = cluster.nodes[leader]
    p.title(f"failover: SIGKILL the leader {old.name} (pid {old.pid}) while a client keeps writing")
    acked: list[tuple[int, float, float]] = []  # (i, started, acknowledged)
    async with open_client(client_node, cluster.names, timeout=15) as kv:

        async def writer() -> None:
            i = 0
            while True:
                started = trio.current_time()
                await kv.put(f"load:{i}", b"%d" % i)
                acked.append((i, started, trio.current_time()))
                i += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(0.5)
            await cluster.kill(leader)  # returns once the process is gone
            # After the kill, not before it: a write the old leader acknowledged while the
            # signal was on its way is no write that resumed.
            killed_at = trio.current_time()
            before = sum(1 for _, _, done in acked if done <= killed_at)
            with trio.fail_after(15):
                while not any(started > killed_at for _, started, _ in acked):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        resumed = min(done for _, _, done in acked if done > killed_at)
        new_leader = await cluster.wait_for_leader(exclude=[leader])
        p.line(
            f"{before} writes acknowledged before the kill; writes resumed {resumed - killed_at:.2f} s "
            "after it (the client retried the write in flight at the new leader)"
        )
        p.line(f"new leader: {cluster.nodes[new_leader].name}")
        for i, _, _ in acked:
            _check(await kv.get(f"load:{i}") == b"%d" % i, f"acknowledged write load:{i} survived the failover")
        p.line(f"all {len(acked)} acknowledged writes read back from the new leader")
        metrics_url = cluster.nodes[new_leader].metrics_url
        if metrics_url:
            code, body = await trio.to_thread.run_sync(_http_get, f"{metrics_url}/health")
            health = json.loads(body)
            _check(code == 200 and health["is_leader"], "the new leader reports itself healthy")
            p.line(f"GET {metrics_url}/health -> {code} {body.decode().strip()[:90]}...")

        p.title(f"restart {old.name} from its LevelDB data: it rejoins as a follower and catches up")
        t = trio.current_time()
        await cluster.start_node(leader)
        await cluster.connect_all(client_node)
        last = f"load:{acked[-1][0]}"
        async with open_client(client_node, [old.name], timeout=10) as local:
            with trio.fail_after(15):
                while await local.get(last, consistency="follower") is None:
                    await trio.sleep(0.05)
        p.line(
            f"{old.name} serves ({last}, written while it was dead) from its own state, "
            f"{trio.current_time() - t:.1f} s after the restart"
        )
