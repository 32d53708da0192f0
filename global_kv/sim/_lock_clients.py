"""Simulated lock clients: acquires that wait in line, fenced writes, pauses and deaths.

Each lock client is one process on a node of its own (`lc0`, `lc1`, ...) with a PID
whose creation changes when it comes back after dying, and a session of the state
machine: a request retried after a lost answer keeps its (client_id, seq), so it is
applied at most once and answered with its first result. It sends protocol requests
(`LockRequest`, `RefreshRequest`, `UnlockRequest`) to the replica it believes leads,
which forwards them if it does not: the production replica's lock service queues an
acquire that finds the key held (FIFO, each with its own wait timeout, at most
`max_lock_waiters`), hands the lock to the next waiter in the same commit as the
release, and answers `LockTimeout` when a wait runs out. A cycle: acquire (a try-lock
or a wait), when granted make a few protected writes to the key's `FencedStore` with its
fencing token, sometimes refresh, then release.

Faults, during the chaos only: a client pauses in the middle of its critical section,
mostly for longer than its TTL (a GC pause, SIGSTOP: alive, connected, silent), so the
leader expires its lock and another client may take it while the first still believes
it holds it (on resuming, it refreshes half of the time: a refresh racing the expiry);
a client dies (the leader sees its PID down and proposes LockReleaseOwner) and comes
back as a new process; an episode cuts a client off from every replica (the leader sees
the link down) while its resource stays reachable. An answer reaches a client only over
a link that is up; a paused client reads it when it resumes. When the faults end, half
of the clients holding a lock forget it (a leaked handle): only its TTL can free it.

Some clients have no listener (dial-only, as `GlobalClient` on a node without one): a
replica cannot dial them, and their link to a replica exists only once they dialled it
(again after it restarted or a partition cut it). A new leader that starts watching
such an owner before it linked sees a link-lost DOWN and waits out the grace period
(`owner_grace_period`) for the owner to link, instead of releasing its locks at once.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import TYPE_CHECKING, Any

from ergo_py.ids import PID

from .._errors import (
    LockHeld,
    LockNotHeld,
    LockTimeout,
    NotLeader,
    RaftInvariantError,
    SessionExpired,
    StaleToken,
    TooManyWaiters,
)
from ..protocol import LockRequest, RefreshRequest, SessionTag, UnlockRequest
from ._replica import TICK_SECONDS
from ._resource import Fence, FencedStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["LockClient", "LockWorkload"]

IDLE, SUBMIT, WAIT, HOLD, DEAD = range(5)
ACQUIRE, REFRESH, RELEASE = "acquire", "refresh", "release"
_LOST = (StaleToken, LockNotHeld)
_NOT_GRANTED = (LockHeld, LockTimeout, TooManyWaiters, LockNotHeld)


class LockClient:
    __slots__ = (
        "client_id",
        "dead_until",
        "deadline",
        "dial_only",
        "hint",
        "inbox",
        "incarnation",
        "key",
        "kind",
        "name",
        "next_at",
        "paused_until",
        "pid",
        "ref",
        "replica",
        "request",
        "seq",
        "sessions",
        "state",
        "token",
        "ttl",
        "wait",
        "workload",
        "writes_left",
    )

    def __init__(self, workload: LockWorkload, idx: int, dial_only: bool) -> None:
        self.workload = workload
        self.name = f"lc{idx}"
        self.dial_only = dial_only
        self.incarnation = 1
        self.pid = PID(self.name, 1, 1)
        self.sessions = 0
        self.client_id = ""
        self.seq = 0
        self.new_session()
        self.state = IDLE
        self.kind = ACQUIRE
        self.request: Any = None
        self.replica: SimReplica | None = None
        self.ref = 0
        self.deadline = 0
        self.hint: str | None = None
        self.inbox: tuple[bool, Any] | None = None
        self.key = b""
        self.token = 0
        self.ttl = 0
        self.wait = 0
        self.writes_left = 0
        self.next_at = 0
        self.paused_until = 0
        self.dead_until = 0

    def new_session(self) -> None:
        self.sessions += 1
        self.client_id = f"{self.name}.{self.incarnation}.{self.sessions}"
        self.seq = 0

    def on_reply(self, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        if ref != self.ref or self.state != WAIT or not self.workload.linked(self.name, r.id):
            return  # a stale answer, or lost on the way: the client retries after its timeout
        self.inbox = (ok, value)  # read at the client's next step (or when it resumes)

    def forwarded_to(self, r: SimReplica, ref: int) -> None:
        if ref == self.ref and self.state == WAIT:
            self.replica = r


class LockWorkload:
    def __init__(
        self,
        sim: Simulation,
        rng: random.Random,
        clients: int,
        keys: int,
        fence_factory: Callable[[bytes], Fence],
        heavy: bool = False,
    ) -> None:
        self.sim = sim
        self.rng = rng
        if heavy:
            clients, keys = 4, 1
        self.keys = [f"L{i}".encode() for i in range(keys)]
        self.stores = {k: FencedStore(k, fence_factory(k), self._accepted) for k in self.keys}
        p_dial_only = rng.choice((0.0, 0.0, 0.5))
        self.clients = [LockClient(self, i, rng.random() < p_dial_only) for i in range(clients)]
        self.by_node = {c.name: c for c in self.clients}
        self.ttl_min = rng.randint(8, 30)
        self.p_pause = rng.choice((0.0, 0.08, 0.2))
        if heavy:
            self.p_pause = 0.2
        self.p_refresh = rng.choice((0.0, 0.1, 0.25))
        self.p_crash = rng.choice((0.0, 0.002, 0.006))
        self.p_wait = rng.choice((0.0, 0.5, 0.9))  # an acquire waits in line (else a try-lock)
        self.timeout = 40
        self.next_ref = 0
        self.accepting = True
        self.dialled: dict[tuple[str, str], int] = {}  # (dial-only client, replica) -> its incarnation
        self.stats_grants_told = 0
        self.stats_pauses = 0
        self.stats_stale_holders = 0
        self.stats_crashes = 0
        self.stats_lost_holds = 0
        self.stats_retries = 0
        self.stats_sessions_expired = 0
        self.stats_leaked = 0
        self.stats_timeouts = 0
        self.stats_waited = 0

    # --- ground truth the leaders' "monitors" see ----------------------------------

    def owner_down(self, owner: PID, replica_id: str) -> bool:
        """Would a monitor of `owner` held by `replica_id` have fired (noproc / noconnection)?"""
        if not self.alive(owner):
            return True
        return not self.linked(owner.node, replica_id)

    def alive(self, owner: PID) -> bool:
        c = self.by_node.get(owner.node)
        return c is not None and c.state != DEAD and c.pid == owner

    def linked(self, name: str, replica_id: str) -> bool:
        """Is a link between client node `name` and the replica up now?"""
        if self._cut(name, replica_id):
            self.dialled.pop((name, replica_id), None)  # a cut link must be dialled again
            return False
        c = self.by_node.get(name)
        if c is None or not c.dial_only:
            return True
        r = self.sim.replicas.get(replica_id)
        return r is not None and self.dialled.get((name, replica_id)) == r.incarnation

    def dialable(self, name: str, replica_id: str) -> bool:
        """Can the replica dial client node `name` (does it have a listener)?"""
        c = self.by_node.get(name)
        return c is None or not c.dial_only

    def grace_ticks(self, owner: PID) -> int:
        """How long a leader may wait before releasing a down owner's locks (see
        LockMonitor (d)): a dial-only owner may be in its grace period."""
        c = self.by_node.get(owner.node)
        if c is None or not c.dial_only:
            return 0
        return math.ceil(self.sim.replica_options.owner_grace_period / TICK_SECONDS * 1.25) + 2

    def _accepted(self, key: bytes, token: int, writer: PID) -> None:
        self.sim.lock_monitor.on_protected_write(key, token, writer, self.sim.clock())

    def _dial(self, c: LockClient) -> None:
        """A dial-only client keeps links to the members (GlobalClient's LinkKeeper)."""
        if not c.dial_only or self.rng.random() >= 0.3:
            return
        for r in self.sim.live_replicas():
            if self.dialled.get((c.name, r.id)) != r.incarnation and not self._cut(c.name, r.id):
                self.dialled[(c.name, r.id)] = r.incarnation
                return

    def _cut(self, name: str, replica_id: str) -> bool:
        blocked = self.sim.net.blocked
        return bool(blocked) and ((name, replica_id) in blocked or (replica_id, name) in blocked)

    # --- driving ---------------------------------------------------------------------

    def busy(self) -> bool:
        return any(c.state not in (IDLE, DEAD) or c.inbox is not None for c in self.clients)

    def tick(self) -> None:
        now, rng = self.sim.now, self.rng
        chaos = self.sim.chaos
        for c in self.clients:
            if c.state == DEAD:
                if now >= c.dead_until:
                    self._come_back(c)
                continue
            if c.paused_until:
                if now < c.paused_until:
                    continue
                self._resume(c)
            if chaos and self.p_crash and rng.random() < self.p_crash:
                self._die(c)
                continue
            self._dial(c)
            if c.inbox is not None:
                (ok, value), c.inbox = c.inbox, None
                self._on_result(c, ok, value)
            st = c.state
            if st == IDLE:
                if self.accepting and now >= c.next_at and rng.random() < 0.3:
                    c.key = rng.choice(self.keys)
                    c.ttl = rng.randint(self.ttl_min, 2 * self.ttl_min)
                    c.wait = rng.randint(5, 60) if rng.random() < self.p_wait else 0
                    self._start(c, ACQUIRE, LockRequest(c.key, c.pid, c.ttl * TICK_SECONDS, c.wait * TICK_SECONDS))
            elif st == SUBMIT:
                if now >= c.next_at:
                    self._submit(c)
            elif st == WAIT:
                if now >= c.deadline:
                    self._retry(c)
            elif st == HOLD and now >= c.next_at:
                self._critical_step(c)

    def heal(self) -> None:
        """Paused clients resume and dead ones come back (the faults are over); half of
        the clients holding a lock forget it without releasing (a leaked handle), so
        the drain can end only if the leader expires it by its TTL."""
        for c in self.clients:
            if c.state == DEAD:
                c.dead_until = self.sim.now
            if c.paused_until:
                c.paused_until = self.sim.now
            if c.state == HOLD and self.rng.random() < 0.5:
                self.sim.event(f"{c.name} forgets its lock on {c.key!r} (token {c.token})")
                self.stats_leaked += 1
                self._idle(c)

    def _start(self, c: LockClient, kind: str, request: Any) -> None:
        c.seq += 1
        c.kind = kind
        # The request with this attempt's session tag (client_id, seq, ack = seq).
        c.request = dataclasses.replace(request, session=SessionTag(c.client_id, c.seq, c.seq))
        c.state = SUBMIT
        self._submit(c)

    def _critical_step(self, c: LockClient) -> None:
        rng = self.rng
        if c.writes_left <= 0 or not self.accepting:
            self._start(c, RELEASE, UnlockRequest(c.key, c.token))
            return
        roll = rng.random()
        if self.sim.chaos and roll < self.p_pause:
            # Mostly longer than the TTL on any clock; some end just as it runs out.
            c.paused_until = self.sim.now + rng.randint(math.ceil(0.8 * c.ttl), 3 * c.ttl)
            self.stats_pauses += 1
            self.sim.event(f"{c.name} pauses holding {c.key!r} token {c.token}")
            return
        if roll < self.p_pause + self.p_refresh:
            self._start(c, REFRESH, RefreshRequest(c.key, c.token, c.ttl * TICK_SECONDS))
            return
        c.writes_left -= 1
        if not self.stores[c.key].write(c.token, c.pid):
            self.stats_lost_holds += 1  # a newer token wrote: this hold is over
            self._idle(c)
            return
        c.next_at = self.sim.now + rng.randint(1, 3)

    def _on_result(self, c: LockClient, ok: bool, value: Any) -> None:
        kind, t = c.kind, type(value)
        if not ok and isinstance(value, NotLeader):
            hint = value.leader_hint
            c.hint = hint if isinstance(hint, str) else None
            if c.hint is None:  # nobody known to lead: ask again a little later
                c.next_at = self.sim.now + self.rng.randint(1, 3)
            c.state, c.replica = SUBMIT, None
        elif not ok and t is SessionExpired:
            # The answer to this request is lost with the session: start a new one. A
            # lock it may hold unknowingly expires by its TTL.
            self.stats_sessions_expired += 1
            c.new_session()
            self._idle(c)
        elif kind == ACQUIRE and ok:
            self.sim.lock_monitor.on_told(c.pid, c.key, value, self.sim.clock())
            self.stats_grants_told += 1
            self.stats_waited += c.wait > 0
            c.token = value
            c.state = HOLD
            c.writes_left = self.rng.randint(1, 4)
            c.next_at = self.sim.now + self.rng.randint(0, 3)
        elif kind == ACQUIRE and t in _NOT_GRANTED:
            self.stats_timeouts += t is LockTimeout
            self._idle(c)
        elif kind == REFRESH and ok:
            c.state = HOLD
        elif kind == REFRESH and t in _LOST:
            self.stats_lost_holds += 1
            self._idle(c)
        elif kind == RELEASE and (ok or t in _LOST):
            self._idle(c)
        else:
            raise RaftInvariantError(f"{c.name}: a {kind} answered {'ok' if ok else 'error'} {value!r}")

    def _idle(self, c: LockClient) -> None:
        c.state = IDLE
        c.token = 0
        c.replica = None
        c.next_at = self.sim.now + self.rng.randint(1, 10)

    def _resume(self, c: LockClient) -> None:
        c.paused_until = 0
        if c.state == HOLD:
            held = self.sim.lock_monitor.holders.get(c.key)
            if held is None or held.token != c.token:
                self.stats_stale_holders += 1  # it still believes it holds the lock
                self.sim.event(f"{c.name} resumes; its token {c.token} no longer holds {c.key!r}")
            if self.rng.random() < 0.5:
                # A careful client renews its lease after a pause (racing the leader's
                # expiry of it); a careless one just writes on.
                self._start(c, REFRESH, RefreshRequest(c.key, c.token, c.ttl * TICK_SECONDS))

    def _die(self, c: LockClient) -> None:
        self.sim.event(f"{c.name} ({c.pid}) dies" + (f" holding token {c.token}" if c.state == HOLD else ""))
        c.state = DEAD
        c.replica = None
        c.inbox = None
        c.dead_until = self.sim.now + self.rng.randint(10, 60)
        self.stats_crashes += 1

    def _come_back(self, c: LockClient) -> None:
        c.incarnation += 1
        c.pid = PID(c.name, 1, c.incarnation)
        c.new_session()
        c.hint = None
        self._idle(c)

    # --- talking to replicas -----------------------------------------------------------

    def _pick(self, c: LockClient) -> SimReplica | None:
        sim = self.sim
        if c.hint is not None:
            r = sim.replicas.get(c.hint)
            if r is not None and r.replica is not None and not r.retired and self.linked(c.name, r.id):
                return r
        live = [r for r in sim.live_replicas() if self.linked(c.name, r.id)]
        return self.rng.choice(live) if live else None

    def _submit(self, c: LockClient) -> None:
        r = self._pick(c)
        if r is None:
            c.next_at = self.sim.now + self.rng.randint(1, 3)
            return
        self.next_ref += 1
        c.ref = self.next_ref
        c.replica, c.hint = r, r.id
        c.state = WAIT
        c.deadline = self.sim.now + self.timeout + (c.wait if c.kind == ACQUIRE else 0)
        r.request(c, c.ref, c.request)

    def _retry(self, c: LockClient) -> None:
        """No answer in time: send the same request again (the session dedups it)."""
        c.replica = None
        c.hint = None
        c.state = SUBMIT
        self.stats_retries += 1

    def on_crash(self, r: SimReplica) -> None:
        """Requests waiting on `r` can no longer be answered by it: ask again."""
        for c in self.clients:
            if c.replica is r and c.state == WAIT:
                c.replica = None
                c.state = SUBMIT
