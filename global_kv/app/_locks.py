"""The leader's side of distributed locks: wait queues, TTL timers, owner monitors.

The lock table itself is replicated state (`global_kv.state`): who holds a key,
with which fencing token (the index of the granting entry). Everything here is
leader-local and rebuilt when a replica becomes leader:

- FIFO wait queues per key, each waiter with its own deadline, at most
  `max_lock_waiters` per key. When a release is applied the first waiter still
  waiting gets the lock through the log (an acquire proposed with the waiter's own
  session tag, so a retry of it is deduplicated). Queues are lost on a leader
  change; waiters are told `NotLeader` and their clients re-queue at the new leader.
- TTL deadlines from the leader's own clock (`global_kv.state.LockTimers`, the same
  rules the simulator runs): armed when a grant or refresh is applied, re-armed from
  "now" for every lock when a replica becomes leader (a lock may live a little longer
  than its TTL after a failover, never shorter). Expiry is proposed as
  `LockExpire(key, token, refreshed_index)`, which the state machine ignores if the
  lock was refreshed or re-granted meanwhile.
- Owner monitors: the leader monitors every owner in the table; an owner's DOWN
  (exit, kill, or its node's link lost: `noconnection`) proposes
  `LockReleaseOwner(owner)`. A DOWN for an owner holding nothing changes nothing.
- Owners the leader cannot dial: a client node without a listener is reachable only
  over a link it dialled. When the leader starts watching such an owner before that
  node has linked to it (a new leader, typically), the `noconnection` DOWN that follows
  starts a grace period (`owner_grace_period`) instead of a release: once the node
  links, the owner is monitored again; if the grace runs out first, the owner counts
  as gone. The client keeps links to every member (`GlobalClient`), so after a
  failover it is back well within the grace. A link that was up and drops is a lost
  node, released at once as for any other.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ergo_py import NOCONNECTION, PID, Ref

from .._errors import LockHeld, LockNotHeld, LockTimeout, NotLeader, TooManyWaiters
from ..protocol import LockInfo, LockRequest, RefreshRequest, UnlockRequest, tagged_command
from ..state import (
    Command,
    Granted,
    LockAcquire,
    LockHeldResult,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    LockTimers,
    Released,
    encode_command,
)

if TYPE_CHECKING:
    from ._actor import GlobalActor

__all__ = ["LockService"]


@dataclass
class _Waiter:
    caller: PID
    ref: Ref
    request: LockRequest
    deadline: float


def _ttl_ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


class LockService:
    def __init__(self, actor: "GlobalActor") -> None:
        self.actor = actor
        self.config = actor.config
        self.active = False  # True while this replica leads
        self.waiters: dict[bytes, deque[_Waiter]] = {}
        self.acquiring: dict[bytes, int] = {}  # acquires proposed, not yet applied
        # An expiry proposed but not decided in time (lost with a leader) is proposed again.
        self.timers = LockTimers(ttl_unit=0.001, retry_after=2 * self.config.election_timeout_max / 1000)
        self.since: dict[bytes, float] = {}  # key -> when this leader saw it granted
        self.monitors: dict[PID, Ref] = {}
        self.grace: dict[PID, float] = {}  # owner on a node we cannot dial -> until when it may link
        self.unlinked: set[PID] = set()  # owners monitored while their node had no link to us
        self.grace_period = self.config.owner_grace_period / 1000
        self.acquired_total = 0
        self.released_total = 0

    # -- requests (leader only) -------------------------------------------------------------
    def acquire(self, caller: PID, ref: Ref, request: LockRequest) -> None:
        key = request.key
        held = self.actor.sm.lock(key)
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
        self._enqueue(_Waiter(caller, ref, request, trio.current_time() + request.timeout))

    def release(self, caller: PID, ref: Ref, request: UnlockRequest) -> None:
        op = LockRelease(request.key, request.token)
        self.actor._propose(encode_command(tagged_command(request.session, op)), caller, ref, request)
        held = self.actor.sm.lock(request.key)
        if held is not None and held.token == request.token and not self.acquiring.get(request.key):
            # Hand over in the same round: the next waiter's acquire is proposed right behind
            # the release, so one commit serves both (a hot lock changes hands in one round
            # trip, not two). Should the release fail, the acquire finds the lock held and
            # its waiter goes back to the front of the line.
            self._grant_next(request.key)

    def refresh(self, caller: PID, ref: Ref, request: RefreshRequest) -> None:
        op = LockRefresh(request.key, request.token, _ttl_ms(request.ttl))
        self.actor._propose(encode_command(tagged_command(request.session, op)), caller, ref, request)

    def _propose_acquire(self, caller: PID, ref: Ref, request: LockRequest) -> None:
        ttl = request.ttl if request.ttl > 0 else float(self.config.default_lock_ttl)
        op = LockAcquire(request.key, request.owner, _ttl_ms(ttl))
        data = encode_command(tagged_command(request.session, op))
        self.acquiring[request.key] = self.acquiring.get(request.key, 0) + 1
        self.actor._propose(data, caller, ref, request)

    def _enqueue(self, waiter: _Waiter, front: bool = False) -> None:
        key = waiter.request.key
        queue = self.waiters.setdefault(key, deque())
        if len(queue) >= self.config.max_lock_waiters:
            raise TooManyWaiters(key, self.config.max_lock_waiters)
        if front:
            queue.appendleft(waiter)
        else:
            queue.append(waiter)
        self._watch(waiter.request.owner)

    # -- results of applied entries ------------------------------------------------------------
    def settled(self, request: Any) -> None:
        """An acquire we proposed is decided (applied, or lost to another leader's entry)."""
        if isinstance(request, LockRequest):
            left = self.acquiring.get(request.key, 0) - 1
            if left > 0:
                self.acquiring[request.key] = left
            else:
                self.acquiring.pop(request.key, None)
                if not self.actor.sm.lock(request.key):
                    # Nobody holds it and nothing is in flight: the waiters must not wait for
                    # a release that will never come.
                    self._grant_next(request.key)

    def on_result(self, index: int, result: Any, request: Any, caller: PID | None, ref: Ref | None) -> bool:
        """Leader bookkeeping for one applied result. True if it answered (or re-queued) the caller.

        A duplicate (a retried request answered from its session) carries the result of an
        older entry: it must not re-arm or disarm whoever holds the key now, so timers
        change only for results produced by this very entry.
        """
        if isinstance(result, Granted):
            lock = self.actor.sm.lock(result.key)
            now = trio.current_time()
            if self.timers.on_result(result, index, lock, now):
                assert lock is not None
                if isinstance(request, LockRequest):
                    self.acquired_total += 1
                    self.since[result.key] = now
                self._watch(lock.owner)
            elif (
                isinstance(request, LockRequest) and caller is not None and (lock is None or lock.token != result.token)
            ):
                # A retried acquire answered from its session with a grant that has expired
                # (or been released) since: telling the caller "granted" would hand it a lock
                # someone else may hold now. Its client asks again.
                self.actor.send_response_error(caller, ref, LockNotHeld(result.key))  # type: ignore[arg-type]
                return True
            return False
        if isinstance(result, Released):
            self.timers.on_result(result, index, None, trio.current_time())
            for key, token in result.locks:
                lock = self.actor.sm.lock(key)
                if lock is None or lock.token != token:
                    self.released_total += 1
                    self.since.pop(key, None)
                if lock is None and not self.acquiring.get(key):
                    self._grant_next(key)  # unless a handed-over acquire is on its way
            return False
        if isinstance(result, LockHeldResult) and isinstance(request, LockRequest) and caller is not None:
            if request.timeout > 0 and result.holder != request.owner:
                # Lost a race to another acquire: wait in line (first, it was here first).
                try:
                    self._enqueue(_Waiter(caller, ref, request, trio.current_time() + request.timeout), front=True)  # type: ignore[arg-type]
                except TooManyWaiters as exc:
                    self.actor.send_response_error(caller, ref, exc)  # type: ignore[arg-type]
                return True
        return False

    def _grant_next(self, key: bytes) -> None:
        queue = self.waiters.get(key)
        now = trio.current_time()
        while queue:
            waiter = queue.popleft()
            if waiter.deadline <= now:
                self.actor.send_response_error(waiter.caller, waiter.ref, LockTimeout(key, waiter.request.timeout))
                continue
            if not self.actor.node.is_alive(waiter.request.owner) and waiter.request.owner.node == self.actor.node.name:
                continue
            self._propose_acquire(waiter.caller, waiter.ref, waiter.request)
            break
        if queue is not None and not queue:
            self.waiters.pop(key, None)

    # -- owners -----------------------------------------------------------------------------
    def _watch(self, owner: PID) -> None:
        if self.active and owner not in self.monitors and owner not in self.grace:
            if not self.actor.node.is_connected(owner.node):
                self.unlinked.add(owner)
            self.monitors[owner] = self.actor.monitor(owner)

    def on_down(self, owner: PID, reason: Any = None) -> None:
        self.monitors.pop(owner, None)
        never_linked = owner in self.unlinked
        self.unlinked.discard(owner)
        if not self.active:
            return
        if (
            reason == NOCONNECTION
            and never_linked
            and self.grace_period > 0
            and not self.actor.node.can_reach(owner.node)
        ):
            # We cannot dial its node; it may not have linked to us yet. Wait for it (check()).
            self.grace.setdefault(owner, trio.current_time() + self.grace_period)
            return
        self._owner_gone(owner)

    def _owner_gone(self, owner: PID) -> None:
        for key, queue in list(self.waiters.items()):
            kept = deque(w for w in queue if w.request.owner != owner)
            if kept:
                self.waiters[key] = kept
            else:
                self.waiters.pop(key, None)
        if self.actor.sm.locks_of(owner):
            self.actor._propose(encode_command(Command(None, 0, 0, LockReleaseOwner(owner))), None, None, None)

    # -- leadership -------------------------------------------------------------------------
    def _forget(self) -> None:
        self.waiters.clear()
        self.acquiring.clear()
        self.timers.clear()
        self.since.clear()
        self.grace.clear()
        self.unlinked.clear()

    def become_leader(self) -> None:
        self._forget()
        self.active = True
        now = trio.current_time()
        locks = self.actor.sm.locks()
        self.timers.arm_all(locks, now)
        for lock in locks:
            self.since.setdefault(lock.key, now)
            self._watch(lock.owner)

    def become_follower(self) -> None:
        if not self.active:
            return
        self.active = False
        error = NotLeader(self.actor.leader_process_id())
        for queue in self.waiters.values():
            for waiter in queue:
                self.actor.send_response_error(waiter.caller, waiter.ref, error)
        self._forget()
        for owner in list(self.monitors):
            self.actor.demonitor(self.monitors.pop(owner))

    # -- timers -------------------------------------------------------------------------------
    def check(self) -> None:
        """Expire TTLs and time out waiters (called every lock check period)."""
        if not self.active:
            return
        now = trio.current_time()
        for owner, until in list(self.grace.items()):
            if self.actor.node.is_connected(owner.node):
                del self.grace[owner]
                self._watch(owner)  # linked now: a dead owner gives noproc at once
            elif until <= now:
                del self.grace[owner]
                self._owner_gone(owner)
        for op in self.timers.due(self.actor.sm.lock, now):
            self.actor._propose(encode_command(Command(None, 0, 0, op)), None, None, None)
            self.timers.proposed(op, now)
        for key, queue in list(self.waiters.items()):
            kept: deque[_Waiter] = deque()
            for waiter in queue:
                if waiter.deadline <= now:
                    self.actor.send_response_error(waiter.caller, waiter.ref, LockTimeout(key, waiter.request.timeout))
                else:
                    kept.append(waiter)
            if kept:
                self.waiters[key] = kept
            else:
                self.waiters.pop(key, None)

    # -- operations ---------------------------------------------------------------------------
    def list_locks(self) -> list[LockInfo]:
        now = trio.current_time()
        out = []
        for lock in self.actor.sm.locks():
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
