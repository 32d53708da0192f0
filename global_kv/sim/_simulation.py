"""The deterministic Raft simulator: one seed, one reproducible run.

A seed fixes everything: cluster size, Raft configuration, fault rates, the fault
schedule, the clients' operations and every replica's election jitter. A run has three
phases:

1. chaos: message loss (up to 30 %), duplication, delays (hence reordering),
   partitions (random splits, an isolated leader, one-way links), crashes and restarts
   (also between a Ready and its persist), membership changes, leadership transfers,
   compactions (so lagging replicas need InstallSnapshot), while clients run;
2. heal: the network is repaired (no loss, short delays: Raft's timing requirement
   holds again), every crashed member restarts; a stable leader (every live member
   follows it) must appear within a bounded number of ticks;
3. drain: no new operations; every write still pending must resolve, every member must
   apply everything the leader committed, and all state machines must be equal.

Safety is checked after every step (`_monitor.py`); the client history is checked for
linearizability at the end. Any failure raises `SimulationFailure` with the seed and a
one-line replay command. Nothing here touches a clock, a socket or a disk.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .._errors import (
    ConfChangeRejected,
    NotLeader,
    RaftInvariantError,
    SimulationFailure,
    TransferRejected,
)
from ..checker import check_operations, kv_model
from ..raft import ConfChange, ConfChangeType, RaftConfig, Role
from ._kv import encode_command
from ._monitor import SafetyMonitor
from ._network import SimNetwork
from ._replica import SimReplica
from ._workload import Workload

__all__ = ["SimResult", "Simulation", "replay_command", "run_seed"]

LEADER = Role.LEADER

CHAOS_TICKS = 250
HEAL_LEADER_TICKS = 400
DRAIN_TICKS = 500
MAX_MEMBERS = 7
MIN_VOTERS = 3


def replay_command(seed: int, nodes: int | None = None) -> str:
    return (
        f"python -m global_kv.sim --seed {seed}"
        + (f" --nodes {nodes}" if nodes else "")
        + " -v"
    )


@dataclass(frozen=True, slots=True)
class SimResult:
    """What one seed did (for the CLI's summary and for tests)."""

    seed: int
    nodes: int
    ticks: int
    ops: int
    unknown_ops: int
    lost_retries: int
    leaders: int
    crashes: int
    conf_changes: int
    transfers: int
    compactions: int
    snapshot_installs: int
    messages: int
    dropped: int
    lease_reads: bool


class Simulation:
    """One seeded run; `run()` returns a `SimResult` or raises `SimulationFailure`."""

    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        verbose: bool = False,
        chaos_ticks: int = CHAOS_TICKS,
        check_timeout: float = 30.0,
    ) -> None:
        self.seed = seed
        self.requested_nodes = nodes
        self.verbose = verbose
        self.chaos_ticks = chaos_ticks
        self.check_timeout = check_timeout
        self.rng = rng = random.Random(seed)
        n = nodes if nodes is not None else rng.choice((3, 3, 4, 5, 5, 6, 7))
        if not MIN_VOTERS <= n <= MAX_MEMBERS:
            raise ValueError(f"nodes must be in [{MIN_VOTERS}, {MAX_MEMBERS}], got {n}")
        self.n_nodes = n
        election_min = rng.randint(8, 12)
        check_quorum = rng.random() < 0.7
        self.raft_config = RaftConfig(
            heartbeat_tick=2,
            election_tick_min=election_min,
            election_tick_max=election_min * 2,
            max_entries_per_msg=rng.choice((1, 4, 100)),
            max_bytes_per_msg=rng.choice((64, 1 << 20)),
            max_inflight_msgs=rng.choice((1, 3, 10)),
            pre_vote=rng.random() < 0.8,
            check_quorum=check_quorum,
            lease_reads=check_quorum and rng.random() < 0.4,
            snapshot_chunk_size=rng.choice((16, 64, 4096)),
        )
        self.compact_every = rng.choice((3, 6, 12, 25, 10**9))
        # Faults come in episodes (a partition, a crash...) that end by themselves, at
        # a per-seed rate, so runs alternate between trouble and progress.
        self.p_episode = rng.uniform(0.01, 0.06)
        self.max_episodes = rng.choice((1, 2, 3))
        self.p_ready_crash = rng.choice((0.0, 0.0005, 0.002, 0.005))
        self.p_slow_disk = rng.choice((0.0, 0.2, 0.5))
        self.p_conf = rng.choice((0.0, 0.01, 0.03, 0.08))
        self.p_transfer = rng.uniform(0.0, 0.02)
        self._episodes: list[tuple[int, str, set[tuple[str, str]]]] = []
        self._restart_at: dict[str, int] = {}
        self.net = SimNetwork(
            random.Random(rng.getrandbits(64)),
            loss=rng.uniform(0.0, 0.3),
            dup=rng.uniform(0.0, 0.1),
            max_delay=rng.randint(1, 6),
        )
        self.monitor = SafetyMonitor(self)
        self.workload = Workload(
            self, random.Random(rng.getrandbits(64)), clients=rng.randint(2, 6), keys=3
        )
        self.now = 0
        self._clock = 0
        self.chaos = True
        self.replicas: dict[str, SimReplica] = {}
        self.next_id = n
        self._to_retire: list[str] = []
        self.events: deque[str] = deque(maxlen=40)
        self.stats_crashes = 0
        self.stats_conf_changes = 0
        self.stats_transfers = 0
        self.stats_compactions = 0
        self.stats_snapshot_installs = 0
        voters = tuple(f"n{i}" for i in range(n))
        for v in voters:
            r = SimReplica(self, v)
            self.replicas[v] = r
            r.boot(voters)

    # --- helpers used by replicas and the workload ------------------------------------

    def clock(self) -> float:
        """A strictly increasing timestamp for the history (event order is real-time order)."""
        self._clock += 1
        return float(self._clock)

    def event(self, text: str) -> None:
        line = f"[{self.now:4d}] {text}"
        self.events.append(line)
        if self.verbose:
            print(line)

    def live_replicas(self) -> list[SimReplica]:
        return [
            r for r in self.replicas.values() if r.node is not None and not r.retired
        ]

    def live_ids(self) -> list[str]:
        return [r.id for r in self.live_replicas()]

    def leader(self) -> SimReplica | None:
        """The live replica that leads the highest term (a deposed leader may still think it leads)."""
        best: SimReplica | None = None
        best_term = -1
        for r in self.live_replicas():
            node = r.node
            if node is not None and node.role is LEADER and node.term > best_term:
                best, best_term = r, node.term
        return best

    def ready_crash_point(self) -> int | None:
        if self.chaos and self.p_ready_crash and self.rng.random() < self.p_ready_crash:
            return self.rng.randint(0, 2)
        return None

    def crash(self, r: SimReplica, downtime: int | None = None) -> None:
        r.crash()
        self.stats_crashes += 1
        self._restart_at[r.id] = self.now + (
            downtime if downtime is not None else self.rng.randint(1, 60)
        )

    def retire(self, node_id: str) -> None:
        """A committed removal: stop that server for good (after the current step)."""
        self._to_retire.append(node_id)

    # --- running --------------------------------------------------------------------------

    def run(self) -> SimResult:
        try:
            self._run_chaos()
            self._run_heal()
            self._check_history()
        except RaftInvariantError as exc:
            self._fail("safety", str(exc), exc)
        except SimulationFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any bug still gets the seed and replay command
            self._fail("crash", f"{type(exc).__name__}: {exc}", exc)
        wl = self.workload
        return SimResult(
            seed=self.seed,
            nodes=self.n_nodes,
            ticks=self.now,
            ops=len(wl.history),
            unknown_ops=wl.unknown,
            lost_retries=wl.lost_retries,
            leaders=len(self.monitor.leaders),
            crashes=self.stats_crashes,
            conf_changes=self.stats_conf_changes,
            transfers=self.stats_transfers,
            compactions=self.stats_compactions,
            snapshot_installs=self.stats_snapshot_installs,
            messages=self.net.sent,
            dropped=self.net.dropped,
            lease_reads=self.raft_config.lease_reads,
        )

    def _fail(self, kind: str, detail: str, cause: BaseException | None = None) -> None:
        context = "\n".join(self.events)
        raise SimulationFailure(
            self.seed,
            self.now,
            kind,
            f"{detail}\n  last events:\n{context}",
            replay_command(self.seed, self.requested_nodes),
        ) from cause

    def _run_chaos(self) -> None:
        for _ in range(self.chaos_ticks):
            self._tick()

    def _tick(self) -> None:
        self.now += 1
        rng = self.rng
        monitor = self.monitor
        if self.chaos:
            self._faults()
        live = self.live_replicas()
        rng.shuffle(live)
        for r in live:
            r.node.tick()  # type: ignore[union-attr]
            monitor.observe(r)
        replicas = self.replicas
        for m in self.net.pop_due(self.now):
            target = replicas.get(m.dst)
            if target is None or target.node is None or target.retired:
                continue
            target.node.step(m)
            monitor.observe(target)
            if rng.random() < 0.25:
                self._drain(target)
        self.workload.tick()
        for r in self.live_replicas():
            self._drain(r)
        self._retire_pending()

    def _drain(self, r: SimReplica) -> None:
        for _ in range(16):
            if r.inflight is not None:
                if self.p_slow_disk and self.rng.random() < self.p_slow_disk:
                    return  # the disk is busy: persist later, keep receiving meanwhile
                r.finish_ready()
            node = r.node
            if node is None or not node.has_ready():
                return
            r.begin_ready()

    def _retire_pending(self) -> None:
        while self._to_retire:
            r = self.replicas.get(self._to_retire.pop())
            if r is not None and not r.retired:
                self.event(f"{r.id} retired (its removal committed)")
                r.retired = True
                if r.node is not None:
                    r.crash()

    # --- faults ------------------------------------------------------------------------------

    def _faults(self) -> None:
        rng = self.rng
        now = self.now
        if self._episodes and any(end <= now for end, _, _ in self._episodes):
            for end, what, _ in self._episodes:
                if end <= now:
                    self.event(f"over: {what}")
            self._episodes = [ep for ep in self._episodes if ep[0] > now]
            self._apply_blocks()
        for rid, at in list(self._restart_at.items()):
            r = self.replicas[rid]
            if at <= now:
                del self._restart_at[rid]
                if r.node is None and not r.retired:
                    self.event(f"{rid} restarts")
                    r.restart()
                    self.monitor.observe(r)
        if len(self._episodes) < self.max_episodes and rng.random() < self.p_episode:
            self._start_episode()
        if rng.random() < self.p_conf:
            self._membership_change()
        if rng.random() < self.p_transfer:
            self._transfer()

    def _apply_blocks(self) -> None:
        blocked: set[tuple[str, str]] = set()
        for _, _, links in self._episodes:
            blocked |= links
        self.net.blocked = blocked

    def _start_episode(self) -> None:
        rng = self.rng
        ids = [r.id for r in self.replicas.values() if not r.retired]
        leader = self.leader()
        kind = rng.choice(
            (
                "isolate_leader",
                "isolate_leader",
                "split",
                "one_way",
                "crash_leader",
                "crash",
            )
        )
        duration = rng.randint(5, 80)
        links: set[tuple[str, str]] = set()
        if kind in ("crash_leader", "crash"):
            victim = leader if kind == "crash_leader" else None
            if victim is None:
                live = self.live_replicas()
                if not live:
                    return
                victim = rng.choice(live)
            self.event(f"{victim.id} crashes (down {duration} ticks)")
            self.crash(victim, downtime=duration)
            return
        if len(ids) < 2:
            return
        if kind == "isolate_leader":
            target = leader.id if leader is not None else rng.choice(ids)
            links = {(target, o) for o in ids if o != target} | {
                (o, target) for o in ids if o != target
            }
            what = f"{target} isolated"
        elif kind == "split":
            rng.shuffle(ids)
            k = rng.randint(1, len(ids) - 1)
            a, b = sorted(ids[:k]), sorted(ids[k:])
            links = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            what = f"partition {a} | {b}"
        else:
            for _ in range(rng.randint(1, 3)):
                x, y = rng.sample(ids, 2)
                links.add((x, y))
            what = "one-way links " + ", ".join(f"{x}->{y}" for x, y in sorted(links))
        self.event(f"{what} for {duration} ticks")
        self._episodes.append((self.now + duration, what, links))
        self._apply_blocks()

    def _membership_change(self) -> None:
        leader = self.leader()
        if leader is None or leader.node is None:
            return
        rng = self.rng
        node = leader.node
        conf = node.conf
        voters, learners = conf.voters, conf.learners
        roll = rng.random()
        new_id = None
        if learners and roll < 0.4:
            change = ConfChange(ConfChangeType.ADD_VOTER, rng.choice(learners))
        elif len(voters) + len(learners) < MAX_MEMBERS and roll < 0.7:
            new_id = f"n{self.next_id}"
            kind = (
                ConfChangeType.ADD_LEARNER
                if rng.random() < 0.3
                else ConfChangeType.ADD_VOTER
            )
            change = ConfChange(kind, new_id)
        elif len(voters) > MIN_VOTERS:
            change = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(voters))
        elif learners:
            change = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(learners))
        else:
            return
        try:
            index = node.propose_conf_change(change)
        except (ConfChangeRejected, NotLeader):
            return
        if change.type == ConfChangeType.REMOVE_NODE:
            self.monitor.removals[(index, node.term)] = change.node_id
        self.monitor.observe(leader)
        self.stats_conf_changes += 1
        self.event(
            f"{leader.id} proposes {change.type.name} {change.node_id} at {index}"
        )
        if new_id is not None:
            self.next_id += 1
            r = SimReplica(self, new_id)
            self.replicas[new_id] = r
            r.boot(None)

    def _transfer(self) -> None:
        leader = self.leader()
        if leader is None or leader.node is None:
            return
        others = [v for v in leader.node.conf.voters if v != leader.id]
        if not others:
            return
        target = self.rng.choice(others)
        try:
            leader.node.transfer_leadership(target)
        except (TransferRejected, NotLeader):
            return
        self.monitor.observe(leader)
        self.stats_transfers += 1
        self.event(f"{leader.id} transfers leadership to {target}")

    # --- heal and drain ----------------------------------------------------------------------

    def _members_of(self, leader: SimReplica) -> list[SimReplica]:
        assert leader.node is not None
        conf = leader.node.conf
        return [
            self.replicas[m] for m in conf.voters + conf.learners if m in self.replicas
        ]

    def _stable_leader(self) -> SimReplica | None:
        """A leader that every member of its configuration is alive and following."""
        leader = self.leader()
        if leader is None or leader.node is None:
            return None
        term = leader.node.term
        for r in self._members_of(leader):
            node = r.node
            if (
                node is None
                or r.retired
                or node.term != term
                or node.leader != leader.id
            ):
                return None
        return leader

    def _run_heal(self) -> None:
        self.chaos = False
        self.event("heal: network repaired, crashed members restart")
        net = self.net
        net.heal()
        net.loss = 0.0
        net.dup = 0.0
        # Raft is live only when broadcast time << election timeout (§5.6): the chaos may
        # break that on purpose, healing restores it (delays and disk stalls stay, smaller).
        net.max_delay = min(
            net.max_delay, max(1, self.raft_config.election_tick_min // 4)
        )
        self.p_slow_disk = min(self.p_slow_disk, 0.2)
        for r in self.replicas.values():
            if r.node is None and not r.retired:
                r.restart()
                self.monitor.observe(r)
        start = self.now
        while self._stable_leader() is None:
            if self.now - start >= HEAL_LEADER_TICKS:
                self._fail(
                    "liveness",
                    f"no stable leader {HEAL_LEADER_TICKS} ticks after healing: {self._describe()}",
                )
            self._tick()
        self.event(f"stable leader after {self.now - start} ticks of healing")
        # Drain: no new operations; pending writes must resolve (no timeouts for them).
        wl = self.workload
        wl.accepting = False
        wl.write_timeout = 10**9
        for c in wl.clients:
            if c.state != 0 and c.op and c.op[0] != "get":
                c.deadline = 10**9
        start = self.now
        barrier = None
        while True:
            leader = self._stable_leader()
            if leader is not None and leader.node is not None:
                self._abandon_non_members(leader)
                if barrier is None or leader.node.entry_term(barrier[0]) != barrier[1]:
                    # None yet, or overwritten by a later leader: (re)propose it.
                    barrier = self._propose_barrier(leader)
                elif self._converged(leader, barrier[0]) and not wl.busy():
                    break
            if self.now - start >= DRAIN_TICKS:
                pending = [
                    (c.cid, c.op, c.state, c.index) for c in wl.clients if c.state != 0
                ]
                self._fail(
                    "liveness",
                    f"not converged {DRAIN_TICKS} ticks into the drain (barrier {barrier}, "
                    f"pending clients {pending}): {self._describe()}",
                )
            self._tick()
        datas = {r.id: r.sm.data for r in self._members_of(leader) if r.sm is not None}
        first = next(iter(datas.values()))
        for data in datas.values():
            if data != first:
                self._fail("safety", f"state machines differ after the drain: {datas}")

    def _abandon_non_members(self, leader: SimReplica) -> None:
        """Writes pending on a server outside the configuration can never be decided there."""
        members = {r.id for r in self._members_of(leader)}
        for r in self.live_replicas():
            if r.id not in members and r.pending_writes:
                for waiting in r.pending_writes.values():
                    for c in waiting:
                        self.workload.give_up(c)
                r.pending_writes = {}

    def _propose_barrier(self, leader: SimReplica) -> tuple[int, int] | None:
        """No-op entries up to the highest pending index, so every pending write is decided.

        A write is known lost only when another entry commits at its index; if the log
        of the new leader is shorter than that index, it takes new entries to get there.
        """
        node = leader.node
        assert node is not None
        highest = max(
            (i for r in self.live_replicas() for i in r.pending_writes), default=0
        )
        count = max(1, highest - node.last_index)
        try:
            index = node.propose_batch([encode_command(0, ("barrier",))] * count)
        except NotLeader:
            return None  # e.g. a transfer started during the chaos is still running
        self.monitor.observe(leader)
        return index + count - 1, node.term

    def _converged(self, leader: SimReplica, barrier: int) -> bool:
        node = leader.node
        assert node is not None
        if node.commit_index < barrier or node.commit_index != node.last_index:
            return False
        target = node.commit_index
        for r in self._members_of(leader):
            if r.sm is None or r.sm.applied != target:
                return False
        return True

    def _describe(self) -> str:
        parts = []
        for r in self.replicas.values():
            if r.retired:
                parts.append(f"{r.id}: retired")
            elif r.node is None:
                parts.append(f"{r.id}: down")
            else:
                parts.append(repr(r.node))
        return "; ".join(parts)

    def _check_history(self) -> None:
        result = check_operations(
            kv_model(), self.workload.history, timeout=self.check_timeout
        )
        if result.ok is False:
            self._fail("linearizability", result.info)
        if result.ok is None:
            self._fail(
                "linearizability",
                f"checker gave up after {self.check_timeout}s: {result.info}",
            )


def run_seed(seed: int, nodes: int | None = None, verbose: bool = False) -> SimResult:
    """Run one seed; raises `SimulationFailure` (with a replay command) on any violation."""
    return Simulation(seed, nodes=nodes, verbose=verbose).run()
