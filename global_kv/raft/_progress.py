"""A leader's view of one follower: match/next index and the replication state machine.

States (as in etcd-io/raft): PROBE sends one AppendEntries at a time and waits, to find
where the follower's log matches ours; REPLICATE pipelines up to `max_inflight_msgs`
messages optimistically; SNAPSHOT streams InstallSnapshot chunks and sends no entries.
Pure bookkeeping: this module never sends anything itself.
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


PROBE = ProgressState.PROBE
REPLICATE = ProgressState.REPLICATE
SNAPSHOT = ProgressState.SNAPSHOT


class Progress:
    """Replication progress of one peer, owned by the leader."""

    __slots__ = (
        "commit_sent",
        "hb_round",
        "hb_sent",
        "inflights",
        "is_learner",
        "leaving",
        "match",
        "max_inflight",
        "next",
        "paused",
        "pending_snapshot",
        "read_acked",
        "recent_active",
        "snap_offset",
        "stall_mark",
        "stalls",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.paused = False
        self.inflights: deque[int] = deque()
        self.max_inflight = max_inflight
        self.pending_snapshot = 0
        self.snap_offset = 0
        # CheckQuorum: set on any response, cleared every election_tick_min ticks.
        self.recent_active = True
        # Highest heartbeat round this peer echoed (ReadIndex / lease).
        self.read_acked = 0
        # Stall detection: match (or snapshot offset) at the last heartbeat tick.
        self.stall_mark = -1
        self.stalls = 0
        # Not counted in quorums: a learner, or a removed server until its removal commits.
        self.is_learner = is_learner
        self.leaving = False
        # Highest commit index this peer was told together with entries it holds.
        self.commit_sent = 0
        # Last heartbeat round sent, and the last index sent before it: an answer to
        # that round while match is still below means those entries were lost.
        self.hb_round = 0
        self.hb_sent = 0

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.value}, "
            f"paused={self.paused}, inflight={len(self.inflights)})"
        )

    def inflight_full(self) -> bool:
        return len(self.inflights) >= self.max_inflight

    def is_paused(self) -> bool:
        state = self.state
        if state is PROBE:
            return self.paused
        if state is REPLICATE:
            return len(self.inflights) >= self.max_inflight
        return True

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.paused = False
        self.inflights.clear()
        self.pending_snapshot = 0
        self.snap_offset = 0
        self.stalls = 0
        self.stall_mark = -1

    def become_probe(self) -> None:
        if self.state is SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to `index`; True if it moved `match` forward."""
        updated = False
        if index > self.match:
            self.match = index
            updated = True
            self.paused = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of prev_index `rejected`; True if it is fresh and moved `next`.

        Stale rejections (of messages sent before a later success, or duplicated by the
        network) are recognised and ignored, so they never undo progress.
        """
        if self.state is REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.state is SNAPSHOT or self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.paused = False
        return True

    def sent_entries(self, last_index: int) -> None:
        """Bookkeeping after an AppendEntries whose last entry is `last_index`."""
        if self.state is REPLICATE:
            self.next = last_index + 1
            self.inflights.append(last_index)
        else:
            self.paused = True

    def free_le(self, index: int) -> None:
        q = self.inflights
        while q and q[0] <= index:
            q.popleft()
