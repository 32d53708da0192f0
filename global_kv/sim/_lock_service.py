"""The leader's lock logic in the simulator: TTL deadlines on the replica's own clock.

The rules of `global_kv.app._locks.LockService` (which runs on trio and cannot be driven
by simulated time), for one replica: while it leads, it arms a deadline for a held lock
from ITS OWN clock when a grant or refresh is applied, re-arms every held lock from "now"
when it becomes leader (a lock may outlive its TTL after a failover, never fall short of
it), proposes `LockExpire(key, token, refreshed_index)` once a deadline passes, and
proposes `LockReleaseOwner(owner)` when an owner is dead or cut off from it (what an
ergo_py monitor's DOWN reports). Wait queues are left out: simulated clients retry a
try-lock. Everything here is leader-local and dies with the replica's memory.

Four details are deliberate, where the app's service (as of this writing) can leave a
lock unexpirable for a whole term; the first two were found by this simulator:
- a result is acted on only for the state it names: a retried release is answered with
  its cached `Released`, which must not disarm the key's NEXT holder;
- "expiry proposed" is remembered per lock state (token, refreshed_index): an expiry
  that loses the race with a refresh is refused by the state machine, and the
  refreshed lock must still expire at its new deadline;
- a proposal the core refuses (a leadership transfer in progress) is not remembered,
  so the next check proposes it again;
- it proposes only while the core still leads the term it armed its deadlines in (a
  leadership lost and regained between two Readies shows up as one role report; the
  service re-arms on every new term).

It must never decide that a lock is free (only the state machine does), and never read
a clock other than its replica's simulated one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ergo_py._ids import PID

from ..raft import Role
from ..state import Granted, LockExpire, LockReleaseOwner, Released, Result

if TYPE_CHECKING:
    from ._replica import SimReplica

__all__ = ["SimLockService"]

LEADER = Role.LEADER


class SimLockService:
    """One replica's leader-local lock bookkeeping (empty while it follows)."""

    __slots__ = ("deadlines", "expiring", "releasing", "replica", "since", "term")

    def __init__(self, replica: SimReplica) -> None:
        self.replica = replica
        self.term = 0  # the term it leads; 0 while not leading
        self.since = 0  # the tick it learned it leads (and re-armed every lock)
        self.deadlines: dict[bytes, tuple[int, float]] = {}  # key -> (token, local deadline)
        # key -> (token, refreshed_index) of the lock state whose expiry was proposed
        self.expiring: dict[bytes, tuple[int, int]] = {}
        self.releasing: dict[PID, frozenset[tuple[bytes, int]]] = {}

    @property
    def active(self) -> bool:
        return self.term != 0

    def become_leader(self, term: int) -> None:
        """Re-arm every held lock from now: the old leader's timers died with it."""
        self.term = term
        self.since = self.replica.sim.now
        self.deadlines.clear()
        self.expiring.clear()
        self.releasing.clear()
        sm = self.replica.sm
        assert sm is not None
        now = self.replica.clock()
        for lock in sm.locks():
            self._arm(lock.key, lock.token, lock.ttl_ms, now)

    def become_follower(self) -> None:
        self.term = 0
        self.deadlines.clear()
        self.expiring.clear()
        self.releasing.clear()

    def on_result(self, result: Result, index: int) -> None:
        """Bookkeeping for the result of the entry at `index` (after its whole batch).

        A retried request is answered with its first result, so a `Granted` or
        `Released` may describe an old state: act only on the state the result names
        (the same token; for a grant, the state this very entry created).
        """
        if not self.term:
            return
        if type(result) is Granted:
            sm = self.replica.sm
            assert sm is not None
            lock = sm.lock(result.key)
            if lock is not None and lock.token == result.token and lock.refreshed_index == index:
                self._arm(lock.key, lock.token, lock.ttl_ms, self.replica.clock())
        elif type(result) is Released:
            for key, token in result.locks:
                armed = self.deadlines.get(key)
                if armed is not None and armed[0] == token:
                    del self.deadlines[key]
                proposed = self.expiring.get(key)
                if proposed is not None and proposed[0] == token:
                    del self.expiring[key]

    def _arm(self, key: bytes, token: int, ttl: int, now: float) -> None:
        if ttl > 0:
            self.deadlines[key] = (token, now + ttl)
        else:
            self.deadlines.pop(key, None)

    def owner_down(self, owner: PID) -> bool:
        """Has this replica's monitor of `owner` fired (its process died, or the link to
        its node is down)? The simulator's ground truth stands in for ergo_py monitors."""
        return self.replica.sim.owner_down(owner, self.replica.id)

    def check(self) -> None:
        """Propose expiries whose deadline passed and releases of dead owners' locks."""
        r = self.replica
        node, sm = r.node, r.sm
        if not self.term or node is None or sm is None:
            return
        if node.term != self.term or node.role is not LEADER:
            return  # deposed (or re-elected) since the last role report: wait for it
        if self.deadlines:
            now = r.clock()
            for key, (token, deadline) in list(self.deadlines.items()):
                if deadline > now:
                    continue
                lock = sm.lock(key)
                if lock is None or lock.token != token:
                    del self.deadlines[key]
                    continue
                version = (token, lock.refreshed_index)
                if self.expiring.get(key) == version:
                    continue  # proposed; a refresh since then makes a new version
                if r.propose_internal(LockExpire(key, token, lock.refreshed_index)):
                    self.expiring[key] = version
        for owner in sm.owners():
            if not self.owner_down(owner):
                continue
            held = frozenset((lock.key, lock.token) for lock in sm.locks_of(owner))
            before = self.releasing.get(owner, frozenset())
            if held <= before:
                continue  # already proposed for exactly these holds
            if r.propose_internal(LockReleaseOwner(owner)):
                self.releasing[owner] = before | held
