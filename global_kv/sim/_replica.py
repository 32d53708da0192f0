"""One simulated server: the production replica on a simulated disk, network and clock.

The replica is `global_kv.replica.GlobalReplica`, the very code the actor shell
drives; this module is only its driver, as `LeaderActor`/`GlobalActor` are in
production: it hands the replica its inputs (Raft messages, client requests, ticks,
persisted Readies, owners' DOWNs, the lock check period) and carries out its effects on
simulated I/O. The disk keeps exactly what a Ready asked to persist and nothing else,
so a crash loses precisely what a real crash would: a Ready handed out but not yet
persisted is gone. `begin_ready` / `finish_ready` follow the Ready contract (send
leader messages -> persist -> send persisted messages -> `persisted`); a slow disk
leaves the Ready unfinished for a while (the core keeps receiving messages meanwhile),
and a crash can strike between any two of those steps, or before the replies of an
applied Ready go out.

The state machine is the real `StateMachine` on a `MemoryStorage` (volatile like the
rest of the replica's memory: a restart restores the disk's snapshot and replays the
log). Each replica has its own clock for lock TTLs and waiter deadlines, running at a
per-seed skewed rate (one tick is one millisecond on it; Raft ticks are not skewed:
lease reads assume a bounded tick drift, see `RaftConfig.lease_reads`). Lock owners'
monitors are the simulator's ground truth: a monitored owner that died, or whose link
to this replica is cut, is reported DOWN at the next tick. Nothing here does real I/O.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ergo_py.ids import PID

from .._errors import RaftInvariantError
from ..raft import Entry, HardState, RaftNode, Ready, Role, Snapshot, SnapshotMeta
from ..replica import (
    AppliedEntries,
    Demonitor,
    Forward,
    GlobalReplica,
    Monitor,
    Notify,
    Proposing,
    Reply,
    RoleChanged,
)
from ..state import Granted, LeaseGrantedResult, StateMachine

# The engine module itself: the storage package also exports the disk engines.
from ..storage._memory import MemoryStorage

if TYPE_CHECKING:
    from ._simulation import Simulation

__all__ = ["TICK_SECONDS", "SimDisk", "SimHost", "SimReplica"]

LEADER = Role.LEADER
TICK_SECONDS = 0.001  # a tick on a replica's clock (before its skew): TTLs are in ticks


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


class SimHost:
    """A replica's questions about its runtime, answered from the simulator's ground truth."""

    __slots__ = ("replica_id", "sim")

    def __init__(self, sim: Simulation, replica_id: str) -> None:
        self.sim = sim
        self.replica_id = replica_id

    def is_connected(self, node: str) -> bool:
        return self.sim.lock_workload.linked(node, self.replica_id)

    def can_reach(self, node: str) -> bool:
        return self.sim.lock_workload.dialable(node, self.replica_id)

    def is_gone(self, owner: Any) -> bool:
        return False  # no lock owner runs on a replica's own node here

    def leader_hint(self, raft_id: str | None) -> str | None:
        return raft_id


class SimReplica:
    """A server that can crash (losing memory, keeping its disk) and restart."""

    def __init__(self, sim: Simulation, node_id: str) -> None:
        self.sim = sim
        self.id = node_id
        self.disk = SimDisk()
        self.replica: GlobalReplica | None = None
        self.retired = False
        self.incarnation = 0
        self.seen_commit = 0
        self.inflight: Ready | None = None  # taken from the core, not yet persisted
        self.monitored: set[PID] = set()  # lock owners the replica asked to monitor
        self.host = SimHost(sim, node_id)
        # This replica's clock: local time = (offset + rate * tick) ms.
        self.rate, self.offset = sim.clock_rate(), sim.rng.uniform(0.0, 1000.0)
        # Ground truth for the lock monitor, for this life of the replica: the term its
        # core leads and the tick it became leader; the tick its lock service learned it
        # leads; the tick each lock state (key, token, refreshed_index) appeared in its
        # state machine, with that state's TTL.
        self.lead_term = 0
        self.lead_since = 0
        self.service_since = 0
        self.lock_since: dict[tuple[bytes, int, int], tuple[int, int]] = {}
        # The tick each lease state (id, refreshed_index) appeared in its state machine, and its TTL.
        self.lease_since: dict[tuple[int, int], tuple[int, int]] = {}

    @property
    def node(self) -> RaftNode | None:
        return self.replica.raft if self.replica is not None else None

    @property
    def sm(self) -> StateMachine | None:
        return self.replica.sm if self.replica is not None else None

    def clock(self) -> float:
        """This replica's own (skewed) clock, in seconds."""
        return (self.offset + self.rate * self.sim.now) * TICK_SECONDS

    def _rng(self) -> random.Random:
        self.incarnation += 1
        return random.Random(self.sim.rng.getrandbits(64))

    def _new_life(self, raft: RaftNode, replay_upto: int) -> None:
        sim = self.sim
        sm = StateMachine(MemoryStorage(), session_expiry_entries=sim.session_expiry)
        self.replica = GlobalReplica(raft, sm, sim.replica_options, self.host, replay_upto=replay_upto)
        self.lead_term = 0
        self.service_since = 0
        self.lock_since = {}
        self.lease_since = {}
        self.monitored = set()

    def boot(self, voters: tuple[str, ...] | None) -> None:
        """First start: a bootstrapping member (voters given) or an empty joiner."""
        cfg = self.sim.raft_config
        if voters is None:
            raft = RaftNode(self.id, cfg, self._rng())
        else:
            raft = RaftNode.bootstrap(self.id, voters, cfg, self._rng())
        self._new_life(raft, 0)
        self.seen_commit = 0

    def restart(self) -> None:
        d = self.disk
        snap = d.snapshot if d.snapshot.meta.index else None
        raft = RaftNode(
            self.id,
            self.sim.raft_config,
            self._rng(),
            hard_state=d.hard_state,
            snapshot=snap,
            entries=list(d.entries),
        )
        self._new_life(raft, d.hard_state.commit)
        if snap is not None:
            self.sm.restore(snap)  # type: ignore[union-attr]
            self._locks_restored()
        self.seen_commit = d.snapshot.meta.index

    def crash(self) -> None:
        self.replica = None
        self.inflight = None
        self.monitored = set()
        self.sim.workload.on_crash(self)
        self.sim.lock_workload.on_crash(self)
        self.sim.watch_workload.on_crash(self)

    # -- inputs ------------------------------------------------------------------------------
    def request(self, caller: Any, ref: Any, request: Any, hops: int = 0) -> None:
        """A client's (or a forwarding member's) request arrives."""
        replica = self.replica
        assert replica is not None
        if not replica.request(caller, ref, request, self.clock(), hops):
            raise RaftInvariantError(f"the simulator sent {request!r}, which only a shell serves")
        self.run_effects()

    def check(self) -> None:
        """The lock check period (every tick): DOWNs of monitored owners first."""
        replica, sim = self.replica, self.sim
        assert replica is not None
        if self.monitored:
            for owner in sorted(self.monitored, key=repr):
                if sim.owner_down(owner, self.id):
                    self.monitored.discard(owner)
                    replica.owner_down(owner, sim.owner_alive(owner), self.clock())
        replica.check(self.clock())
        self.run_effects()

    def run_effects(self) -> None:
        replica, sim = self.replica, self.sim
        if replica is None:
            return
        for effect in replica.take_effects():
            kind = type(effect)
            if kind is Reply:
                sim.deliver_reply(self, effect)  # type: ignore[arg-type]
            elif kind is AppliedEntries:
                self._applied(effect)  # type: ignore[arg-type]
            elif kind is Forward:
                sim.forward(self, effect)  # type: ignore[arg-type]
            elif kind is Monitor:
                self.monitored.add(effect.owner)  # type: ignore[union-attr]
            elif kind is Demonitor:
                self.monitored.discard(effect.owner)  # type: ignore[union-attr]
            elif kind is Notify:
                sim.watch_workload.on_notify(self, effect.to, effect.message)  # type: ignore[union-attr]
            elif kind is Proposing:
                sim.lock_monitor.on_internal_attempt(self, effect.op, effect.term)  # type: ignore[union-attr]
                sim.lock_monitor.on_internal_proposal(self, effect.op)  # type: ignore[union-attr]
                sim.lease_workload.on_expiry_proposed(self, effect.op)  # type: ignore[union-attr]
            elif kind is RoleChanged and effect.soft.role is LEADER:  # type: ignore[union-attr]
                self.service_since = sim.now

    def _locks_restored(self) -> None:
        sm = self.sm
        assert sm is not None
        now = self.sim.now
        for lock in sm.locks():
            self.lock_since.setdefault((lock.key, lock.token, lock.refreshed_index), (now, lock.ttl_ms))
        for lease in sm.leases():
            self.lease_since.setdefault((lease.id, lease.refreshed_index), (now, lease.ttl_ms))

    # -- the Ready loop ------------------------------------------------------------------------
    def begin_ready(self) -> bool:
        """Take a Ready (proposing what was batched) and send what may go before the persist
        (a leader's messages). False if there was none."""
        replica, sim = self.replica, self.sim
        assert replica is not None and self.inflight is None
        rd = replica.ready(self.clock())
        self.run_effects()  # answers to what it could not propose
        if rd is None:
            return False
        sim.monitor.on_ready(self, rd)
        sim.net.send_all(rd.messages, sim.now)
        self.inflight = rd
        return True

    def finish_ready(self) -> None:
        """Persist, send the rest, let the replica apply and advance, carry out its effects;
        a crash can strike between steps."""
        replica, sim, rd = self.replica, self.sim, self.inflight
        assert replica is not None and rd is not None
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
        sm = replica.sm
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            if meta.index <= sm.applied_index:
                raise RaftInvariantError(f"{self.id}: snapshot {meta.index} at or below applied {sm.applied_index}")
        self.inflight = None
        replica.persisted(rd, self.clock())
        if rd.snapshot is not None:
            self._locks_restored()
            sim.stats_snapshot_installs += 1
        if crash_at == 2:
            sim.event(f"{self.id} crashes after applying, before its replies went out")
            sim.crash(self)
            return
        sim.monitor.observe(self)
        self.run_effects()
        if replica.snapshot_due():
            index, chunks = sm.snapshot()
            data = b"".join(chunks)
            compacted = replica.compact(index, data)
            if compacted is not None:
                self.disk.compact(compacted, data)
                sim.stats_compactions += 1

    def _applied(self, done: AppliedEntries) -> None:
        """Report each applied entry and its result to the monitors."""
        sim = self.sim
        results = {a.index: a.result for a in done.results}
        monitor = sim.monitor
        now = sim.now
        for e in done.entries:
            result = results.get(e.index)
            monitor.on_apply(self, e, result)
            if type(result) is Granted:
                # An acquire's token is its own index; otherwise a refresh (or a retry's
                # cached answer, whose state never exists: harmless).
                token = result.token
                version = (result.key, token, token if token == e.index else e.index)
                self.lock_since.setdefault(version, (now, result.ttl_ms))
            elif type(result) is LeaseGrantedResult:
                lease = self.sm.lease(result.lease_id) if self.sm is not None else None
                if lease is not None and lease.refreshed_index == e.index:
                    self.lease_since.setdefault((lease.id, e.index), (now, lease.ttl_ms))
