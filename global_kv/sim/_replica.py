"""One simulated server: a Raft core, its simulated disk, and its KV state machine.

The disk keeps exactly what Ready asked to persist and nothing else, so a crash loses
precisely what a real crash would: a Ready handed out but not yet persisted is gone.
`begin_ready` / `finish_ready` follow the Ready contract (send leader messages ->
persist -> send persisted messages -> apply -> advance); a slow disk leaves the Ready
unfinished for a while (the core keeps receiving messages meanwhile), and a crash can
strike between any two of those steps.
Nothing here does real I/O.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .._errors import RaftInvariantError
from ..raft import Entry, HardState, RaftNode, Ready, Snapshot, SnapshotMeta
from ._kv import KVStateMachine

if TYPE_CHECKING:
    from ._simulation import Simulation
    from ._workload import Client

__all__ = ["SimDisk", "SimReplica"]


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
                raise RaftInvariantError(
                    f"persisted hard state going back: {old} -> {hs}"
                )
            if hs.term == old.term and old.vote is not None and hs.vote != old.vote:
                raise RaftInvariantError(
                    f"vote changed within term {hs.term}: {old.vote} -> {hs.vote}"
                )
            self.hard_state = hs

    def compact(self, meta: SnapshotMeta, data: bytes) -> None:
        drop = meta.index - self.snapshot.meta.index
        if not 0 < drop <= len(self.entries):
            raise RaftInvariantError(
                f"disk cannot compact at {meta.index}: entries missing"
            )
        del self.entries[:drop]
        self.snapshot = Snapshot(meta, data)


class SimReplica:
    """A server that can crash (losing memory, keeping its disk) and restart."""

    def __init__(self, sim: Simulation, node_id: str) -> None:
        self.sim = sim
        self.id = node_id
        self.disk = SimDisk()
        self.node: RaftNode | None = None
        self.sm: KVStateMachine | None = None
        self.retired = False
        self.incarnation = 0
        self.seen_commit = 0
        self.snapshot_installs = 0
        self.pending_writes: dict[int, list[Client]] = {}
        self.pending_reads: dict[bytes, Client] = {}
        self.reads_waiting: list[tuple[int, Client]] = []
        self.inflight: Ready | None = None  # taken from the core, not yet persisted

    @property
    def alive(self) -> bool:
        return self.node is not None

    def _rng(self) -> random.Random:
        self.incarnation += 1
        return random.Random(self.sim.rng.getrandbits(64))

    def boot(self, voters: tuple[str, ...] | None) -> None:
        """First start: a bootstrapping member (voters given) or an empty joiner."""
        cfg = self.sim.raft_config
        if voters is None:
            self.node = RaftNode(self.id, cfg, self._rng())
        else:
            self.node = RaftNode.bootstrap(self.id, voters, cfg, self._rng())
        self.sm = KVStateMachine()
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
        sm = KVStateMachine()
        if snap is not None:
            sm.restore(snap.data, snap.meta.index)
        self.sm = sm
        self.seen_commit = d.snapshot.meta.index

    def crash(self) -> None:
        self.node = None
        self.inflight = None
        self.sm = None
        self.sim.workload.on_crash(self)

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
            sim.event(
                f"{self.id} crashes before persisting a Ready ({len(rd.entries)} entries)"
            )
            sim.crash(self)
            return
        self.disk.persist(rd)
        if crash_at == 1:
            sim.event(f"{self.id} crashes after persisting, before sending")
            sim.crash(self)
            return
        sim.net.send_all(rd.persisted_messages, sim.now)
        workload = sim.workload
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            if meta.index <= sm.applied:
                raise RaftInvariantError(
                    f"{self.id}: snapshot {meta.index} at or below applied {sm.applied}"
                )
            sm.restore(rd.snapshot.data, meta.index)
            self.snapshot_installs += 1
            sim.stats_snapshot_installs += 1
            workload.on_snapshot(self, meta.index)
        for e in rd.committed_entries:
            result = sm.apply(e)
            sim.monitor.on_apply(self, e)
            workload.on_apply(self, e, result)
        for rs in rd.read_states:
            workload.on_read_state(self, rs)
        if crash_at == 2:
            sim.event(f"{self.id} crashes after applying, before advance")
            sim.crash(self)
            return
        self.inflight = None
        node.advance()
        sim.monitor.observe(self)
        workload.serve_reads(self)
        if sm.applied - node.snapshot_meta.index >= sim.compact_every:
            data = sm.snapshot()
            meta = node.compact(sm.applied, data)
            self.disk.compact(meta, data)
            sim.stats_compactions += 1
