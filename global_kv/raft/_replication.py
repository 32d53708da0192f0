"""Log replication on both sides: AppendEntries, heartbeats, snapshots, commit (Raft §5.3).

Leader side: per-peer progress in PROBE / REPLICATE / SNAPSHOT state, pipelining up
to `max_inflight_msgs`, batching up to `max_entries_per_msg` and a byte cap, fast
backtracking from the follower's hint, chunked InstallSnapshot, the §5.4.2 commit rule,
CheckQuorum, leadership transfer and membership proposals. Retransmission is driven by
heartbeat answers, so a dead follower costs heartbeats only.

Follower side: accept entries after a matching (prev_index, prev_term), truncating only
on a real term conflict (never for a stale or duplicated message), and assemble
snapshots from chunks. No I/O here: messages are appended to the outbox.
"""

from __future__ import annotations

from .._errors import (
    ConfChangeRejected,
    LogLost,
    NotLeader,
    RaftInvariantError,
    TransferRejected,
)
from ._confchange import ConfChange, apply_conf_change, encode_conf_entry
from ._core import NodeCore, SnapshotRx
from ._log_types import ConfState, Entry, EntryType, SnapshotMeta
from ._messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
)
from ._progress import Progress, ProgressState
from ._ready import Role, Snapshot

__all__ = ["ReplicationMixin"]

LEADER = Role.LEADER
PROBE = ProgressState.PROBE
REPLICATE = ProgressState.REPLICATE
SNAPSHOT = ProgressState.SNAPSHOT


class ReplicationMixin(NodeCore):
    # === follower side ===========================================================

    def _on_append_entries(self, m: AppendEntries) -> None:
        self._follow(m.src)
        log = self._log
        committed = log.committed
        prev, prev_term, ents = m.prev_index, m.prev_term, m.entries
        if prev < committed:
            # Entries up to our commit index are settled; skip them (they must match).
            skip = committed - prev
            if len(ents) <= skip:
                self._send(AppendEntriesResponse(self.term, self.id, m.src, committed))
                return
            boundary = ents[skip - 1]
            if boundary.term != log.term(committed):
                raise RaftInvariantError(
                    f"leader {m.src!r} sent entry {committed} of term {boundary.term}, but "
                    f"the committed entry there has term {log.term(committed)}"
                )
            ents = ents[skip:]
            prev, prev_term = committed, boundary.term
        last_new = log.maybe_append(prev, prev_term, m.commit, ents)
        if last_new is None:
            hint_index, hint_term = log.find_conflict_by_term(min(prev, log.last_index()), prev_term)
            self._send(AppendEntriesResponse(self.term, self.id, m.src, m.prev_index, True, hint_index, hint_term))
            return
        if log.conf_version != self._conf_version:
            self._sync_conf()
        self._send(AppendEntriesResponse(self.term, self.id, m.src, last_new))

    def _on_heartbeat(self, m: Heartbeat) -> None:
        self._follow(m.src)
        # m.commit <= what we acknowledged as persisted (the leader caps it at our match
        # index), so it is in our log, unless the log we acknowledged it from is gone.
        last = self._log.last_index()
        if m.commit > last:
            raise LogLost(self.id, m.src, m.commit, last)
        self._log.commit_to(m.commit)
        if m.read_seq:  # round 0 is a mere commit notification: no answer wanted
            self._send(HeartbeatResponse(self.term, self.id, m.src, m.read_seq))
        elif m.quiesce and m.commit == last and self._cfg.quiesce:
            # The leader is idle and we hold all it has: no timer until the next input,
            # and a snapshot it began sending us once is moot.
            self._quiesced = True
            self._snap_rx = None

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        self._follow(m.src)
        log = self._log
        if m.index <= log.committed:
            self._snap_rx = None
            self._send(AppendEntriesResponse(self.term, self.id, m.src, log.committed))
            return
        rx = self._snap_rx
        key = (m.term, m.index, m.snapshot_term)
        if rx is None or rx.key != key:
            if m.offset != 0:
                self._send(InstallSnapshotResponse(self.term, self.id, m.src, m.index, 0))
                return
            rx = self._snap_rx = SnapshotRx(key)
        if m.offset != rx.size:
            # A duplicate or a gap: tell the leader where we are.
            self._send(InstallSnapshotResponse(self.term, self.id, m.src, m.index, rx.size))
            return
        rx.parts.append(m.data)
        rx.size += len(m.data)
        if not m.done:
            self._send(InstallSnapshotResponse(self.term, self.id, m.src, m.index, rx.size))
            return
        self._snap_rx = None
        meta = SnapshotMeta(m.index, m.snapshot_term, ConfState(m.voters, m.learners))
        self._restore(Snapshot(meta, b"".join(rx.parts)))
        self._send(AppendEntriesResponse(self.term, self.id, m.src, log.committed))

    def _restore(self, snap: Snapshot) -> bool:
        log = self._log
        meta = snap.meta
        if meta.index <= log.committed:
            return False
        if log.term(meta.index) == meta.term:
            # We hold that entry, hence (Log Matching) everything before it: just commit.
            log.commit_to(meta.index)
            return False
        log.restore(snap)
        self._sync_conf()
        return True

    # === leader side: timers ======================================================

    def _tick_leader(self) -> None:
        cfg = self._cfg
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= cfg.election_tick_min:
                self._transferee = None  # abandoned: accept proposals again
        if self._election_elapsed >= cfg.election_tick_min:
            self._election_elapsed = 0
            if cfg.check_quorum and not self._quorum_active():
                self._become_follower(self.term, None)
                return
            self._purge_leaving(force=True)
        if self._heartbeat_elapsed >= cfg.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._note_stalls()
            if cfg.quiesce and self._can_quiesce():
                self._quiesce()
            else:
                self._bcast_heartbeat()

    def _can_quiesce(self) -> bool:
        """Nothing to do until the next input: every member holds the whole log, committed,
        and has answered a heartbeat lately; no proposal, read or transfer waits."""
        if self._transferee is not None or not self._committed_in_term or self._bcast_pending:
            return False
        if self._reads or self._reads_wait or self._read_round_open:
            return False
        log = self._log
        last = log.last_index()
        if log.committed != last or log.stable_last() != last:
            return False
        # A peer that answered a round sent since this leader led or last woke is there
        # (a lost one keeps the leader heartbeating, so PreVote and CheckQuorum still
        # protect the rest from it, as in a group that never goes quiet).
        after = self._quiet_after
        for pr in self._progress.values():
            if pr.state is not REPLICATE or pr.match != last or pr.inflights or pr.leaving or pr.read_acked <= after:
                return False
        return True

    def _quiesce(self) -> None:
        """The last heartbeat before an idle leader stops ticking (`RaftConfig.quiesce`)."""
        commit = self._log.committed
        term, me = self.term, self.id
        for p, pr in self._progress.items():
            self._send(Heartbeat(term, me, p, commit, 0, True))
            pr.commit_sent = commit
        self._quiesced = True

    def _quorum_active(self) -> bool:
        """CheckQuorum: did a quorum answer us during the last election_tick_min ticks?"""
        active = 0
        progress = self._progress
        for v in self._voters:
            if v == self.id or progress[v].recent_active:
                active += 1
        for pr in progress.values():
            pr.recent_active = False
        return active >= self._quorum()

    def _note_stalls(self) -> None:
        """Count heartbeat periods without progress; answers to heartbeats retransmit."""
        last = self._log.last_index()
        for pr in self._progress.values():
            state = pr.state
            if state is REPLICATE:
                mark = pr.match
                pr.stalls = pr.stalls + 1 if mark < last and mark == pr.stall_mark else 0
                pr.stall_mark = mark
            elif state is SNAPSHOT:
                mark = pr.snap_offset
                pr.stalls = pr.stalls + 1 if mark == pr.stall_mark else 0
                pr.stall_mark = mark

    def _bcast_heartbeat(self) -> None:
        self._read_round_open = False
        self._read_seq += 1
        seq = self._read_seq
        self._seq_sent.append((seq, self._tick_count))
        commit = self._log.committed
        term, me = self.term, self.id
        for p, pr in self._progress.items():
            known = min(pr.match, commit)
            self._send(Heartbeat(term, me, p, known, seq))
            pr.commit_sent = max(pr.commit_sent, known)
            pr.hb_round = seq
            pr.hb_sent = pr.next - 1
        self._advance_reads()

    def _flush_leader(self) -> None:
        """Send what accumulated since the last Ready: one round of appends per peer."""
        if self._read_round_open:
            self._bcast_heartbeat()
        if self._bcast_pending:
            self._bcast_pending = False
            send_empty = self._commit_bcast
            self._commit_bcast = False
            for p, pr in self._progress.items():
                self._send_append_loop(p, pr, send_empty)

    # === leader side: sending ========================================================

    def _send_append(self, peer: str, pr: Progress, send_empty: bool) -> bool:
        state = pr.state
        if state is SNAPSHOT:
            return False
        log = self._log
        nxt = pr.next
        last = log.last_index()
        if state is REPLICATE and nxt > last:
            # Nothing new to send; maybe a commit index the follower cannot apply yet.
            committed = log.committed
            match = pr.match
            if not send_empty or min(match, committed) <= pr.commit_sent:
                return False
            # A commit notification: a heartbeat of round 0, which needs no answer, with
            # the commit capped at what the follower is known to hold.
            known = min(match, committed)
            self._send(Heartbeat(self.term, self.id, peer, known, 0))
            pr.commit_sent = known
            return True
        if state is PROBE:
            if pr.paused:
                return False
        elif len(pr.inflights) >= pr.max_inflight:
            return False
        prev = nxt - 1
        prev_term = log.term(prev)
        if prev_term is None:
            # The entries this follower needs are compacted away.
            pr.become_snapshot(log.snap_index)
            self._send_snapshot_chunk(peer, pr)
            return True
        cfg = self._cfg
        ents = log.entries_for_send(nxt, cfg.max_entries_per_msg, cfg.max_bytes_per_msg) if nxt <= last else ()
        committed = log.committed
        self._send(AppendEntries(self.term, self.id, peer, prev, prev_term, ents, committed))
        if ents:
            last_sent = ents[-1].index
            pr.sent_entries(last_sent)
        else:
            last_sent = prev
            pr.paused = True  # an empty probe: wait for its answer
        if pr.commit_sent < committed:
            pr.commit_sent = max(pr.commit_sent, min(committed, last_sent))
        return True

    def _send_append_loop(self, peer: str, pr: Progress, send_empty: bool) -> None:
        if not self._send_append(peer, pr, send_empty):
            return
        last = self._log.last_index()
        while pr.state is REPLICATE and pr.next <= last and len(pr.inflights) < pr.max_inflight:
            self._send_append(peer, pr, False)

    def _send_snapshot_chunk(self, peer: str, pr: Progress) -> None:
        snap = self._log.snapshot
        meta = snap.meta
        if meta.index != pr.pending_snapshot:
            pr.become_snapshot(meta.index)  # compacted again meanwhile: start over
        off = pr.snap_offset
        chunk = snap.data[off : off + self._cfg.snapshot_chunk_size]
        done = off + len(chunk) >= len(snap.data)
        conf = meta.conf
        self._send(
            InstallSnapshot(
                self.term,
                self.id,
                peer,
                meta.index,
                meta.term,
                conf.voters,
                conf.learners,
                off,
                chunk,
                done,
            )
        )

    def _send_timeout_now(self, peer: str) -> None:
        # TimeoutNow lets the peer bypass followers' leases: never lease-read again this term.
        self._lease_forbidden = True
        self._send(TimeoutNow(self.term, self.id, peer))

    # === leader side: answers ===========================================================

    def _responding(self, peer: str) -> Progress | None:
        """The progress of a peer answering this leader, now marked active (CheckQuorum);
        None if this replica no longer leads or no longer knows the peer."""
        if self.role is not LEADER:
            return None
        pr = self._progress.get(peer)
        if pr is not None:
            pr.recent_active = True
        return pr

    def _on_append_response(self, m: AppendEntriesResponse) -> None:
        pr = self._responding(m.src)
        if pr is None:
            return
        log = self._log
        if m.reject:
            hint = m.hint_index
            if m.hint_term > 0:
                hint = log.find_conflict_by_term(m.hint_index, m.hint_term)[0]
            if pr.maybe_decr_to(m.index, hint):
                if pr.state is REPLICATE:
                    pr.become_probe()
                self._send_append_loop(m.src, pr, False)
            return
        if not pr.maybe_update(m.index) and not (pr.state is PROBE and pr.match == m.index):
            return  # (a probe answered at the match index still ends probing, as in etcd)
        state = pr.state
        if state is PROBE:
            pr.become_replicate()
        elif state is SNAPSHOT:
            if pr.match + 1 >= log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.free_le(m.index)
        if not pr.is_learner:
            self._maybe_commit()
        elif pr.leaving:
            self._purge_leaving()
        if self.role is not LEADER or m.src not in self._progress:
            return  # a removed leader stepped down, or a removed peer was forgotten
        if m.src == self._transferee and pr.match == log.last_index():
            self._send_timeout_now(m.src)
        # More entries if any; else the commit index if this ack made more of it usable.
        self._send_append_loop(m.src, pr, True)

    def _on_heartbeat_response(self, m: HeartbeatResponse) -> None:
        pr = self._responding(m.src)
        if pr is None:
            return
        if m.read_seq > pr.read_acked:
            pr.read_acked = m.read_seq
            if not pr.is_learner:
                self._advance_reads()
        # The follower is alive: retransmit whatever seems lost.
        state = pr.state
        if state is PROBE:
            pr.paused = False
            self._send_append_loop(m.src, pr, False)
        elif state is REPLICATE and m.read_seq == pr.hb_round and pr.match < pr.hb_sent:
            # It answered a heartbeat sent after those entries, but not the entries:
            # with ordered delivery they were lost. Probe from what it holds.
            pr.become_probe()
            self._send_append_loop(m.src, pr, False)
        elif pr.stalls >= 2:
            pr.stalls = 0
            if state is REPLICATE:
                pr.become_probe()
                self._send_append_loop(m.src, pr, False)
            else:
                self._send_snapshot_chunk(m.src, pr)

    def _on_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        pr = self._responding(m.src)
        if pr is None:
            return
        if pr.state is not SNAPSHOT or m.index != pr.pending_snapshot:
            return
        size = len(self._log.snapshot.data)
        pr.snap_offset = max(0, min(m.offset, size))
        if pr.snap_offset < size or self._log.snap_index != m.index:
            self._send_snapshot_chunk(m.src, pr)

    # === leader side: commit ===========================================================

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum of voters persisted (§5.3, §5.4.2)."""
        log = self._log
        voters = self._voters
        if not voters:
            return False
        progress = self._progress
        me = self.id
        stable = log.stable_last()
        matches = [stable if v == me else progress[v].match for v in voters]
        matches.sort(reverse=True)
        q = matches[len(matches) // 2]
        # §5.4.2: never commit entries of previous terms by counting replicas.
        if q <= log.committed or log.term(q) != self.term:
            return False
        log.commit_to(q)
        self._bcast_pending = True
        self._commit_bcast = True
        if not self._committed_in_term:
            self._on_commit_in_term()
        if log.conf_index() <= log.committed:
            self._purge_leaving()
            if me not in voters:
                self._step_down_removed()
        return True

    def _step_down_removed(self) -> None:
        """Our own removal committed: hand over to the most caught-up voter, step down."""
        last = self._log.last_index()
        best = None
        for v in self._voters:
            pr = self._progress.get(v)
            if pr is not None and pr.match == last and (best is None or v < best):
                best = v
        if best is not None:
            self._send_timeout_now(best)
        self._become_follower(self.term, None)

    # === leader side: requests =============================================================

    def _transfer_leadership(self, peer: str) -> None:
        if self.role is not LEADER:
            raise NotLeader(self.leader)
        if peer == self.id:
            self._transferee = None
            return
        if peer not in self._voters:
            raise TransferRejected(peer, "it is not a voter of the current configuration")
        if self._transferee == peer:
            return
        self._transferee = peer
        self._transfer_elapsed = 0
        self._lease_forbidden = True
        pr = self._progress[peer]
        if pr.match == self._log.last_index():
            self._send_timeout_now(peer)
        else:
            self._send_append_loop(peer, pr, False)

    def _propose_conf_change(self, change: ConfChange) -> int:
        self._check_can_propose()
        log = self._log
        if not self._committed_in_term:
            raise ConfChangeRejected(
                change,
                "this leader has not committed an entry of its own term yet; retry shortly",
            )
        if self._pending_conf_index > log.committed:
            raise ConfChangeRejected(
                change,
                f"the configuration change at index {self._pending_conf_index} is not committed yet",
            )
        conf = apply_conf_change(log.conf, change)
        index = log.last_index() + 1
        log.append(
            [
                Entry(
                    index,
                    self.term,
                    EntryType.CONF_CHANGE,
                    encode_conf_entry(change, conf),
                )
            ],
            True,
        )
        self._pending_conf_index = index
        self._sync_conf()
        self._bcast_pending = True
        self._maybe_commit()
        if self.role is LEADER:
            self._advance_reads()
        return index
