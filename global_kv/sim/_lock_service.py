"""The leader's lock logic in the simulator: TTL deadlines on the replica's own clock.

The application's `LockService` runs on trio and cannot be driven by simulated time;
its TTL rules live in `global_kv.state.LockTimers`, which this service runs too, on its
replica's skewed clock (TTL units). Around them, for one replica: it re-arms every held
lock when it becomes leader, proposes the expiries those timers say are due, and
proposes `LockReleaseOwner(owner)` when an owner is dead or cut off from it (what an
ergo_py monitor's DOWN reports). Wait queues are left out: simulated clients retry a
try-lock. Everything here is leader-local and dies with the replica's memory.

It proposes only while the core still leads the term it armed its deadlines in (a
leadership lost and regained between two Readies shows up as one role report; the
service re-arms on every new term). It must never decide that a lock is free (only
the state machine does), and never read a clock other than its replica's simulated one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ergo_py.ids import PID

from ..raft import Role
from ..state import Granted, LockReleaseOwner, LockTimers, Result

if TYPE_CHECKING:
    from ._replica import SimReplica

__all__ = ["SimLockService"]

LEADER = Role.LEADER


class SimLockService:
    """One replica's leader-local lock bookkeeping (empty while it follows)."""

    __slots__ = ("releasing", "replica", "since", "term", "timers")

    def __init__(self, replica: SimReplica) -> None:
        self.replica = replica
        self.term = 0  # the term it leads; 0 while not leading
        self.since = 0  # the tick it learned it leads (and re-armed every lock)
        # The clock counts ticks, as TTLs do here; a lost expiry is retried after two
        # longest election timeouts, like the application's.
        retry = 2 * replica.sim.raft_config.election_tick_max
        self.timers = LockTimers(ttl_unit=1.0, retry_after=retry)
        self.releasing: dict[PID, frozenset[tuple[bytes, int]]] = {}

    @property
    def active(self) -> bool:
        return self.term != 0

    def become_leader(self, term: int) -> None:
        """Re-arm every held lock from now: the old leader's timers died with it."""
        self.term = term
        self.since = self.replica.sim.now
        self.releasing.clear()
        sm = self.replica.sm
        assert sm is not None
        self.timers.arm_all(sm.locks(), self.replica.clock())

    def become_follower(self) -> None:
        self.term = 0
        self.timers.clear()
        self.releasing.clear()

    def on_result(self, result: Result, index: int) -> None:
        """Bookkeeping for the result of the entry at `index` (after its whole batch)."""
        if not self.term:
            return
        sm = self.replica.sm
        assert sm is not None
        lock = sm.lock(result.key) if type(result) is Granted else None
        self.timers.on_result(result, index, lock, self.replica.clock())

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
        if self.timers.deadlines:
            now = r.clock()
            for op in self.timers.due(sm.lock, now):
                if r.propose_internal(op):  # a refused proposal is made again next time
                    self.timers.proposed(op, now)
        for owner in sm.owners():
            if not self.owner_down(owner):
                continue
            held = frozenset((lock.key, lock.token) for lock in sm.locks_of(owner))
            before = self.releasing.get(owner, frozenset())
            if held <= before:
                continue  # already proposed for exactly these holds
            if r.propose_internal(LockReleaseOwner(owner)):
                self.releasing[owner] = before | held
