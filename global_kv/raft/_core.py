"""The state every role of a Raft replica shares, and the helpers all roles use.

`NodeCore` holds one replica's Raft state (term, vote, role, log, membership,
per-peer progress, outboxes, reads). The role logic is split by job into mixins:
`_election.py` (timeouts, PreVote, votes, becoming leader), `_replication.py`
(AppendEntries, heartbeats, snapshots, commit, transfer, membership) and the public
API in `_node.py`. Nothing here performs I/O, reads a clock or draws randomness other
than from the injected `random.Random`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .._errors import LeadershipTransferInProgress, NotLeader, RaftInvariantError
from ._config import RaftConfig
from ._log import RaftLog
from ._log_types import HardState
from ._messages import Message, ReadIndexRequest, ReadIndexResponse
from ._progress import Progress
from ._ready import ReadState, Role, Snapshot, SoftState

__all__ = ["NodeCore", "PendingRead", "SnapshotRx"]

FOLLOWER = Role.FOLLOWER
LEADER = Role.LEADER


class PendingRead:
    """A ReadIndex request waiting for heartbeat round `seq` to be echoed by a quorum."""

    __slots__ = ("context", "index", "requester", "seq")

    def __init__(self, seq: int, index: int, context: bytes, requester: str) -> None:
        self.seq = seq
        self.index = index
        self.context = context
        self.requester = requester


class SnapshotRx:
    """A snapshot being received chunk by chunk from the leader."""

    __slots__ = ("key", "parts", "size")

    def __init__(self, key: tuple[int, int, int]) -> None:
        self.key = key
        self.parts: list[bytes] = []
        self.size = 0


class NodeCore:
    """Shared state and helpers of a replica; see `RaftNode` for the public API."""

    def __init__(
        self,
        node_id: str,
        config: RaftConfig,
        rng: random.Random,
        log: RaftLog,
        hs: HardState,
    ) -> None:
        self.id = node_id
        self._cfg = config
        self._rng = rng
        self._log = log
        self.term = hs.term
        self.vote: str | None = hs.vote
        self.leader: str | None = None
        self.role = FOLLOWER
        self._prev_hs = HardState(hs.term, hs.vote, log.committed)
        self._prev_ss = SoftState(FOLLOWER, None, hs.term)
        self._voters: tuple[str, ...] = ()
        self._learners: tuple[str, ...] = ()
        self._conf_version = -1
        self._progress: dict[str, Progress] = {}
        self._votes: dict[str, bool] = {}
        self._msgs: list[Message] = []
        self._msgs_after: list[Message] = []
        self._read_states: list[ReadState] = []
        self._ready_mark: tuple[int, HardState | None, int, Snapshot | None] | None = None
        self._tick_count = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_tick_max
        self._boot_lease = False  # set by RaftNode for a replica restarted from storage
        self._transferee: str | None = None
        self._transfer_elapsed = 0
        self._pending_conf_index = 0
        self._committed_in_term = False
        self._bcast_pending = False
        self._commit_bcast = False
        self._read_seq = 0
        self._quorum_acked_seq = 0
        self._read_round_open = False
        self._reads: list[PendingRead] = []
        self._reads_wait: list[tuple[bytes, str]] = []
        self._seq_sent: deque[tuple[int, int]] = deque(maxlen=4096)
        self._lease_until = 0
        self._lease_forbidden = False
        self._snap_rx: SnapshotRx | None = None
        self._quiesced = False  # RaftConfig.quiesce: no timer runs until the next input
        # A leader goes quiet only once every peer answered a heartbeat round after this one
        # (sent since it led, or since it last woke): a peer lost meanwhile keeps it awake.
        self._quiet_after = 0
        self._handlers: dict[type, Callable[[Any], None]] = {}
        self._dirty = True  # any input since the last Ready (see RaftNode.has_ready)

    # --- outbox ------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        # Only a leader's messages may go out before the persist: its term and vote are
        # already durable, and it counts its own entries only once persisted (thesis
        # §10.2.1). Everything else (votes, acknowledgements) promises durable state.
        if self.role is LEADER:
            self._msgs.append(m)
        else:
            self._msgs_after.append(m)

    # --- small predicates -----------------------------------------------------------

    def _quorum(self) -> int:
        return len(self._voters) // 2 + 1

    def _promotable(self) -> bool:
        return self.id in self._voters

    def _in_lease(self) -> bool:
        """Thesis §4.2.3: ignore vote requests while a leader is recently known alive."""
        if not self._cfg.check_quorum:
            return False
        if self.leader is None and not self._boot_lease:
            return False
        return self._election_elapsed < self._cfg.election_tick_min

    def _check_can_propose(self) -> None:
        if self.role is not LEADER:
            raise NotLeader(self.leader)
        if self._transferee is not None:
            raise LeadershipTransferInProgress(self._transferee)

    # --- role changes ------------------------------------------------------------------

    def _randomize_timeout(self) -> None:
        cfg = self._cfg
        self._randomized_timeout = self._rng.randrange(cfg.election_tick_min, cfg.election_tick_max)

    def _reset(self, term: int) -> None:
        if term != self.term:
            if term < self.term:
                raise RaftInvariantError(f"term going back from {self.term} to {term}")
            self.term = term
            self.vote = None
        self.leader = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomize_timeout()
        self._votes = {}
        self._progress = {}
        self._transferee = None
        self._transfer_elapsed = 0
        self._pending_conf_index = 0
        self._committed_in_term = False
        self._bcast_pending = False
        self._commit_bcast = False
        self._read_round_open = False
        self._reads = []
        self._reads_wait = []
        self._seq_sent.clear()
        self._lease_until = 0
        self._lease_forbidden = False
        self._quiesced = False
        self._quiet_after = self._read_seq

    def _unquiesce(self) -> None:
        """An input other than a tick: run the timers again, from now. A leader's CheckQuorum
        period starts afresh with the peers still marked active (every one had answered
        before it went quiet, and nobody had anything to answer since): a lost quorum makes
        it step down one period later, not before a slow answer can arrive."""
        self._quiesced = False
        self._quiet_after = self._read_seq
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0

    def _become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = FOLLOWER
        self.leader = leader

    def _follow(self, src: str) -> None:
        """A message from the leader of our term arrived: follow it, restart the timer."""
        if self.role is LEADER:
            raise RaftInvariantError(f"{src!r} acts as leader of term {self.term}, but {self.id!r} is its leader")
        if self.role is not FOLLOWER:
            self._become_follower(self.term, src)
        elif self.leader != src:
            if self.leader is not None:
                raise RaftInvariantError(f"two leaders in term {self.term}: {self.leader!r} and {src!r}")
            self.leader = src
        self._election_elapsed = 0
        self._boot_lease = False

    # --- membership ---------------------------------------------------------------------

    def _sync_conf(self) -> None:
        """Adopt the membership in force in the log (after any append/truncate/restore)."""
        log = self._log
        if log.conf_version == self._conf_version:
            return
        self._conf_version = log.conf_version
        conf = log.conf
        self._voters = conf.voters
        self._learners = conf.learners
        if self.role is LEADER:
            self._sync_progress()
        elif self.role is not FOLLOWER and not self._promotable():
            self._become_follower(self.term, None)

    def _sync_progress(self) -> None:
        """Track every member; keep replicating to removed servers until the removal commits.

        A removed server is no longer counted in any quorum, but it still gets the log, so
        it learns of its own removal and stops campaigning instead of disrupting the
        cluster (thesis §4.2.3); `_purge_leaving` drops it once the change is committed.
        """
        members = set(self._voters) | set(self._learners)
        for p, pr in self._progress.items():
            if p not in members:
                pr.is_learner = True
                pr.leaving = True
                if p == self._transferee:
                    self._transferee = None
        nxt = self._log.last_index() + 1
        cap = self._cfg.max_inflight_msgs
        learners = self._learners
        for p in self._voters + learners:
            if p == self.id:
                continue
            known = self._progress.get(p)
            if known is None:
                self._progress[p] = Progress(nxt, cap, p in learners)
            else:
                known.is_learner = p in learners
                known.leaving = False
        self._purge_leaving()
        # Quorums changed: a lease earned under the old membership is not reused.
        self._lease_until = 0

    def _purge_leaving(self, force: bool = False) -> None:
        """Forget removed servers once their removal is committed and they hold it.

        `force` (every election_tick_min ticks) also forgets those that never caught up,
        e.g. dead ones, so a removed server costs at most one more election period.
        """
        conf_index = self._log.conf_index()
        if conf_index <= self._log.committed:
            for p in [p for p, pr in self._progress.items() if pr.leaving and (force or pr.match >= conf_index)]:
                del self._progress[p]

    # --- reads ----------------------------------------------------------------------------

    def _leader_read(self, context: bytes, requester: str) -> None:
        if not self._committed_in_term:
            # Raft §8: until its no-op commits, a new leader does not know the commit index.
            self._reads_wait.append((context, requester))
            return
        index = self._log.committed
        if self._voters == (self.id,):
            self._release_read(index, context, requester)
            return
        if self._cfg.lease_reads and not self._lease_forbidden and self._tick_count < self._lease_until:
            self._release_read(index, context, requester)
            return
        self._reads.append(PendingRead(self._read_seq + 1, index, context, requester))
        self._read_round_open = True

    def _release_read(self, index: int, context: bytes, requester: str) -> None:
        if requester == self.id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(ReadIndexResponse(self.term, self.id, requester, context, index))

    def _advance_reads(self) -> None:
        """Release reads (and extend the lease) once a quorum echoed a heartbeat round."""
        acks = []
        progress = self._progress
        for v in self._voters:
            if v == self.id:
                acks.append(self._read_seq)
            else:
                pr = progress.get(v)
                acks.append(pr.read_acked if pr is not None else 0)
        if not acks:
            return
        acks.sort(reverse=True)
        q_seq = acks[len(acks) // 2]
        if q_seq <= self._quorum_acked_seq:
            return
        self._quorum_acked_seq = q_seq
        sent = self._seq_sent
        start = None
        while sent and sent[0][0] <= q_seq:
            seq, at = sent.popleft()
            if seq == q_seq:
                start = at
        if start is not None:
            until = start + self._cfg.election_tick_min - self._cfg.lease_margin_ticks
            self._lease_until = max(self._lease_until, until)
        reads = self._reads
        n = 0
        while n < len(reads) and reads[n].seq <= q_seq:
            r = reads[n]
            self._release_read(r.index, r.context, r.requester)
            n += 1
        if n:
            del reads[:n]

    def _on_read_index_request(self, m: ReadIndexRequest) -> None:
        if self.role is LEADER:
            self._leader_read(m.context, m.src)
        # Otherwise drop it: the follower's caller times the read out and retries.

    def _on_read_index_response(self, m: ReadIndexResponse) -> None:
        if self.role is not LEADER:
            self._read_states.append(ReadState(m.index, m.context))

    def _on_commit_in_term(self) -> None:
        """The leader's first entry of its term committed: reads waiting for it can go."""
        self._committed_in_term = True
        waiting, self._reads_wait = self._reads_wait, []
        for context, requester in waiting:
            self._leader_read(context, requester)
