"""`RaftReplica`: one Raft member with its state machine, free of I/O and clocks.

It owns the sans-IO core and the state machine object, and holds every rule of a
replica that is not about a particular service: the Ready order, which Ready needs an
fsync, applying committed entries and reporting membership and role changes, when to
snapshot and what compaction leaves. A driver feeds it inputs and carries out what it
asks:

    replica.tick() / replica.step(message)          # the core's inputs
    while (rd := replica.ready(now)) is not None:    # batched proposals go out first
        send(rd.messages)
        persist(rd) if needs_sync(rd, on_disk) ...   # and rd.snapshot, if any
        send(rd.persisted_messages)
        replica.persisted(rd, now)                   # restore, apply, read states, advance
    run(replica.take_effects())                      # replies, monitors, callbacks

The actor shell (`global_kv.leader.LeaderActor`) and the simulator (`global_kv.sim`)
are such drivers; `GlobalReplica` adds the KV service and locks on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..raft import (
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    RaftNode,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
    decode_conf_entry,
)
from ..state import Applied
from ._effects import AppliedEntries, Effect, MembershipChanged, RoleChanged
from ._machine import Machine

__all__ = ["RaftReplica", "needs_sync"]

# However big the last snapshot, the log since it is compacted at this many bytes (it is
# held in memory); see `snapshot_due`.
LOG_BYTES_CAP = 64 << 20


def needs_sync(rd: Ready, on_disk: HardState) -> bool:
    """Entries, a snapshot, or a new term or vote must be durable before what depends on
    them is sent. A Ready that only moves the commit index needs no fsync (as in etcd):
    the commit index is rediscovered from the leader, or from the state machine's applied
    index, after a restart; it is written along with the next entries."""
    if rd.entries or rd.snapshot is not None:
        return True
    hs = rd.hard_state
    return hs is not None and (hs.term != on_disk.term or hs.vote != on_disk.vote)


class RaftReplica:
    """A Raft member and its state machine. See the module docstring for the driving loop."""

    def __init__(
        self,
        raft: RaftNode,
        machine: Machine,
        *,
        snapshot_interval: int,
        snapshot_log_fraction: float = 0.5,
        replay_upto: int = 0,
    ) -> None:
        """`replay_upto`: the commit index found on disk at start; conf changes up to it are
        history, not news (no `MembershipChanged` for them). `snapshot_log_fraction`: see
        `snapshot_due`."""
        self.raft = raft
        self.machine = machine
        self.id = raft.id
        self.snapshot_interval = snapshot_interval
        self.snapshot_log_fraction = snapshot_log_fraction
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.term = 0
        self.leader_term: int | None = None  # the term this replica last became leader in
        self.effects: list[Effect] = []
        self._replay_upto = replay_upto
        self._snapshot_requested = False
        self._log_bytes = 0  # entry data applied since the last snapshot

    # -- inputs ------------------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def ticks_until_due(self) -> int | None:
        """Ticks until one can do anything (see `RaftNode.ticks_until_due`)."""
        return self.raft.ticks_until_due()

    def step(self, message: Any) -> None:
        """A Raft message for this replica (LogLost propagates: the driver halts)."""
        self.raft.step(message)

    def peer_down(self, peer: str) -> None:
        """The driver's failure detector lost `peer` (its process ended, or the link to
        its node): a quiet replica runs its timers again, so a dead leader is replaced."""
        self.raft.wake()

    def confirm_leadership(self) -> None:
        """Someone asks whether this replica leads (a status request). A quiet leader cut
        off by a partition that drops packets hears nothing, so it notices nothing until
        its links' heartbeats give up (5 s + 15 s); asked, it runs its timers again: a
        heartbeat round, and CheckQuorum makes it step down within an election timeout
        if no quorum answers, as a leader that never went quiet would. A follower is left
        quiet: with its quiet leader silent, its running timer would call an election."""
        if self.raft.role is Role.LEADER:
            self.raft.wake()

    def has_work(self) -> bool:
        """Something to propose or a Ready to hand out: the driver should drain soon."""
        return self.raft.has_ready()

    def ready(self, now: float) -> Ready | None:
        """Propose what was batched since the last Ready, then the core's next Ready."""
        self.flush(now)
        raft = self.raft
        return raft.ready() if raft.has_ready() else None

    def persisted(self, rd: Ready, now: float) -> None:
        """`rd` is durable and its `persisted_messages` sent: restore, apply, serve, advance."""
        if rd.snapshot is not None:
            self.restore(rd.snapshot, now)
        if rd.committed_entries:
            self.apply(rd.committed_entries, now)
            self._membership(rd.committed_entries)
        if rd.read_states:
            self.read_states(rd.read_states, now)
        self.raft.advance()
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state, now)

    def take_effects(self) -> list[Effect]:
        out, self.effects = self.effects, []
        return out

    # -- what a service on top refines ----------------------------------------------------------
    def flush(self, now: float) -> None:
        """Propose what queued since the last Ready (nothing here)."""

    def apply(self, entries: Sequence[Entry], now: float) -> Sequence[Applied]:
        """Apply committed entries; their results (also reported as `AppliedEntries`)."""
        results = tuple(self.machine.apply(entries))
        self._log_bytes += sum(len(entry.data) for entry in entries)
        self.effects.append(AppliedEntries(tuple(entries), results))
        return results

    def restore(self, snapshot: Snapshot, now: float) -> None:
        self._log_bytes = 0
        if snapshot.meta.index > self.machine.applied_index:
            self.machine.restore(snapshot)

    def read_states(self, states: Sequence[ReadState], now: float) -> None:
        """ReadIndex answers (nothing reads here)."""

    def role_changed(self, soft: SoftState, was: Role, now: float) -> None:
        """Every soft-state change, before it is reported to the driver."""

    # -- roles and membership --------------------------------------------------------------------
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def is_member(self) -> bool:
        """In this replica's own configuration (the latest in its log, committed or not)."""
        conf = self.raft.conf
        return self.id in conf.voters or self.id in conf.learners

    def _soft_state_changed(self, soft: SoftState, now: float) -> None:
        was, previous = self.role, self.leader_id
        self.role, self.leader_id, self.term = soft.role, soft.leader, soft.term
        if soft.role is Role.LEADER and was is not Role.LEADER:
            self.leader_term = soft.term
        self.role_changed(soft, was, now)
        self.effects.append(RoleChanged(soft, was, previous))

    def _membership(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.type != EntryType.CONF_CHANGE or entry.index <= self._replay_upto:
                continue
            change, _conf = decode_conf_entry(entry.data)
            if change is None or change.node_id == self.id:
                continue
            self.effects.append(MembershipChanged(change.node_id, change.type != ConfChangeType.REMOVE_NODE))

    # -- snapshots -------------------------------------------------------------------------------
    def request_snapshot(self) -> None:
        """Snapshot and compact at the applied index soon (an operator asked)."""
        self._snapshot_requested = True

    def snapshot_due(self) -> bool:
        """Time to start a snapshot: every Ready is handled (so what compaction writes agrees
        with the log on disk), or one was asked for, or `snapshot_interval` entries were
        applied since the last and they add up to at least `snapshot_log_fraction` of the
        last snapshot's size (or `LOG_BYTES_CAP`). The size rule keeps what snapshots cost
        per entry bounded however big the state (with its history) grows: a snapshot of S
        bytes is taken at most once per S/2 bytes of log by default. Clears the request."""
        raft = self.raft
        if raft.has_ready():
            return False
        applied = raft.applied_index
        if applied < raft.first_index:
            return False
        due = applied - raft.first_index + 1 >= self.snapshot_interval and self._log_bytes >= min(
            raft.snapshot_size * self.snapshot_log_fraction, LOG_BYTES_CAP
        )
        if not (due or self._snapshot_requested):
            return False
        self._snapshot_requested = False
        return True

    def compact(self, index: int, data: bytes) -> SnapshotMeta | None:
        """Drop the log up to `index` behind `data` (the machine's snapshot at `index`);
        None if a newer snapshot (from the leader) already covers it."""
        if index < self.raft.first_index:
            return None
        raft = self.raft
        self._log_bytes = sum(len(entry.data) for entry in raft.entries(index + 1, raft.applied_index + 1))
        return raft.compact(index, data)

    def superseded(self, index: int) -> bool:
        """A snapshot at `index` was replaced meanwhile by a newer one (from the leader)."""
        return self.raft.first_index - 1 > index
