"""RaftNode: the public face of one replica's sans-IO Raft state machine.

Inputs: `tick()`, `step(message)`, `propose(data)`, `propose_batch(datas)`,
`propose_conf_change(change)`, `read_index(context)`, `transfer_leadership(peer)`,
`compact(index, data)`. Output: `ready()` -> `Ready`, handled by the caller in the order
the `Ready` docstring gives, then `advance()`. This module must never import trio, time,
socket, os or any I/O; its only randomness is the injected `random.Random`.

Term rules (Figure 2, "Rules for Servers") are applied once, in `step`, before a role's
handler runs. Role logic lives in `_election.py` and `_replication.py`.

Lost proposals. `propose` returns the log index of the new entry; its term is
`node.term` right after the call. The caller keeps (index, term) per pending request.
When a committed entry arrives at that index: same term -> it is that request, answer
with the result of applying it; a different term -> the request was overwritten by
another leader and can never commit: fail it (safe to retry). If an installed snapshot
covers the index before its committed entry is seen, the outcome is unknown. Losing
leadership alone decides nothing: the next leader may still commit the entry. A pending
index beyond a new leader's log is decided only once the log grows past it, so an idle
cluster needs the caller's timeout (outcome unknown) or any later proposal.

Lease reads (`RaftConfig.lease_reads`). Under CheckQuorum a follower that heard from its
leader less than `election_tick_min` ticks ago ignores vote requests (thesis §4.2.3),
and with lease reads on, a replica restarted from persisted state does the same for
its first `election_tick_min` ticks, so a crash does not break a promise made before
it. So once
a quorum has answered a heartbeat round the leader sent at its tick t, no other leader
can be elected before those followers' clocks pass t + election_tick_min. The leader
serves reads without a round until its own tick t + election_tick_min -
lease_margin_ticks. Clock assumption: over one `election_tick_min` period no two
replicas' tick counts drift apart by `lease_margin_ticks` or more (ticks run at the same
rate everywhere; the actor shell counts them from its monotonic clock and gives, before
each input, every tick that had fallen when that input arrived, so a paused process
catches up at once). A
leader that sent TimeoutNow never serves lease reads again in that term, because
TimeoutNow lets the new candidate bypass the followers' leases.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .._errors import CompactionRejected, NotLeader, RaftInvariantError
from ._confchange import ConfChange, encode_conf_entry
from ._config import RaftConfig
from ._election import ElectionMixin
from ._log import RaftLog
from ._log_types import ConfState, Entry, EntryType, HardState, SnapshotMeta
from ._messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from ._ready import PeerStatus, Ready, Role, Snapshot, SoftState, Status
from ._replication import ReplicationMixin

__all__ = ["RaftNode"]

LEADER = Role.LEADER
FOLLOWER = Role.FOLLOWER
_NORMAL = EntryType.NORMAL

# Messages only the leader of their term sends: one at a higher term names that leader.
_FROM_LEADER = frozenset({AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow, ReadIndexResponse})
_REPLICATION = frozenset({AppendEntries, Heartbeat, InstallSnapshot})
_ANSWERS = frozenset({AppendEntriesResponse, HeartbeatResponse, InstallSnapshotResponse})


class RaftNode(ReplicationMixin, ElectionMixin):
    """The Raft state machine of one replica. Not thread-safe: one caller drives it."""

    def __init__(
        self,
        node_id: str,
        config: RaftConfig,
        rng: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
        applied: int | None = None,
    ) -> None:
        """Restart from what storage recovered, or start empty to join a cluster.

        `hard_state`, `snapshot` and `entries` are what earlier Readies asked to
        persist (entries: those after the snapshot). `applied` is how far the caller's
        state machine already is; by default the snapshot index (the caller restores
        the snapshot, and the core re-delivers the committed entries after it). An empty
        replica has no membership: it never campaigns and waits for a leader to send it
        the log. A brand-new cluster starts with `RaftNode.bootstrap`.
        """
        if not isinstance(node_id, str) or not node_id:
            raise RaftInvariantError(f"node ids are non-empty strings, got {node_id!r}")
        hs = hard_state or HardState()
        snap = snapshot or Snapshot()
        log = RaftLog(
            snap,
            entries,
            committed=max(hs.commit, snap.meta.index),
            applied=snap.meta.index if applied is None else applied,
        )
        super().__init__(node_id, config, rng, log, hs)
        # Only a replica restarted from persisted state may have acknowledged a leader's
        # heartbeat before: it honours that lease (see "Lease reads" above).
        self._boot_lease = config.lease_reads and (hs.term > 0 or log.last_index() > 0)
        self._handlers = {
            AppendEntries: self._on_append_entries,
            AppendEntriesResponse: self._on_append_response,
            Heartbeat: self._on_heartbeat,
            HeartbeatResponse: self._on_heartbeat_response,
            RequestVote: self._on_request_vote,
            RequestVoteResponse: self._on_vote_response,
            InstallSnapshot: self._on_install_snapshot,
            InstallSnapshotResponse: self._on_snapshot_response,
            TimeoutNow: self._on_timeout_now,
            ReadIndexRequest: self._on_read_index_request,
            ReadIndexResponse: self._on_read_index_response,
        }
        self._sync_conf()
        self._randomize_timeout()

    @classmethod
    def bootstrap(
        cls,
        node_id: str,
        voters: Sequence[str],
        config: RaftConfig,
        rng: random.Random,
        learners: Sequence[str] = (),
    ) -> RaftNode:
        """A member of a brand-new cluster. Every initial member must get the same lists.

        The membership becomes entry 1 (term 1), committed from the start, as in
        etcd: identical on every initial member by construction, and replicated like
        any other entry to servers added later. The first Ready persists it.
        """
        voters = tuple(voters)
        learners = tuple(learners)
        if node_id not in voters:
            raise RaftInvariantError(f"bootstrapping {node_id!r}, which is not among voters {voters}")
        if len(set(voters) | set(learners)) != len(voters) + len(learners):
            raise RaftInvariantError(f"duplicate ids in voters {voters} / learners {learners}")
        node = cls(node_id, config, rng)
        conf = ConfState(voters=voters, learners=learners)
        node._log.append([Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_entry(None, conf))], True)
        node._log.commit_to(1)
        node._become_follower(1, None)
        node._sync_conf()
        return node

    # --- read-only views ------------------------------------------------------------

    @property
    def config(self) -> RaftConfig:
        return self._cfg

    @property
    def conf(self) -> ConfState:
        """The membership in force (a change takes effect when appended, thesis §4.1)."""
        return self._log.conf

    @property
    def commit_index(self) -> int:
        return self._log.committed

    @property
    def applied_index(self) -> int:
        return self._log.applied

    @property
    def last_index(self) -> int:
        return self._log.last_index()

    @property
    def first_index(self) -> int:
        return self._log.first_index()

    @property
    def snapshot_meta(self) -> SnapshotMeta:
        return self._log.snapshot.meta

    @property
    def snapshot_size(self) -> int:
        """Bytes of the snapshot's data (0: none yet)."""
        return len(self._log.snapshot.data)

    @property
    def transferee(self) -> str | None:
        """The peer leadership is being transferred to, if a transfer is in progress."""
        return self._transferee

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.role, self.leader, self.term)

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self._log.committed)

    def entry_term(self, index: int) -> int | None:
        """Term of the entry at `index`, or None if compacted away or not in the log."""
        return self._log.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """The in-memory entries with lo <= index < hi (all after the snapshot)."""
        return self._log.slice(lo, hi)

    def status(self) -> Status:
        """A summary for status pages and metrics (the peers are filled on the leader)."""
        log = self._log
        return Status(
            id=self.id,
            role=self.role,
            term=self.term,
            leader=self.leader,
            vote=self.vote,
            commit=log.committed,
            applied=log.applied,
            last_index=log.last_index(),
            snapshot_index=log.snap_index,
            conf=log.conf,
            transferee=self._transferee,
            peers={
                p: PeerStatus(pr.match, pr.next, pr.state.value, pr.recent_active) for p, pr in self._progress.items()
            },
            quiesced=self._quiesced,
        )

    def __repr__(self) -> str:
        return (
            f"RaftNode({self.id!r}, {self.role.value}, term={self.term}, leader={self.leader!r}, "
            f"commit={self._log.committed}, last={self._log.last_index()})"
        )

    # --- inputs ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (the caller's timer; the core has no clock)."""
        self._dirty = True
        self._tick_count += 1
        if self._quiesced:
            return  # only counted: the lease and vote rules compare tick counts
        if self.role is LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def ticks_until_due(self) -> int | None:
        """How many ticks from now the first one that can do anything falls (None: none
        will, until some other input). The ticks before it only count, so a driver may
        sleep until then and give them all at once, provided it gives, before each input,
        every tick that had fallen when the input arrived (elapsed ticks decide lease reads
        and votes).
        """
        cfg = self._cfg
        if self._quiesced:
            return None
        if self.role is LEADER:
            due = min(cfg.heartbeat_tick - self._heartbeat_elapsed, cfg.election_tick_min - self._election_elapsed)
            if self._transferee is not None:
                due = min(due, cfg.election_tick_min - self._transfer_elapsed)
            return max(1, due)
        dues = []
        if self._boot_lease:
            dues.append(cfg.election_tick_min - self._election_elapsed)
        if self._promotable():
            dues.append(self._randomized_timeout - self._election_elapsed)
        return max(1, min(dues)) if dues else None

    def step(self, m: Message) -> None:
        """Feed one message from a peer. Stale, duplicated and reordered input is fine."""
        self._dirty = True
        if m.dst != self.id:
            raise RaftInvariantError(f"message for {m.dst!r} delivered to {self.id!r}: {m!r}")
        cls = type(m)
        if self._quiesced:
            if cls in _ANSWERS and m.term == self.term and self.role is LEADER:
                # A late answer to a round sent before it went quiet: a quiet leader only
                # takes note, unless it has something to send for it.
                queued = len(self._msgs) + len(self._msgs_after)
                self._handlers[cls](m)
                if len(self._msgs) + len(self._msgs_after) != queued or self.role is not LEADER:
                    self._unquiesce()
                return
            if not (cls is Heartbeat and m.quiesce):  # type: ignore[union-attr]
                self._unquiesce()
        term = m.term
        if term > self.term:
            if cls is RequestVote:
                if not m.transfer and self._in_lease():  # type: ignore[union-attr]
                    return  # thesis §4.2.3: a live leader is known; do not be disrupted
                if not m.pre_vote:  # type: ignore[union-attr]
                    self._become_follower(term, None)
            elif cls is RequestVoteResponse and m.pre_vote:  # type: ignore[union-attr]
                if not m.granted:  # type: ignore[union-attr]
                    self._become_follower(term, None)
            else:
                self._become_follower(term, m.src if cls in _FROM_LEADER else None)
        elif term < self.term:
            if cls in _REPLICATION:
                # Tell a stale leader about the newer term so that it steps down.
                self._send(AppendEntriesResponse(self.term, self.id, m.src, 0, True))
            elif cls is RequestVote and m.pre_vote:  # type: ignore[union-attr]
                self._send(RequestVoteResponse(self.term, self.id, m.src, False, True))
            return
        self._handlers[cls](m)

    def wake(self) -> None:
        """Run the timers again if this replica is quiet (`RaftConfig.quiesce`).

        The driver calls it when its failure detector says a peer this replica talks to
        is gone (a quiet group cannot notice that by itself), and for a request that
        needs a leader, so that a dead leader is replaced before the request times out.
        Every other input wakes a replica by itself.
        """
        if self._quiesced:
            self._unquiesce()

    @property
    def quiesced(self) -> bool:
        """True while no timer runs (`RaftConfig.quiesce`)."""
        return self._quiesced

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had fired (PreVote first).

        For tests and operators ("elect this replica"); does nothing on a leader or on a
        replica that is not a voter.
        """
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        if self.role is not LEADER:
            self._campaign(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append `data` as a new entry; returns its index (see "Lost proposals").

        Raises `NotLeader(leader_hint)` on a non-leader and
        `LeadershipTransferInProgress` while handing leadership over.
        """
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        self._check_can_propose()
        log = self._log
        index = log.last_index() + 1
        log.append([Entry(index, self.term, _NORMAL, data)], False)
        self._bcast_pending = True
        return index

    def propose_batch(self, datas: Sequence[bytes]) -> int:
        """Append many entries in one go; returns the first index (the rest follow it)."""
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        self._check_can_propose()
        if not datas:
            raise RaftInvariantError("propose_batch needs at least one entry")
        log = self._log
        start = log.last_index() + 1
        term = self.term
        log.append([Entry(start + n, term, _NORMAL, d) for n, d in enumerate(datas)], False)
        self._bcast_pending = True
        return start

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a single-server membership change; returns its log index.

        Refused with `ConfChangeRejected` while an earlier change is uncommitted, and
        before this leader committed an entry of its own term (the rule that keeps
        single-server changes safe across leader changes, Ongaro 2015). The change takes
        effect on each replica when appended. A removed leader keeps leading (without
        counting itself) until the change commits, then hands over and steps down.
        """
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        return self._propose_conf_change(change)

    def transfer_leadership(self, peer: str) -> None:
        """Hand leadership to `peer` (thesis §3.10): catch it up, then send TimeoutNow.

        Proposals are refused meanwhile; the transfer is abandoned after
        `election_tick_min` ticks. Transferring to ourselves cancels a transfer.
        """
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        self._transfer_leadership(peer)

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; the answer is a `ReadState(index, context)`.

        On the leader: once a heartbeat round confirms leadership (reads issued between
        two Readies share one round; a new leader first waits for its no-op to commit),
        or at once from a valid lease. On a follower: forwarded to the leader. Raises
        `NotLeader(None)` when no leader is known. A read still unconfirmed when
        leadership changes is dropped: the caller times it out.
        """
        self._dirty = True
        if self._quiesced:
            self._unquiesce()
        if self.role is LEADER:
            self._leader_read(context, self.id)
        elif self.leader is not None and self.role is FOLLOWER:
            self._send(ReadIndexRequest(self.term, self.id, self.leader, context))
        else:
            raise NotLeader(None)

    def compact(self, index: int, snapshot_data: bytes) -> SnapshotMeta:
        """Discard entries up to `index` behind `snapshot_data`, a state machine snapshot.

        The caller's state machine must have been at exactly `index` when it produced
        `snapshot_data`. Returns the snapshot metadata (with the membership as of
        `index`) for the caller to persist together with the data.
        """
        self._dirty = True
        log = self._log
        if index <= log.snap_index:
            raise CompactionRejected(index, f"the log is already compacted up to {log.snap_index}")
        if index > log.applied:
            raise CompactionRejected(
                index,
                f"only {log.applied} is applied; a snapshot may cover applied entries only",
            )
        if self._ready_mark is not None:
            raise CompactionRejected(index, "a Ready is outstanding; call advance() first")
        return log.compact(index, snapshot_data)

    # --- Ready ------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """True if `ready()` has something to hand out (False while one is outstanding)."""
        # Sans-IO: nothing changes between calls, so "no input since the last Ready" is
        # a cheap and exact "no".
        if self._ready_mark is not None or not self._dirty:
            return False
        if self._msgs or self._msgs_after or self._read_states:
            return True
        log = self._log
        last = log._snap_index + len(log._entries)
        if log.unstable_from <= last or log.pending_snapshot is not None:
            return True
        role = self.role
        if role is LEADER and (self._bcast_pending or self._read_round_open):
            return True
        committed = log.committed
        if committed > log.applied and committed >= log.apply_from():
            return True
        hs = self._prev_hs
        if hs.commit != committed or hs.term != self.term or hs.vote != self.vote:
            return True
        ss = self._prev_ss
        if ss.role is not role or ss.leader != self.leader or ss.term != self.term:
            return True
        self._dirty = False
        return False

    def ready(self) -> Ready:
        """Collect the outputs accumulated so far. Call `advance()` once handled."""
        if self._ready_mark is not None:
            raise RaftInvariantError("ready() called again before advance()")
        role = self.role
        if role is LEADER:
            self._flush_leader()
        log = self._log
        entries = log.unstable_entries() if log.unstable_from <= log._snap_index + len(log._entries) else ()
        committed_index = log.committed
        term, vote = self.term, self.vote
        hs = self._prev_hs
        hs_out = None
        if hs.commit != committed_index or hs.term != term or hs.vote != vote:
            hs_out = HardState(term, vote, committed_index)
        ss = self._prev_ss
        ss_out = None
        if ss.role is not role or ss.leader != self.leader or ss.term != term:
            ss_out = self._prev_ss = SoftState(role, self.leader, term)
        snap = log.pending_snapshot
        committed = log.next_committed() if committed_index > log.applied else ()
        msgs, self._msgs = self._msgs, []
        after, self._msgs_after = self._msgs_after, []
        rs, self._read_states = self._read_states, []
        self._ready_mark = (
            entries[-1].index if entries else 0,
            hs_out,
            committed[-1].index if committed else 0,
            snap,
        )
        log.trunc_mark = None
        self._dirty = False
        return Ready(
            ss_out,
            hs_out,
            entries,
            tuple(msgs),
            tuple(after),
            committed,
            snap,
            tuple(rs),
        )

    def advance(self) -> None:
        """The outstanding Ready is handled: persisted, sent and applied."""
        self._dirty = True
        mark = self._ready_mark
        if mark is None:
            raise RaftInvariantError("advance() called without an outstanding ready()")
        self._ready_mark = None
        last_entry, hs, applied_to, snap = mark
        log = self._log
        log.stable_to(last_entry)
        if hs is not None:
            self._prev_hs = hs
        if snap is not None:
            if log.pending_snapshot is snap:
                log.pending_snapshot = None
            if snap.meta.index > log.applied:
                log.applied_to(snap.meta.index)
        if applied_to:
            log.applied_to(applied_to)
        if self.role is LEADER:
            # Our own entries count toward a quorum only once persisted (thesis §10.2.1).
            self._maybe_commit()
