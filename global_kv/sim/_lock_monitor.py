"""The lock invariants, checked by the simulator as the run goes.

A reference model of the lock table is advanced by every committed lock command, once,
when the first replica applies it (`SafetyMonitor` already makes every other replica
apply the same entry with the same result). Against it:

(a) at most one holder per key at any index; fencing tokens of successive grants
    strictly increase, per key and across keys (a token is its granting entry's index);
    every release, expiry, refresh and refusal agrees with the model; a retried request
    (same client_id and seq) is answered with its first result and changes nothing,
    but for an acquire refused as held (that changed nothing: a retry is decided afresh)
    and a session's first request retried after the session expired (indistinguishable
    from a new session's: decided afresh, its effect checked like any other);
(b) a protected resource never accepts a token lower than one it already accepted, and
    only accepts tokens that were granted, for that key, to the writer;
(c) every grant a client was told about was committed (the model holds it when the
    client hears of it), and its hold ended by a committed entry by the end of the run;
(d) two clients succeed protected writes in overlapping intervals only when the earlier
    hold was ended by the leader: an expiry its OWN clock justified (TTL elapsed since it
    applied the grant or refresh, or since it became leader if later), or an owner
    release while the owner was dead or cut off from it. Each such proposal is checked
    against the simulator's ground truth when it is made; a holder that released its
    lock itself must never write again. And the leader must not sit on its timers:
    while a replica leads a term and its lock service knows it, each lock state in its
    state machine gets an expiry attempt by max(applied, service became leader) +
    TTL / clock rate (+ 2 ticks), and each owner down for two checks a release attempt
    (one without a listener: for its grace period too, see `owner_grace_period`).

A violation raises `RaftInvariantError` naming the rule; this module never fixes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ergo_py.ids import PID

from .._errors import RaftInvariantError
from ..raft import Entry, Role
from ..state import (
    Granted,
    LockAcquire,
    LockExpire,
    LockHeldResult,
    LockNotHeldResult,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Op,
    Released,
    Result,
    StaleTokenResult,
    decode_command,
)

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["LOCK_RESULTS", "LockMonitor"]

LOCK_RESULTS = frozenset((Granted, Released, LockHeldResult, LockNotHeldResult, StaleTokenResult))

LEADER = Role.LEADER
TIMER_SLACK = 2  # ticks a leader may take past a deadline before it must have acted

# How a hold ended in the model.
RELEASED, EXPIRED, OWNER_DOWN = "released by its holder", "expired", "released: owner down"


@dataclass(slots=True)
class _Hold:
    key: bytes
    owner: PID
    token: int
    ttl: int
    refreshed: int
    told: float | None = None  # when its holder heard of the grant (history clock)


class LockMonitor:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.holders: dict[bytes, _Hold] = {}
        self.grants: dict[int, _Hold] = {}  # token -> the hold it started
        self.ended: dict[int, str] = {}  # token -> how its hold ended
        self.last_token = 0
        self.first_results: dict[tuple[str, int], Result] = {}
        self.highest_accepted: dict[bytes, int] = {}
        # (replica, term, key, token, refreshed_index) of expiry attempts, and
        # (replica, term, owner) of owner release attempts, accepted by the core or not.
        self.expiry_attempts: set[tuple[str, int, bytes, int, int]] = set()
        self.release_attempts: set[tuple[str, int, PID]] = set()
        self.down_seen: dict[tuple[str, int, PID], int] = {}
        self.stats_expiries = 0
        self.stats_owner_releases = 0
        self.stats_refreshes = 0
        self.stats_overlaps = 0

    # --- (a): committed lock commands against the model ------------------------------

    def on_commit(self, e: Entry, result: Result) -> None:
        """The first application anywhere of entry `e`, which produced lock `result`
        (a session that expired answers SessionExpiredResult: not a lock result)."""
        cmd = decode_command(e.data)
        op = cmd.op
        if cmd.client_id is not None:
            request = (cmd.client_id, cmd.seq)
            first = self.first_results.get(request)
            if first is not None:
                if result == first:
                    return  # exactly once: a retry changes nothing
                if not (cmd.seq == 1 and cmd.ack <= 1):
                    self._fail(f"(a) request {request} retried at {e.index} answered {result}, first answered {first}")
                # A session's first request, retried after its session expired: a session
                # that never answered cannot be told from a new one (see `SessionTable`), so
                # it is decided afresh. Its effect is checked as any other's below.
            if not (type(op) is LockAcquire and type(result) is LockHeldResult):
                # (An acquire refused as held changed nothing and is decided afresh on retry.)
                self.first_results[request] = result
        if type(op) is LockAcquire:
            self._acquire(e.index, op, result)
        elif type(op) in (LockRelease, LockExpire):
            self._release(e.index, op, result)  # type: ignore[arg-type]
        elif type(op) is LockRefresh:
            self._refresh(e.index, op, result)
        elif type(op) is LockReleaseOwner:
            self._release_owner(e.index, op, result)
        else:
            self._fail(f"(a) entry {e.index}: {type(op).__name__} answered {result}")

    def _acquire(self, index: int, op: LockAcquire, result: Result) -> None:
        held = self.holders.get(op.key)
        if type(result) is Granted:
            if held is not None:
                self._fail(
                    f"(a) entry {index} grants {op.key!r} to {op.owner} while token "
                    f"{held.token} ({held.owner}) holds it"
                )
            if result.token <= self.last_token or result.token != index:
                self._fail(
                    f"(a) entry {index} grants {op.key!r} with token {result.token}; the last "
                    f"grant had token {self.last_token} (tokens are the granting index)"
                )
            hold = _Hold(op.key, op.owner, index, op.ttl_ms, index)
            self.holders[op.key] = self.grants[index] = hold
            self.last_token = index
        elif type(result) is LockHeldResult:
            if held is None or held.token != result.token:
                self._fail(f"(a) entry {index} refused {op.key!r} as held by {result}; model: {held}")
        else:
            self._fail(f"(a) acquire at {index} answered {result}")

    def _release(self, index: int, op: LockRelease | LockExpire, result: Result) -> None:
        held = self._check_refusal(index, op.key, op.token, result)
        if held is None:
            return
        expire = type(op) is LockExpire
        if type(result) is Released:
            if expire and op.refreshed_index not in (0, held.refreshed):  # type: ignore[union-attr]
                self._fail(f"(a) entry {index} expired {held} with stale refresh {op}")
            if result.locks != ((op.key, op.token),):
                self._fail(f"(a) entry {index}: {op} released {result.locks}")
            self._end(held, EXPIRED if expire else RELEASED)
            if expire:
                self.stats_expiries += 1
        elif type(result) is LockHeldResult and expire:
            if op.refreshed_index in (0, held.refreshed):  # type: ignore[union-attr]
                self._fail(f"(a) entry {index}: {op} refused though {held} was not refreshed")
        else:
            self._fail(f"(a) entry {index}: {op} answered {result} while {held} holds")

    def _refresh(self, index: int, op: LockRefresh, result: Result) -> None:
        held = self._check_refusal(index, op.key, op.token, result)
        if held is None:
            return
        if type(result) is not Granted or result.token != op.token:
            self._fail(f"(a) entry {index}: {op} answered {result} while {held} holds")
        held.ttl, held.refreshed = op.ttl_ms, index
        self.stats_refreshes += 1

    def _check_refusal(self, index: int, key: bytes, token: int, result: Result) -> _Hold | None:
        """The hold `token` has on `key`, or None after checking the refusal was right."""
        held = self.holders.get(key)
        if held is not None and held.token == token:
            return held
        if held is None and type(result) is LockNotHeldResult:
            return None
        if held is not None and type(result) is StaleTokenResult and result.current_token == held.token:
            return None
        self._fail(f"(a) entry {index}: token {token} on {key!r} answered {result}; model: {held}")
        return None

    def _release_owner(self, index: int, op: LockReleaseOwner, result: Result) -> None:
        mine = sorted(((h.key, h.token) for h in self.holders.values() if h.owner == op.owner))
        if type(result) is not Released or sorted(result.locks) != mine:
            self._fail(f"(a) entry {index}: {op} answered {result}; the owner held {mine}")
        for key, _ in mine:
            self._end(self.holders[key], OWNER_DOWN)
            self.stats_owner_releases += 1

    def _end(self, hold: _Hold, how: str) -> None:
        del self.holders[hold.key]
        self.ended[hold.token] = how

    # --- (d): the leader's own reasons, checked when it proposes ---------------------

    def on_internal_proposal(self, r: SimReplica, op: Op) -> None:
        """A leader's own command (expiry, owner release), just accepted by its core."""
        now = self.sim.now
        if type(op) is LockExpire:
            version = (op.key, op.token, op.refreshed_index)
            seen = r.lock_since.get(version)
            if seen is None:
                self._fail(f"(d) {r.id} proposes {op}, a lock state it never applied in this life")
                return
            since, ttl = seen
            start = max(since, r.lead_since)
            elapsed = r.rate * (now - start)
            if elapsed + 1e-9 < ttl:
                self._fail(
                    f"(d) {r.id} proposes {op} when its own clock shows {elapsed:.2f} of the "
                    f"TTL {ttl} since tick {start} (applied at {since}, leader since "
                    f"{r.lead_since}, clock rate {r.rate:.3f})"
                )
        elif type(op) is LockReleaseOwner:
            if not self.sim.owner_down(op.owner, r.id):
                self._fail(f"(d) {r.id} proposes {op}, but that owner is alive and connected to it")

    def on_internal_attempt(self, r: SimReplica, op: Op, term: int) -> None:
        """A leader's lock service of `term` proposes its own command (the core may refuse)."""
        if type(op) is LockExpire:
            self.expiry_attempts.add((r.id, term, op.key, op.token, op.refreshed_index))
        elif type(op) is LockReleaseOwner:
            self.release_attempts.add((r.id, term, op.owner))

    def check_leader_timers(self, r: SimReplica) -> None:
        """After a leader's lock service ran this tick: nothing overdue (see (d))."""
        replica = r.replica
        if replica is None:
            return
        node, sm, service = replica.raft, replica.sm, replica.locks
        term = node.term
        if service.term != term or node.role is not LEADER:
            return
        now, rid = self.sim.now, r.id
        for lock in sm.locks():
            key, token, refreshed = lock.key, lock.token, lock.refreshed_index
            if (rid, term, key, token, refreshed) in self.expiry_attempts:
                continue
            seen = r.lock_since.get((key, token, refreshed))
            if seen is None:
                raise RaftInvariantError(f"simulator: {rid} holds {lock} but never recorded applying it")
            start = max(seen[0], r.service_since)
            if now - start > lock.ttl_ms / r.rate + TIMER_SLACK:
                self._fail(
                    f"(d) {rid}, leader of term {term} since tick {r.service_since}, has not "
                    f"tried to expire {lock} (applied at tick {start}) by tick {now}: its "
                    f"clock (rate {r.rate:.3f}) passed the TTL {lock.ttl_ms} long ago"
                )
        down_seen = self.down_seen
        for owner in sm.owners():
            if (rid, term, owner) in self.release_attempts:
                continue
            if not self.sim.owner_down(owner, rid):
                down_seen.pop((rid, term, owner), None)
                continue
            first = down_seen.setdefault((rid, term, owner), now)
            if now - first >= TIMER_SLACK + self.sim.lock_workload.grace_ticks(owner):
                self._fail(
                    f"(d) {rid}, leader of term {term}, has seen lock owner {owner} down "
                    f"since tick {first} without releasing its locks {sm.locks_of(owner)}"
                )

    # --- (c): grants clients hear of ------------------------------------------------

    def on_told(self, owner: PID, key: bytes, token: int, stamp: float) -> None:
        hold = self.grants.get(token)
        if hold is None or hold.key != key or hold.owner != owner:
            self._fail(
                f"(c) {owner} was told it holds {key!r} with token {token}, but no committed "
                f"entry granted that (model: {hold})"
            )
            return
        if hold.told is None:
            hold.told = stamp

    def check_told_grants_ended(self) -> None:
        """At the end of the drain: every hold a client heard of was ended by an entry."""
        for token, hold in self.grants.items():
            if hold.told is not None and token not in self.ended:
                self._fail(f"(c) the grant of {hold.key!r} with token {token} was never ended")

    # --- (b) and (d): protected writes ----------------------------------------------

    def on_protected_write(self, key: bytes, token: int, writer: PID, stamp: float) -> None:
        """A resource accepted a write fenced with `token`."""
        highest = self.highest_accepted.get(key, 0)
        if token < highest:
            self._fail(f"(b) resource {key!r} accepted token {token} after accepting {highest}")
        self.highest_accepted[key] = max(highest, token)
        hold = self.grants.get(token)
        if hold is None or hold.key != key or hold.owner != writer:
            self._fail(f"(b) resource {key!r} accepted token {token} from {writer}; grant: {hold}")
            return
        current = self.holders.get(key)
        if current is hold:
            return
        how = self.ended.get(token)
        if how == RELEASED or how is None:
            self._fail(f"(d) {writer} wrote {key!r} with token {token} after its hold was {how}")
        if current is not None and current.told is not None and current.told < stamp:
            # Another client believes it holds the key: allowed only because the leader
            # ended this hold for a reason checked in on_internal_proposal.
            self.stats_overlaps += 1

    def _fail(self, detail: str) -> None:
        raise RaftInvariantError(f"lock invariant {detail}")
