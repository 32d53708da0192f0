"""Lease deadlines on every replica, and the leader's expiries.

The lease table is replicated state (`global_kv.state`); keep-alives go through the log
like everything else, so every replica sees each one applied. Every replica, follower or
leader, arms a lease's deadline on its own clock when it applies the entry that granted
or last refreshed it: `now + ttl`. The leader proposes `LeaseExpire(id, refreshed_index)`
once its deadline passed, which the state machine ignores if a keep-alive was applied
since. This is the rule that makes a leader change neither restart a lease's TTL (etcd's
#9888: a new etcd leader gives every lease its full TTL again, so a flapping leader keeps
dead keys alive forever) nor cut it short: the new leader expires the lease at the
deadline it armed itself when it applied the last keep-alive, which is no earlier than
the old leader's (it applied the same entry after it was committed, as the old leader
did before answering) and no later than that plus the time it took to learn of it.

A client must count a lease's TTL from when it sent its last keep-alive (as etcd's
clients do): every replica's deadline is later than that. What a replica cannot know is
kept on the safe side: a lease it has no deadline for (it restarted, or installed a
snapshot) gets its full TTL from the moment it first looks.

Process-owned leases end with their owner through the lock service's monitors (the
owner's DOWN proposes `LockReleaseOwner`, which also revokes its leases).

Time is the replica's clock in seconds, handed to every method that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..raft import Role
from ..state import Applied, Command, LeaseExpire, LeaseGrantedResult, LeaseRevokedResult
from ._effects import Proposing

if TYPE_CHECKING:
    from ._global_replica import GlobalReplica

__all__ = ["LeaseService"]


class LeaseService:
    def __init__(self, replica: GlobalReplica) -> None:
        self.replica = replica
        self.retry_after = replica.options.expiry_retry
        self.deadlines: dict[int, tuple[int, float]] = {}  # lease id -> (refreshed_index, deadline)
        self._expiring: dict[tuple[int, int], float] = {}  # (id, refreshed_index) -> when proposed
        self._unarmed = True  # leases in the state machine may have no deadline yet (start, snapshot)
        self.expired_total = 0

    def applied(self, item: Applied, now: float) -> None:
        """Every replica, for every applied result: arm on a grant or keep-alive applied by
        this very entry (a retry answered from its session changes nothing), disarm on an end."""
        result = item.result
        if type(result) is LeaseGrantedResult:
            lease = self.replica.sm.lease(result.lease_id)
            if lease is not None and lease.refreshed_index == item.index:
                self.deadlines[lease.id] = (item.index, now + lease.ttl_ms / 1000)
                if lease.owner is not None:
                    self.replica.locks.watch(lease.owner)
        elif type(result) is LeaseRevokedResult:
            if self.deadlines.pop(result.lease_id, None) is not None and item.client_id is None:
                self.expired_total += 1

    def remaining(self, lease_id: int, now: float) -> float | None:
        """Seconds left on this replica's deadline (None: no such lease)."""
        lease = self.replica.sm.lease(lease_id)
        if lease is None:
            return None
        armed = self.deadlines.get(lease_id)
        if armed is None or armed[0] != lease.refreshed_index:
            return lease.ttl_ms / 1000
        return max(0.0, armed[1] - now)

    def pending(self) -> bool:
        """Leases to arm or to time: `check` has work."""
        return self._unarmed or bool(self.deadlines)

    def check(self, now: float) -> None:
        """Arm what this replica has no deadline for; the leader proposes the expiries due."""
        sm = self.replica.sm
        if self._unarmed:
            # A start or a snapshot: leases this replica did not see applied get their full TTL.
            self._unarmed = False
            for lease in sm.leases():
                armed = self.deadlines.get(lease.id)
                if armed is None or armed[0] < lease.refreshed_index:
                    self.deadlines[lease.id] = (lease.refreshed_index, now + lease.ttl_ms / 1000)
        locks = self.replica.locks
        raft = self.replica.raft
        leading = locks.active and raft.role is Role.LEADER and raft.term == locks.term
        for lease_id, (refreshed, deadline) in list(self.deadlines.items()):
            if deadline > now:
                continue
            current = sm.lease(lease_id)
            if current is None:
                del self.deadlines[lease_id]  # ended meanwhile (an owner's death ends it silently)
                continue
            if current.refreshed_index != refreshed:
                # Refreshed by an entry this replica did not see applied (a snapshot): full TTL.
                self.deadlines[lease_id] = (current.refreshed_index, now + current.ttl_ms / 1000)
                continue
            if not leading:
                continue
            when = self._expiring.get((lease_id, refreshed))
            if when is None or now - when >= self.retry_after:
                op = LeaseExpire(lease_id, refreshed)
                self.replica.effects.append(Proposing(op, locks.term))
                self.replica.propose(Command(None, 0, 0, op), None, None, None)
                self._expiring[(lease_id, refreshed)] = now
        for attempt in [a for a in self._expiring if a[0] not in self.deadlines]:
            del self._expiring[attempt]

    def restored(self) -> None:
        """A snapshot replaced the state: every lease is re-armed at the next check."""
        self.deadlines.clear()
        self._expiring.clear()
        self._unarmed = True

    def describe(self) -> dict[str, Any]:
        return {"leases": len(self.deadlines), "expired_total": self.expired_total}
