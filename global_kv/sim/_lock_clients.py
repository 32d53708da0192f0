"""Simulated lock clients: try-lock through the leader, fenced writes, pauses and deaths.

Each lock client is one process on a node of its own (`lc0`, `lc1`, ...) with a PID
whose creation changes when it comes back after dying, and a session of the state
machine: a request retried after a lost answer keeps its (client_id, seq), so it is
applied at most once and answered with its first result. A cycle: propose
`LockAcquire(key, owner, ttl)` on the replica it believes leads (a follower refuses),
retrying until an answer arrives; when granted, make a few protected writes to the
key's `FencedStore` with its fencing token, sometimes refresh, then release. Refused
(LockHeld): back off and try again later.

Faults, during the chaos only: a client pauses in the middle of its critical section,
mostly for longer than its TTL (a GC pause, SIGSTOP: alive, connected, silent), so the
leader expires its lock and another client may take it while the first still believes
it holds it (on resuming, it refreshes half of the time: a refresh racing the expiry);
a client dies (the leader sees its PID down and proposes LockReleaseOwner) and comes
back as a new process; an episode cuts a client off from every replica (the leader sees
the link down) while its resource stays reachable. An answer reaches a client only over
a link that is up; a paused client reads it when it resumes. When the faults end, half
of the clients holding a lock forget it (a leaked handle): only its TTL can free it.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from ergo_py.ids import PID

from .._errors import NotLeader, RaftInvariantError
from ..raft import Entry, Role
from ..state import (
    Command,
    Granted,
    LockAcquire,
    LockHeldResult,
    LockNotHeldResult,
    LockRefresh,
    LockRelease,
    Op,
    Released,
    Result,
    SessionExpiredResult,
    StaleTokenResult,
    encode_command,
)
from ._resource import Fence, FencedStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["LockClient", "LockWorkload"]

LEADER = Role.LEADER
IDLE, SUBMIT, WAIT, HOLD, DEAD = range(5)
ACQUIRE, REFRESH, RELEASE = "acquire", "refresh", "release"
_LOST = (StaleTokenResult, LockNotHeldResult)


class LockClient:
    __slots__ = (
        "client_id",
        "data",
        "deadline",
        "dead_until",
        "hint",
        "inbox",
        "incarnation",
        "index",
        "key",
        "kind",
        "name",
        "next_at",
        "paused_until",
        "pid",
        "proposed",
        "replica",
        "seq",
        "sessions",
        "state",
        "term",
        "token",
        "ttl",
        "writes_left",
    )

    def __init__(self, idx: int) -> None:
        self.name = f"lc{idx}"
        self.incarnation = 1
        self.pid = PID(self.name, 1, 1)
        self.sessions = 0
        self.client_id = ""
        self.seq = 0
        self.new_session()
        self.state = IDLE
        self.kind = ACQUIRE
        self.data = b""
        self.replica: SimReplica | None = None
        self.index = 0
        self.term = 0
        self.deadline = 0
        self.hint: str | None = None
        self.inbox: Result | None = None
        self.key = b""
        self.token = 0
        self.ttl = 0
        self.writes_left = 0
        self.proposed = False  # the current request reached a log at least once
        self.next_at = 0
        self.paused_until = 0
        self.dead_until = 0

    def new_session(self) -> None:
        self.sessions += 1
        self.client_id = f"{self.name}.{self.incarnation}.{self.sessions}"
        self.seq = 0


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
        self.clients = [LockClient(i) for i in range(clients)]
        self.by_node = {c.name: c for c in self.clients}
        self.ttl_min = rng.randint(8, 30)
        self.p_pause = rng.choice((0.0, 0.08, 0.2))
        if heavy:
            self.p_pause = 0.2
        self.p_refresh = rng.choice((0.0, 0.1, 0.25))
        self.p_crash = rng.choice((0.0, 0.002, 0.006))
        self.timeout = 40
        self.accepting = True
        self.stats_grants_told = 0
        self.stats_pauses = 0
        self.stats_stale_holders = 0
        self.stats_crashes = 0
        self.stats_lost_holds = 0
        self.stats_retries = 0
        self.stats_sessions_expired = 0
        self.stats_leaked = 0

    # --- ground truth the leaders' "monitors" see ----------------------------------

    def owner_down(self, owner: PID, replica_id: str) -> bool:
        """Would a monitor of `owner` held by `replica_id` have fired (noproc / noconnection)?"""
        c = self.by_node.get(owner.node)
        if c is None or c.state == DEAD or c.pid != owner:
            return True
        return not self._linked(c.name, replica_id)

    def _linked(self, name: str, replica_id: str) -> bool:
        blocked = self.sim.net.blocked
        return not blocked or ((name, replica_id) not in blocked and (replica_id, name) not in blocked)

    def _accepted(self, key: bytes, token: int, writer: PID) -> None:
        self.sim.lock_monitor.on_protected_write(key, token, writer, self.sim.clock())

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
            if c.inbox is not None:
                result, c.inbox = c.inbox, None
                self._on_result(c, result)
            st = c.state
            if st == IDLE:
                if self.accepting and now >= c.next_at and rng.random() < 0.3:
                    c.key = rng.choice(self.keys)
                    c.ttl = rng.randint(self.ttl_min, 2 * self.ttl_min)
                    self._start(c, ACQUIRE, LockAcquire(c.key, c.pid, c.ttl))
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

    def _start(self, c: LockClient, kind: str, op: Op) -> None:
        c.seq += 1
        c.kind = kind
        c.proposed = False
        c.data = encode_command(Command(c.client_id, c.seq, c.seq, op))
        c.state = SUBMIT
        self._submit(c)

    def _critical_step(self, c: LockClient) -> None:
        rng = self.rng
        if c.writes_left <= 0 or not self.accepting:
            self._start(c, RELEASE, LockRelease(c.key, c.token))
            return
        roll = rng.random()
        if self.sim.chaos and roll < self.p_pause:
            # Mostly longer than the TTL on any clock; some end just as it runs out.
            c.paused_until = self.sim.now + rng.randint(math.ceil(0.8 * c.ttl), 3 * c.ttl)
            self.stats_pauses += 1
            self.sim.event(f"{c.name} pauses holding {c.key!r} token {c.token}")
            return
        if roll < self.p_pause + self.p_refresh:
            self._start(c, REFRESH, LockRefresh(c.key, c.token, c.ttl))
            return
        c.writes_left -= 1
        if not self.stores[c.key].write(c.token, c.pid):
            self.stats_lost_holds += 1  # a newer token wrote: this hold is over
            self._idle(c)
            return
        c.next_at = self.sim.now + rng.randint(1, 3)

    def _on_result(self, c: LockClient, result: Result) -> None:
        kind, t = c.kind, type(result)
        if t is SessionExpiredResult:
            # The answer to this request is lost with the session: start a new one. A
            # lock it may hold unknowingly expires by its TTL.
            self.stats_sessions_expired += 1
            c.new_session()
            self._idle(c)
        elif kind == ACQUIRE and t is Granted:
            self.sim.lock_monitor.on_told(c.pid, c.key, result.token, self.sim.clock())  # type: ignore[union-attr]
            self.stats_grants_told += 1
            c.token = result.token  # type: ignore[union-attr]
            c.state = HOLD
            c.writes_left = self.rng.randint(1, 4)
            c.next_at = self.sim.now + self.rng.randint(0, 3)
        elif kind == ACQUIRE and t is LockHeldResult:
            self._idle(c)
        elif kind == REFRESH and t is Granted:
            c.state = HOLD
        elif kind == REFRESH and t in _LOST:
            self.stats_lost_holds += 1
            self._idle(c)
        elif kind == RELEASE and (t is Released or t in _LOST):
            self._idle(c)
        else:
            raise RaftInvariantError(f"{c.name}: a {kind} answered {result}")

    def _idle(self, c: LockClient) -> None:
        c.state = IDLE
        c.token = 0
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
                self._start(c, REFRESH, LockRefresh(c.key, c.token, c.ttl))

    def _die(self, c: LockClient) -> None:
        self.sim.event(f"{c.name} ({c.pid}) dies" + (f" holding token {c.token}" if c.state == HOLD else ""))
        self._forget(c)
        c.state = DEAD
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
            if r is not None and r.node is not None and not r.retired and self._linked(c.name, r.id):
                return r
        live = [r for r in sim.live_replicas() if self._linked(c.name, r.id)]
        return self.rng.choice(live) if live else None

    def _submit(self, c: LockClient) -> None:
        r = self._pick(c)
        if r is None or r.node is None:
            c.next_at = self.sim.now + self.rng.randint(1, 3)
            return
        node, sm, service = r.node, r.sm, r.locks
        if c.kind == ACQUIRE and not c.proposed and service is not None and service.term and sm is not None:
            held = sm.lock(c.key)
            if held is not None and node.role is LEADER:
                # The leader's try-lock answers at once when the key is held, as
                # LockService.acquire does (a retry goes through the log: it may be ours).
                c.inbox = LockHeldResult(c.key, held.owner, held.token)
                c.state, c.replica = WAIT, None
                c.deadline = self.sim.now + self.timeout
                return
        try:
            index = node.propose(c.data)
        except NotLeader as exc:
            hint = exc.leader_hint
            c.hint = hint if isinstance(hint, str) and hint != r.id else None
            if c.hint is None:  # nobody known to lead: ask again a little later
                c.next_at = self.sim.now + self.rng.randint(1, 3)
            return
        self.sim.monitor.observe(r)
        c.proposed = True
        r.pending_locks.setdefault(index, []).append(c)
        c.replica, c.index, c.term, c.hint = r, index, node.term, r.id
        c.state = WAIT
        c.deadline = self.sim.now + self.timeout

    def _retry(self, c: LockClient) -> None:
        """No answer in time: propose the same request again (the session dedups it)."""
        self._forget(c)
        c.hint = None
        c.state = SUBMIT
        self.stats_retries += 1

    def _forget(self, c: LockClient) -> None:
        r = c.replica
        if r is not None:
            waiting = r.pending_locks.get(c.index)
            if waiting is not None and c in waiting:
                waiting.remove(c)
                if not waiting:
                    del r.pending_locks[c.index]
        c.replica = None

    def on_apply(self, r: SimReplica, e: Entry, result: Result | None) -> None:
        waiting = r.pending_locks.pop(e.index, None)
        if waiting is None:
            return
        for c in waiting:
            if c.replica is not r or c.index != e.index or c.state != WAIT:
                continue
            c.replica = None
            if e.term != c.term:
                c.state = SUBMIT  # another entry took its index: it never commits
                continue
            if e.data != c.data or result is None:
                raise RaftInvariantError(f"entry ({e.index}, {e.term}) is not the proposal {c.name} made there")
            if self._linked(c.name, r.id):
                c.inbox = result  # read at the client's next step (or when it resumes)
            # else the answer is lost on the way: the client retries after its timeout

    def resubmit_all(self, r: SimReplica, up_to: int | None = None) -> None:
        """Requests pending on `r` whose answer can no longer come from it: ask again."""
        for index in [i for i in r.pending_locks if up_to is None or i <= up_to]:
            for c in r.pending_locks.pop(index):
                if c.replica is r and c.state == WAIT:
                    c.replica = None
                    c.state = SUBMIT

    def on_crash(self, r: SimReplica) -> None:
        self.resubmit_all(r)

    def on_snapshot(self, r: SimReplica, index: int) -> None:
        self.resubmit_all(r, index)
