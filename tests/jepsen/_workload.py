"""The client side of a run: KV clients, unique inserts, and lock-protected fenced increments.

All clients live on one in-process client node (kept linked to every running member
by `keep_linked`). Every operation is recorded with its invoke and completion times;
an operation whose outcome is unknown (Unavailable, timeout, expired session) is
recorded as such and never guessed.
"""

from __future__ import annotations

import math
import random
from typing import Any

import trio

import ergo_py
from global_kv import CASFailed, GlobalKVError, LockTimeout, SessionExpired
from global_kv.checker import UNKNOWN, Operation
from global_kv.cli import LocalCluster
from global_kv.client import open_client
from global_kv.protocol import prefix_range_end

from ._record import Hold, Insert, LeaseCycle, Recorder

__all__ = ["KEYS", "LEASE_PREFIX", "LOCK_KEY", "keep_linked", "kv_client", "lease_worker", "lock_worker", "watcher"]

KEYS = ["a", "b", "c", "d", "e"]
LOCK_KEY = "fence"
LEASE_PREFIX = "ttl/"


async def keep_linked(cluster: LocalCluster, node: ergo_py.Node, interval: float = 0.5) -> None:
    """Re-link the client node to restarted members (a dial-only node must, see connect_all)."""
    while True:
        await cluster.connect_all(node, timeout=0.5)
        await trio.sleep(interval)


async def kv_client(
    cluster: LocalCluster, node: ergo_py.Node, client_id: int, rec: Recorder, seed: int, deadline: float
) -> None:
    rng = random.Random(seed)
    n = 0
    while trio.current_time() < deadline:
        # Half the clients give up after 0.4 s (about an election), so failovers leave unknown outcomes in the history.
        timeout = 0.4 if client_id % 2 else 3.0
        async with open_client(node, cluster.names, timeout=timeout, try_timeout=0.5, consistency="linearizable") as c:
            while trio.current_time() < deadline:
                n += 1
                value = f"{client_id}-{n}".encode()
                key = rng.choice(KEYS)
                roll = rng.random()
                if roll < 0.1:
                    ins = Insert(f"u-{client_id}-{n}", value, trio.current_time())
                    rec.inserts.append(ins)
                    try:
                        await c.put(ins.key, value)
                        ins.ok = True
                    except GlobalKVError:
                        ins.ok = None
                    continue
                op: tuple[Any, ...]
                expected: bytes | None = None
                if roll < 0.4:
                    op = ("put", key, value)
                elif roll < 0.75:
                    op = ("get", key)
                elif roll < 0.92:
                    # Expect a value some client may have written lately (or absence).
                    other = rng.randrange(8)
                    expected = None if rng.random() < 0.15 else f"{other}-{max(1, n - rng.randrange(1, 30))}".encode()
                    op = ("cas", key, expected, value)
                else:
                    op = ("delete", key)
                start = trio.current_time()
                try:
                    if op[0] == "put":
                        await c.put(key, value)
                        out: Any = None
                    elif op[0] == "get":
                        out = await c.get(key)
                    elif op[0] == "cas":
                        await c.cas(key, expected, value)
                        out = True
                    else:
                        await c.delete(key)
                        out = None
                except CASFailed:
                    rec.ops.append(Operation(client_id, op, start, False, trio.current_time()))
                    continue
                except SessionExpired:
                    rec.ops.append(Operation(client_id, op, start, UNKNOWN, None))
                    break  # the session cannot continue: a new client id
                except GlobalKVError:
                    rec.ops.append(Operation(client_id, op, start, UNKNOWN, None))
                    continue
                rec.ops.append(Operation(client_id, op, start, out, trio.current_time()))


async def watcher(cluster: LocalCluster, node: ergo_py.Node, first: str, rec: Recorder, stop: trio.Event) -> None:
    """Watch every KV key from revision 1 until `stop`, starting at member `first`; the
    client resumes at another member when that one goes, and a watch that cannot be
    registered at all (no member answers) is asked again from the last revision seen."""
    events = rec.watches.setdefault(first, [])
    order = [first, *(n for n in cluster.names if n != first)]
    with trio.move_on_at(math.inf) as scope:
        async with trio.open_nursery() as nursery:

            async def stopper() -> None:
                await stop.wait()
                scope.cancel()

            nursery.start_soon(stopper)
            while True:
                start = events[-1][0] + 1 if events else 1
                try:
                    async with open_client(node, order, timeout=5) as c:
                        async with c.watch(KEYS[0], "f", start_revision=start) as stream:
                            async for event in stream:
                                kv = event.kv
                                events.append((kv.mod_revision, event.type, kv.key, kv.value))
                except GlobalKVError:
                    await trio.sleep(0.2)


async def lock_worker(
    cluster: LocalCluster, node: ergo_py.Node, worker: int, rec: Recorder, seed: int, deadline: float, ttl: float
) -> None:
    """Take the lock, increment the fenced counter twice with its token, release; repeat."""
    rng = random.Random(seed)
    name = f"w{worker}"
    async with open_client(node, cluster.names, timeout=4, try_timeout=0.5) as c:
        while trio.current_time() < deadline:
            invoke = trio.current_time()
            rec.lock_attempts += 1
            try:
                handle = await c.lock_with_timeout(LOCK_KEY, ttl, 2.0)
            except LockTimeout:
                continue
            except GlobalKVError:
                # Unknown: the grant may have happened; it ends by TTL at the latest.
                rec.lock_failures += 1
                await trio.sleep(0.05)
                continue
            hold = Hold(name, handle.token, ttl, invoke, trio.current_time())
            rec.holds.append(hold)
            rec.counter.increment(name, handle.token)
            await trio.sleep(rng.uniform(0.01, 0.08))
            rec.counter.increment(name, handle.token)
            hold.end = trio.current_time()
            hold.how_ended = "released"
            try:
                await handle.unlock()
            except GlobalKVError:
                hold.how_ended = "release-failed"
            await trio.sleep(rng.uniform(0.0, 0.05))


async def lease_worker(
    cluster: LocalCluster, node: ergo_py.Node, worker: int, rec: Recorder, seed: int, deadline: float, ttl: float
) -> None:
    """Until `deadline`: grant a `ttl` lease, put two keys under it, keep it alive 0-2
    times, then stop and read the keys (linearizably, every 50 ms) until both are gone.
    The last cycle may end after `deadline`, once the run has healed: its keys must go.
    A cycle whose grant or puts failed is dropped (its lease expires all the same)."""
    rng = random.Random(seed)
    n = 0
    async with open_client(node, cluster.names, timeout=2, try_timeout=0.5, consistency="linearizable") as c:
        while trio.current_time() < deadline:
            n += 1
            prefix = f"{LEASE_PREFIX}{worker}-{n}/"
            asked = trio.current_time()
            try:
                lease = await c.lease_grant(ttl)
                cycle = LeaseCycle(lease.lease_id, ttl, asked)
                for name in ("k1", "k2"):
                    await c.put_kv(prefix + name, b"x", lease=lease.lease_id)
            except GlobalKVError:
                await trio.sleep(0.1)
                continue
            for _ in range(rng.randrange(3)):
                await trio.sleep(ttl / 3)
                asked = trio.current_time()
                try:
                    await c.lease_keepalive(cycle.lease_id)
                    cycle.alive_from = asked
                except GlobalKVError:
                    pass  # unknown: it may still extend the lease, never shorten it
            rec.lease_cycles.append(cycle)
            await _until_gone(c, prefix, cycle)
    await trio.sleep(2 * ttl)  # a lease of a dropped cycle has ended too: none is in the final state


async def _until_gone(c: Any, prefix: str, cycle: LeaseCycle) -> None:
    """Read the cycle's keys until both are gone (and a little after, to see them stay gone)."""
    reads_after = 0
    while reads_after < 3 and trio.current_time() < cycle.alive_from + cycle.ttl + 120:
        await trio.sleep(0.05)
        try:
            count = (await c.range_kv(prefix, prefix_range_end(prefix.encode()), count_only=True)).count
        except GlobalKVError:
            continue
        now = trio.current_time()
        cycle.split |= count == 1
        if count == 0 and cycle.gone is None:
            cycle.gone = now
        elif count and cycle.gone is not None:
            cycle.back = True
        if cycle.gone is not None:
            reads_after += 1
    if cycle.gone is not None:
        with trio.move_on_after(10):
            while True:
                try:
                    cycle.lease_after = (await c.lease_time_to_live(cycle.lease_id)).ttl >= 0
                    return
                except GlobalKVError:
                    await trio.sleep(0.1)
