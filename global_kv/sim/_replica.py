"""One simulated server: a Raft core, its simulated disk, the real state machine, a clock.

The disk keeps exactly what Ready asked to persist and nothing else, so a crash loses
precisely what a real crash would: a Ready handed out but not yet persisted is gone.
`begin_ready` / `finish_ready` follow the Ready contract (send leader messages ->
persist -> send persisted messages -> apply -> advance); a slow disk leaves the Ready
unfinished for a while (the core keeps receiving messages meanwhile), and a crash can
strike between any two of those steps.

Committed entries are applied to the real `global_kv.state.StateMachine` on a
`MemoryStorage` (volatile like the rest of the replica's memory: a restart restores the
disk's snapshot and replays the log); snapshots are its `snapshot_chunks` and
`restore_chunks`, as in the actor shell. Each replica has its own clock for lock TTLs,
running at a per-seed skewed rate (Raft ticks are not skewed: lease reads assume a
bounded tick drift, see `RaftConfig.lease_reads`). Nothing here does real I/O.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .._errors import NotLeader, RaftInvariantError
from ..raft import Entry, HardState, RaftNode, Ready, Role, Snapshot, SnapshotMeta
from ..state import Command, Granted, Op, Released, StateMachine, encode_command

# The engine module itself: the storage package also exports the disk engines.
from ..storage._memory import MemoryStorage
from ._lock_service import SimLockService

if TYPE_CHECKING:
    from ._lock_clients import LockClient
    from ._simulation import Simulation
    from ._workload import Client

__all__ = ["SimDisk", "SimReplica"]

LEADER = Role.LEADER


class SimDisk:
    """What survives a crash: hard state, the last snapshot, entries after it."""

    __slots__ = ("entries", "hard_state", "snapshot")

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot = Snapshot()
        self.entries: list[Entry] = []

    def persist(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.entries:
            keep = rd.entries[0].index - self.snapshot.meta.index - 1
            if not 0 <= keep <= len(self.entries):
                raise RaftInvariantError(
                    f"Ready entries start at {rd.entries[0].index}, but the disk holds "
                    f"[{self.snapshot.meta.index + 1}, {self.snapshot.meta.index + len(self.entries)}]"
                )
            del self.entries[keep:]
            self.entries.extend(rd.entries)
        hs = rd.hard_state
        if hs is not None:
            old = self.hard_state
            if hs.term < old.term or hs.commit < old.commit:
                raise RaftInvariantError(f"persisted hard state going back: {old} -> {hs}")
            if hs.term == old.term and old.vote is not None and hs.vote != old.vote:
                raise RaftInvariantError(f"vote changed within term {hs.term}: {old.vote} -> {hs.vote}")
            self.hard_state = hs

    def compact(self, meta: SnapshotMeta, data: bytes) -> None:
        drop = meta.index - self.snapshot.meta.index
        if not 0 < drop <= len(self.entries):
            raise RaftInvariantError(f"disk cannot compact at {meta.index}: entries missing")
        del self.entries[:drop]
        self.snapshot = Snapshot(meta, data)


class SimReplica:
    """A server that can crash (losing memory, keeping its disk) and restart."""

    def __init__(self, sim: Simulation, node_id: str) -> None:
        self.sim = sim
        self.id = node_id
        self.disk = SimDisk()
        self.node: RaftNode | None = None
        self.sm: StateMachine | None = None
        self.locks: SimLockService | None = None
        self.retired = False
        self.incarnation = 0
        self.seen_commit = 0
        self.snapshot_installs = 0
        self.pending_writes: dict[int, list[Client]] = {}
        self.pending_locks: dict[int, list[LockClient]] = {}
        self.pending_reads: dict[bytes, Client] = {}
        self.reads_waiting: list[tuple[int, Client]] = []
        self.inflight: Ready | None = None  # taken from the core, not yet persisted
        # This replica's clock for lock TTLs: local time = offset + rate * tick.
        self.rate, self.offset = sim.clock_rate(), sim.rng.uniform(0.0, 1000.0)
        # Ground truth for the lock monitor, for this life of the replica: the term it
        # leads and the tick its core became leader; the tick each lock state (key,
        # token, refreshed_index) appeared in its state machine, with that state's TTL.
        self.lead_term = 0
        self.lead_since = 0
        self.lock_since: dict[tuple[bytes, int, int], tuple[int, int]] = {}

    @property
    def alive(self) -> bool:
        return self.node is not None

    def clock(self) -> float:
        """This replica's own (skewed) clock, in the units of a lock's TTL."""
        return self.offset + self.rate * self.sim.now

    def _rng(self) -> random.Random:
        self.incarnation += 1
        return random.Random(self.sim.rng.getrandbits(64))

    def _new_life(self) -> StateMachine:
        self.locks = SimLockService(self)
        self.lead_term = 0
        self.lock_since = {}
        return StateMachine(MemoryStorage(), session_expiry_entries=self.sim.session_expiry)

    def boot(self, voters: tuple[str, ...] | None) -> None:
        """First start: a bootstrapping member (voters given) or an empty joiner."""
        cfg = self.sim.raft_config
        if voters is None:
            self.node = RaftNode(self.id, cfg, self._rng())
        else:
            self.node = RaftNode.bootstrap(self.id, voters, cfg, self._rng())
        self.sm = self._new_life()
        self.seen_commit = 0

    def restart(self) -> None:
        d = self.disk
        snap = d.snapshot if d.snapshot.meta.index else None
        self.node = RaftNode(
            self.id,
            self.sim.raft_config,
            self._rng(),
            hard_state=d.hard_state,
            snapshot=snap,
            entries=list(d.entries),
        )
        sm = self._new_life()
        self.sm = sm
        if snap is not None:
            sm.restore_chunks((snap.data,), snap.meta.index)
            self._locks_restored()
        self.seen_commit = d.snapshot.meta.index

    def crash(self) -> None:
        self.node = None
        self.inflight = None
        self.sm = None
        self.locks = None
        self.sim.workload.on_crash(self)
        self.sim.lock_workload.on_crash(self)

    def propose_internal(self, op: Op) -> bool:
        """Propose the leader's own command (no session); False if the core refused."""
        node, sim = self.node, self.sim
        assert node is not None
        sim.lock_monitor.on_internal_attempt(self, op)
        try:
            node.propose(encode_command(Command(None, 0, 0, op)))
        except NotLeader:
            return False
        sim.monitor.observe(self)
        sim.lock_monitor.on_internal_proposal(self, op)
        return True

    def _locks_restored(self) -> None:
        sm = self.sm
        assert sm is not None
        now = self.sim.now
        for lock in sm.locks():
            self.lock_since.setdefault((lock.key, lock.token, lock.refreshed_index), (now, lock.ttl_ms))

    def begin_ready(self) -> None:
        """Take a Ready and send what may go before the persist (a leader's messages)."""
        node, sim = self.node, self.sim
        assert node is not None and self.inflight is None
        rd = node.ready()
        sim.monitor.on_ready(self, rd)
        sim.net.send_all(rd.messages, sim.now)
        self.inflight = rd

    def finish_ready(self) -> None:
        """Persist, send the rest, apply and advance; a crash can strike between steps."""
        node, sm, sim, rd = self.node, self.sm, self.sim, self.inflight
        assert node is not None and sm is not None and rd is not None
        crash_at = sim.ready_crash_point()
        if crash_at == 0:
            sim.event(f"{self.id} crashes before persisting a Ready ({len(rd.entries)} entries)")
            sim.crash(self)
            return
        self.disk.persist(rd)
        if crash_at == 1:
            sim.event(f"{self.id} crashes after persisting, before sending")
            sim.crash(self)
            return
        sim.net.send_all(rd.persisted_messages, sim.now)
        workload, lock_workload = sim.workload, sim.lock_workload
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            if meta.index <= sm.applied_index:
                raise RaftInvariantError(f"{self.id}: snapshot {meta.index} at or below applied {sm.applied_index}")
            sm.restore_chunks((rd.snapshot.data,), meta.index)
            self._locks_restored()
            self.snapshot_installs += 1
            sim.stats_snapshot_installs += 1
            workload.on_snapshot(self, meta.index)
            lock_workload.on_snapshot(self, meta.index)
        entries = rd.committed_entries
        if entries:
            self._apply(entries)
        for rs in rd.read_states:
            workload.on_read_state(self, rs)
        soft = rd.soft_state
        if soft is not None and self.locks is not None:
            if soft.role is LEADER:
                self.locks.become_leader(soft.term)
            elif self.locks.active:
                self.locks.become_follower()
        if crash_at == 2:
            sim.event(f"{self.id} crashes after applying, before advance")
            sim.crash(self)
            return
        self.inflight = None
        node.advance()
        sim.monitor.observe(self)
        workload.serve_reads(self)
        if sm.applied_index - node.snapshot_meta.index >= sim.compact_every:
            data = b"".join(sm.snapshot_chunks())
            meta = node.compact(sm.applied_index, data)
            self.disk.compact(meta, data)
            sim.stats_compactions += 1

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        """Apply committed entries in one state machine batch, then report each result."""
        sm, sim, service = self.sm, self.sim, self.locks
        assert sm is not None and service is not None
        results = {a.index: a.result for a in sm.apply(entries)}
        monitor, workload, lock_workload = sim.monitor, sim.workload, sim.lock_workload
        now = sim.now
        for e in entries:
            result = results.get(e.index)
            monitor.on_apply(self, e, result)
            kind = type(result)
            if kind is Granted:
                # An acquire's token is its own index; otherwise a refresh (or a retry's
                # cached answer, whose state never exists: harmless).
                token = result.token  # type: ignore[union-attr]
                version = (result.key, token, token if token == e.index else e.index)  # type: ignore[union-attr]
                self.lock_since.setdefault(version, (now, result.ttl_ms))  # type: ignore[union-attr]
                service.on_result(result, e.index)  # type: ignore[arg-type]
            elif kind is Released:
                service.on_result(result, e.index)  # type: ignore[arg-type]
            if self.pending_writes:
                workload.on_apply(self, e, result)
            if self.pending_locks:
                lock_workload.on_apply(self, e, result)
