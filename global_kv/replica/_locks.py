"""The leader's side of distributed locks: wait queues, TTL timers, owner monitors.

The lock table itself is replicated state (`global_kv.state`): who holds a key,
with which fencing token (the index of the granting entry). Everything here is
leader-local and rebuilt when a replica becomes leader:

- FIFO wait queues per key, each waiter with its own deadline, at most
  `max_lock_waiters` per key. When a release is applied the first waiter still
  waiting gets the lock through the log (an acquire proposed with the waiter's own
  session tag, so a retry of it is deduplicated). Queues are lost on a leader
  change; waiters are told `NotLeader` and their clients re-queue at the new leader.
- TTL deadlines from the leader's own clock (`global_kv.state.LockTimers`): armed when
  a grant or refresh is applied, re-armed from "now" for every lock when a replica
  becomes leader (a lock may live a little longer than its TTL after a failover, never
  shorter). Expiry is proposed as `LockExpire(key, token, refreshed_index)`, which the
  state machine ignores if the lock was refreshed or re-granted meanwhile. Nothing is
  proposed unless the core still leads the term the deadlines were armed in (a
  leadership lost and regained between two Readies shows up as one role report).
- Owner monitors: the leader monitors every owner in the table, and every owner of a
  lease (a `Monitor` effect); an owner's DOWN (exit, kill, or its node's link lost)
  proposes `LockReleaseOwner(owner)`, which releases its locks and revokes its leases.
  A DOWN for an owner holding nothing changes nothing.
- Owners the leader cannot dial: a client node without a listener is reachable only
  over a link it dialled. When the leader starts watching such an owner before that
  node has linked to it (a new leader, typically), the link-lost DOWN that follows
  starts a grace period (`owner_grace_period`) instead of a release: once the node
  links, the owner is monitored again; if the grace runs out first, the owner counts
  as gone. A link that was up and drops is a lost node, released at once.

Time is the replica's clock in seconds, handed to every method that needs it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import LockHeld, LockNotHeld, LockTimeout, NotLeader, TooManyWaiters
from ..protocol import LockInfo, LockRequest, RefreshRequest, UnlockRequest, lock_command_for
from ..raft import Role
from ..state import Command, Granted, LockHeldResult, LockReleaseOwner, LockTimers, Op, Released
from ._effects import Demonitor, Monitor, Proposing

if TYPE_CHECKING:
    from ._global_replica import GlobalReplica

__all__ = ["LockService"]


@dataclass
class _Waiter:
    caller: Any
    ref: Any
    request: LockRequest
    deadline: float


class LockService:
    def __init__(self, replica: GlobalReplica) -> None:
        self.replica = replica
        options = replica.options
        self.options = options
        self.term = 0  # the term this replica leads and armed its timers in; 0 while not leading
        self.lead_since = 0.0  # when (replica clock) it learned it leads
        self.waiters: dict[bytes, deque[_Waiter]] = {}
        self.acquiring: dict[bytes, int] = {}  # acquires proposed, not yet applied
        self.timers = LockTimers(ttl_unit=0.001, retry_after=options.expiry_retry)
        self.since: dict[bytes, float] = {}  # key -> when this leader saw it granted
        self.monitors: set[Any] = set()
        self.grace: dict[Any, float] = {}  # owner on a node we cannot dial -> until when it may link
        self.unlinked: set[Any] = set()  # owners monitored while their node had no link to us
        # Gone owners whose LockReleaseOwner is proposed, not yet applied:
        # re-proposed every expiry_retry until nothing of theirs is left (a proposal can be
        # refused, e.g. during a leadership transfer, and the owner's DOWN will not come again).
        self.releasing: dict[Any, tuple[float, bool]] = {}  # owner -> (when, it exited)
        self.acquired_total = 0
        self.released_total = 0

    @property
    def active(self) -> bool:
        return self.term != 0

    # -- requests (leader only) -------------------------------------------------------------
    def acquire(self, caller: Any, ref: Any, request: LockRequest, now: float) -> None:
        key = request.key
        held = self.replica.sm.lock(key)
        if held is not None and held.owner == request.owner:
            # Its own lock: maybe a retry of the request that was granted (its session answers
            # with that grant), else the state machine says LockHeld. Never a wait for itself.
            self._propose_acquire(caller, ref, request)
            return
        if request.timeout <= 0:
            if held is not None:
                raise LockHeld(key, held.owner, held.token)
            self._propose_acquire(caller, ref, request)
            return
        if held is None and not self.waiters.get(key) and not self.acquiring.get(key):
            self._propose_acquire(caller, ref, request)
            return
        self._enqueue(_Waiter(caller, ref, request, now + request.timeout))

    def release(self, caller: Any, ref: Any, request: UnlockRequest, now: float) -> None:
        self.replica.propose(self._command(request), caller, ref, request)
        held = self.replica.sm.lock(request.key)
        if held is not None and held.token == request.token and not self.acquiring.get(request.key):
            # Hand over in the same round: the next waiter's acquire is proposed right behind
            # the release, so one commit serves both (a hot lock changes hands in one round
            # trip, not two). Should the release fail, the acquire finds the lock held and
            # its waiter goes back to the front of the line.
            self._grant_next(request.key, now)

    def refresh(self, caller: Any, ref: Any, request: RefreshRequest) -> None:
        self.replica.propose(self._command(request), caller, ref, request)

    def _command(self, request: LockRequest | UnlockRequest | RefreshRequest) -> Command:
        return lock_command_for(request, default_ttl=self.options.default_lock_ttl)

    def _propose_acquire(self, caller: Any, ref: Any, request: LockRequest) -> None:
        self.acquiring[request.key] = self.acquiring.get(request.key, 0) + 1
        self.replica.propose(self._command(request), caller, ref, request)

    def _enqueue(self, waiter: _Waiter, front: bool = False) -> None:
        key = waiter.request.key
        queue = self.waiters.setdefault(key, deque())
        session = waiter.request.session
        if session.client_id is not None:
            for queued in queue:
                if queued.request.session == session and queued.request.owner == waiter.request.owner:
                    # A retry of a request already in line keeps its place; the answer goes to
                    # the attempt its client is waiting on now (one place per request).
                    queued.caller, queued.ref = waiter.caller, waiter.ref
                    queued.deadline = max(queued.deadline, waiter.deadline)
                    return
        if len(queue) >= self.options.max_lock_waiters:
            raise TooManyWaiters(key, self.options.max_lock_waiters)
        if front:
            queue.appendleft(waiter)
        else:
            queue.append(waiter)
        self.watch(waiter.request.owner)

    # -- results of applied entries ------------------------------------------------------------
    def settled(self, request: Any, now: float) -> None:
        """An acquire we proposed is decided (applied, or lost to another leader's entry)."""
        if isinstance(request, LockRequest):
            left = self.acquiring.get(request.key, 0) - 1
            if left > 0:
                self.acquiring[request.key] = left
            else:
                self.acquiring.pop(request.key, None)
                if not self.replica.sm.lock(request.key):
                    # Nobody holds it and nothing is in flight: the waiters must not wait for
                    # a release that will never come.
                    self._grant_next(request.key, now)

    def on_result(self, index: int, result: Any, request: Any, caller: Any, ref: Any, now: float) -> bool:
        """Leader bookkeeping for one applied result. True if it answered (or re-queued) the caller.

        A duplicate (a retried request answered from its session) carries the result of an
        older entry: it must not re-arm or disarm whoever holds the key now, so timers
        change only for results produced by this very entry.
        """
        sm = self.replica.sm
        if isinstance(result, Granted):
            lock = sm.lock(result.key)
            if self.timers.on_result(result, index, lock, now):
                assert lock is not None
                if isinstance(request, LockRequest):
                    self.acquired_total += 1
                    self.since[result.key] = now
                self.watch(lock.owner)
            elif (
                isinstance(request, LockRequest) and caller is not None and (lock is None or lock.token != result.token)
            ):
                # A retried acquire answered from its session with a grant that has expired
                # (or been released) since: telling the caller "granted" would hand it a lock
                # someone else may hold now. Its client asks again.
                self.replica.reply_error(caller, ref, LockNotHeld(result.key))
                return True
            return False
        if isinstance(result, Released):
            self.timers.on_result(result, index, None, now)
            for key, token in result.locks:
                lock = sm.lock(key)
                if lock is None or lock.token != token:
                    self.released_total += 1
                    self.since.pop(key, None)
                if lock is None and not self.acquiring.get(key):
                    self._grant_next(key, now)  # unless a handed-over acquire is on its way
            return False
        if isinstance(result, LockHeldResult) and isinstance(request, LockRequest) and caller is not None:
            if request.timeout > 0 and result.holder != request.owner:
                # Lost a race to another acquire: wait in line (first, it was here first).
                try:
                    self._enqueue(_Waiter(caller, ref, request, now + request.timeout), front=True)
                except TooManyWaiters as exc:
                    self.replica.reply_error(caller, ref, exc)
                return True
        return False

    def _grant_next(self, key: bytes, now: float) -> None:
        queue = self.waiters.get(key)
        host = self.replica.host
        while queue:
            waiter = queue.popleft()
            if waiter.deadline <= now:
                self.replica.reply_error(waiter.caller, waiter.ref, LockTimeout(key, waiter.request.timeout))
                continue
            if host.is_gone(waiter.request.owner):
                continue
            self._propose_acquire(waiter.caller, waiter.ref, waiter.request)
            break
        if queue is not None and not queue:
            self.waiters.pop(key, None)

    # -- owners -----------------------------------------------------------------------------
    def watch(self, owner: Any) -> None:
        """Monitor `owner` (a lock holder, a waiter, or a lease's owner) while leading."""
        if self.active and owner not in self.monitors and owner not in self.grace:
            if not self.replica.host.is_connected(owner.node):
                self.unlinked.add(owner)
            self.monitors.add(owner)
            self.replica.effects.append(Monitor(owner))

    def on_down(self, owner: Any, link_lost: bool, now: float) -> None:
        """The monitor of `owner` fired: it exited (`link_lost` False) or the link to its
        node is down."""
        self.monitors.discard(owner)
        never_linked = owner in self.unlinked
        self.unlinked.discard(owner)
        if not self.active:
            return
        if (
            link_lost
            and never_linked
            and self.options.owner_grace_period > 0
            and not self.replica.host.can_reach(owner.node)
        ):
            # We cannot dial its node; it may not have linked to us yet. Wait for it (check()).
            self.grace.setdefault(owner, now + self.options.owner_grace_period)
            return
        self._owner_gone(owner, now, not link_lost)

    def _owner_gone(self, owner: Any, now: float, exited: bool) -> None:
        for key, queue in list(self.waiters.items()):
            kept = deque(w for w in queue if w.request.owner != owner)
            if kept:
                self.waiters[key] = kept
            else:
                self.waiters.pop(key, None)
        sm = self.replica.sm
        if sm.locks_of(owner) or sm.leases_of(owner):
            self._propose_own(LockReleaseOwner(owner))  # its locks released, its leases revoked
            self.releasing[owner] = (now, exited)

    def _propose_own(self, op: Op) -> None:
        self.replica.effects.append(Proposing(op, self.term))
        self.replica.propose(Command(None, 0, 0, op), None, None, None)

    # -- leadership -------------------------------------------------------------------------
    def _forget(self) -> None:
        self.waiters.clear()
        self.acquiring.clear()
        self.timers.clear()
        self.since.clear()
        self.grace.clear()
        self.unlinked.clear()
        self.releasing.clear()  # a new leader watches every owner again (become_leader)

    def become_leader(self, term: int, now: float) -> None:
        """Re-arm every held lock from now: the old leader's timers died with it."""
        self._forget()
        self.term = term
        self.lead_since = now
        locks = self.replica.sm.locks()
        self.timers.arm_all(locks, now)
        for lock in locks:
            self.since.setdefault(lock.key, now)
        for owner in self.replica.sm.owners():  # lock holders and lease owners
            self.watch(owner)

    def become_follower(self, leader_hint: Any) -> None:
        if not self.active:
            return
        self.term = 0
        error = NotLeader(leader_hint)
        for queue in self.waiters.values():
            for waiter in queue:
                self.replica.reply_error(waiter.caller, waiter.ref, error)
        self._forget()
        for owner in sorted(self.monitors, key=repr):
            self.replica.effects.append(Demonitor(owner))
        self.monitors.clear()

    # -- timers -------------------------------------------------------------------------------
    def check(self, now: float) -> None:
        """Expire TTLs and time out waiters (every lock check period)."""
        if not self.active:
            return
        raft = self.replica.raft
        if raft.role is not Role.LEADER or raft.term != self.term:
            return  # deposed (or re-elected) since the last role report: wait for it
        host, sm = self.replica.host, self.replica.sm
        for owner, until in list(self.grace.items()):
            if host.is_connected(owner.node):
                del self.grace[owner]
                self.watch(owner)  # linked now: a dead owner gives noproc at once
            elif until <= now:
                del self.grace[owner]
                self._owner_gone(owner, now, False)
        retry = self.options.expiry_retry
        for owner, (when, exited) in list(self.releasing.items()):
            if not (sm.locks_of(owner) or sm.leases_of(owner)):
                del self.releasing[owner]
            elif now - when >= retry:
                if not exited and host.is_connected(owner.node):
                    # Lost with its link, which is back: ask again whether it lives (a dead
                    # owner's monitor fires at once, noproc) instead of deciding for it.
                    del self.releasing[owner]
                    self.watch(owner)
                else:
                    self._propose_own(LockReleaseOwner(owner))
                    self.releasing[owner] = (now, exited)
        for op in self.timers.due(sm.lock, now):
            self._propose_own(op)
            self.timers.proposed(op, now)
        for key, queue in list(self.waiters.items()):
            kept: deque[_Waiter] = deque()
            for waiter in queue:
                if waiter.deadline <= now:
                    self.replica.reply_error(waiter.caller, waiter.ref, LockTimeout(key, waiter.request.timeout))
                else:
                    kept.append(waiter)
            if kept:
                self.waiters[key] = kept
            else:
                self.waiters.pop(key, None)

    # -- operations ---------------------------------------------------------------------------
    def list_locks(self, now: float) -> list[LockInfo]:
        out = []
        for lock in self.replica.sm.locks():
            since = self.since.get(lock.key)
            out.append(
                LockInfo(
                    key=lock.key,
                    owner=lock.owner,
                    token=lock.token,
                    held_for=0.0 if since is None else now - since,
                    ttl=lock.ttl_ms / 1000,
                    waiters=len(self.waiters.get(lock.key, ())),
                )
            )
        return out

    def waiter_count(self) -> int:
        return sum(len(q) for q in self.waiters.values())
