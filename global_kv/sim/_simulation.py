"""The deterministic Raft simulator: one seed, one reproducible run.

A seed fixes everything: cluster size, Raft configuration, fault rates, the fault
schedule, the clients' operations and every replica's election jitter. A run has three
phases:

1. chaos: message loss (up to 30 %), duplication, delays (hence reordering),
   partitions (random splits, an isolated leader, one-way links), crashes and restarts
   (also between a Ready and its persist), membership changes, leadership transfers,
   compactions (so lagging replicas need InstallSnapshot), while KV clients and lock
   clients run; lock clients pause past their TTL, die, and get cut off (`_faults.py`,
   `_lock_clients.py`);
2. heal: the network is repaired (no loss, short delays: Raft's timing requirement
   holds again), every crashed member restarts, paused and dead clients come back; a
   stable leader (every live member follows it) must appear within a bounded number
   of ticks;
3. drain: no new operations; every request still pending must resolve, every lock must
   be released (by its holder, its TTL or its owner's death), every member must apply
   everything the leader committed, and all state machines must be equal.

Every server runs the production replica (`global_kv.replica.GlobalReplica`: the same
batching, read rounds, forwarding, lock queues, TTL timers and owner monitors as the
actor shell), driven here on simulated time, links and disks, and applying to the real
`global_kv.state.StateMachine`; clients send it protocol requests. Raft safety and state
machine determinism are checked after every step (`_monitor.py`), the lock invariants
as lock commands commit, grants are told and protected writes land (`_lock_monitor.py`),
and the KV history is checked for linearizability at the end. Any failure raises
`SimulationFailure` with the seed and a one-line replay command. Nothing here touches a
clock, a socket or a disk.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ergo_py.ids import PID

from .._errors import NotLeader, RaftInvariantError, SimulationFailure
from ..checker import check_operations, kv_model
from ..raft import RaftConfig, Role
from ..replica import Forward, ReplicaOptions, Reply
from ._commands import barrier_command
from ._faults import MAX_MEMBERS, MIN_VOTERS, FaultInjector
from ._lease_clients import LeaseWorkload
from ._lock_clients import LockWorkload
from ._lock_monitor import LockMonitor
from ._monitor import SafetyMonitor
from ._network import SimNetwork
from ._replica import TICK_SECONDS, SimReplica
from ._resource import Fence, TokenFence
from ._watch_clients import WatchWorkload
from ._workload import Workload

__all__ = ["SimResult", "Simulation", "replay_command", "run_seed"]

LEADER = Role.LEADER

CHAOS_TICKS = 250
HEAL_LEADER_TICKS = 400
DRAIN_TICKS = 500
QUIET_TICKS = 200  # how long a drained group with RaftConfig.quiesce may take to go quiet
STRAY_TICKS = 100  # how long a server may be in no leader's configuration in the drain


def replay_command(seed: int, nodes: int | None = None, lock_heavy: bool = False) -> str:
    return (
        f"python -m global_kv.sim --seed {seed}"
        + (f" --nodes {nodes}" if nodes else "")
        + (" --lock-heavy" if lock_heavy else "")
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
    transactions: int
    lease_grants: int
    lease_keepalives: int
    lease_expiries: int
    lease_owner_deaths: int
    watch_events: int
    watch_resumes: int
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
    quiet_ticks: int = 0
    lock_clients: int = 0
    lock_grants: int = 0
    lock_expiries: int = 0
    owner_releases: int = 0
    lock_refreshes: int = 0
    pauses: int = 0
    stale_holders: int = 0
    client_deaths: int = 0
    client_isolations: int = 0
    protected_writes: int = 0
    stale_writes_refused: int = 0
    overlapping_writes: int = 0
    max_clock_skew: float = 0.0


class Simulation:
    """One seeded run; `run()` returns a `SimResult` or raises `SimulationFailure`."""

    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        verbose: bool = False,
        chaos_ticks: int = CHAOS_TICKS,
        check_timeout: float = 30.0,
        fence_factory: Callable[[bytes], Fence] = TokenFence,
        lock_heavy: bool = False,
    ) -> None:
        """`lock_heavy`: four lock clients on one key, frequent pauses, maximal clock
        skew (the seed still decides everything else). `fence_factory` builds each
        protected resource's fence (any object with FencedResource's `check`)."""
        self.seed = seed
        self.lock_heavy = lock_heavy
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
            # Real snapshots are ~0.3-1.5 KB: many chunks, a few, or one.
            snapshot_chunk_size=rng.choice((96, 256, 4096)),
            # Half the seeds let idle groups go quiet (by a bit of the seed, so no seed's
            # random draws move); `peers_lost` is then their failure detector.
            quiesce=bool(seed & 2),
        )
        self.compact_every = rng.choice((3, 6, 12, 25, 10**9))
        # What every replica decides by (times on its clock, where a tick is 1 ms).
        tick_max = self.raft_config.election_tick_max
        self.replica_options = ReplicaOptions(
            expiry_retry=2 * tick_max * TICK_SECONDS,
            read_round_timeout=10 * tick_max * TICK_SECONDS,
            owner_grace_period=rng.choice((0, 20, 60)) * TICK_SECONDS,
            max_lock_waiters=rng.choice((1, 2, 1000)),
            snapshot_interval=self.compact_every,
            # Half the seeds snapshot by entries alone (more snapshots to install), half by
            # the production rule; by parity, so no seed's random draws move.
            snapshot_log_fraction=0.5 if seed % 2 else 0.0,
        )
        self.p_ready_crash = rng.choice((0.0, 0.0005, 0.002, 0.005))
        self.p_slow_disk = rng.choice((0.0, 0.2, 0.5))
        self.faults = FaultInjector(self)
        # Sessions idle for this many entries expire (the same on every replica).
        self.session_expiry = rng.choice((100_000, 100_000, 60))
        # Lock TTL clocks: each replica's runs at its own rate in [1/(1+s), 1+s].
        self.clock_skew = rng.choice((0.0, 0.1, 0.25))
        if lock_heavy:
            self.clock_skew = 0.25
        self.net = SimNetwork(
            random.Random(rng.getrandbits(64)),
            loss=rng.uniform(0.0, 0.3),
            dup=rng.uniform(0.0, 0.1),
            max_delay=rng.randint(1, 6),
        )
        self.monitor = SafetyMonitor(self)
        self.lock_monitor = LockMonitor(self)
        self.workload = Workload(self, random.Random(rng.getrandbits(64)), clients=rng.randint(2, 6), keys=4)
        self.lock_workload = LockWorkload(
            self,
            random.Random(rng.getrandbits(64)),
            clients=rng.choice((0, 2, 2, 3, 3, 4)),
            keys=rng.choice((1, 1, 2)),
            fence_factory=fence_factory,
            heavy=lock_heavy,
        )
        # Lease and watch clients in the ordinary seeds; the lock-heavy ones keep their draws.
        self.lease_workload = (
            LeaseWorkload(self, random.Random(0), clients=0)
            if lock_heavy
            else LeaseWorkload(self, random.Random(rng.getrandbits(64)), clients=rng.choice((0, 1, 2)))
        )
        self.watch_workload = (
            WatchWorkload(self, random.Random(0), clients=0)
            if lock_heavy
            else WatchWorkload(self, random.Random(rng.getrandbits(64)), clients=rng.choice((0, 1, 2)))
        )
        self.now = 0
        self._clock = 0
        self.chaos = True
        self.replicas: dict[str, SimReplica] = {}
        self.next_id = n
        self._to_retire: list[str] = []
        self._absent_since: dict[str, int] = {}  # server -> since when no leader has it (drain)
        self.events: deque[str] = deque(maxlen=40)
        self.stats_crashes = 0
        self.stats_quiet_ticks = 0  # replica-ticks with the core quiesced (RaftConfig.quiesce)
        self.stats_compactions = 0
        self.stats_snapshot_installs = 0
        self.forwards: list[tuple[int, str, Forward]] = []  # (due tick, to, request) between members
        self.stats_forwards = 0
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
        return [r for r in self.replicas.values() if r.node is not None and not r.retired]

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

    def clock_rate(self) -> float:
        """A new replica's lock-clock rate (drawn from the seed)."""
        s = self.clock_skew
        return self.rng.uniform(1 / (1 + s), 1 + s) if s else 1.0

    def deliver_reply(self, r: SimReplica, reply: Reply) -> None:
        """A replica answers a client (which hears it only over a link that is up)."""
        reply.caller.on_reply(r, reply.ref, reply.ok, reply.value)

    def forward(self, r: SimReplica, fwd: Forward) -> None:
        """A member hands a request to the leader it knows of (over the lossy network)."""
        if (r.id, fwd.leader_id) in self.net.blocked:
            # The shell answers NotLeader(None) when it has no link to the leader.
            self.deliver_reply(r, Reply(fwd.caller, fwd.ref, False, NotLeader(None)))
            return
        net = self.net
        if net.rng.random() < net.loss:
            return  # lost: the client retries after its timeout
        self.forwards.append((self.now + net.rng.randint(1, net.max_delay), fwd.leader_id, fwd))

    def _deliver_forwards(self) -> None:
        if not self.forwards:
            return
        due = [f for f in self.forwards if f[0] <= self.now]
        self.forwards = [f for f in self.forwards if f[0] > self.now]
        for _, to, fwd in due:
            target = self.replicas.get(to)
            if target is None or target.replica is None or target.retired:
                continue
            self.stats_forwards += 1
            fwd.caller.forwarded_to(target, fwd.ref)
            target.request(fwd.caller, fwd.ref, fwd.request, fwd.hops)

    def owner_down(self, owner: PID, replica_id: str) -> bool:
        """What a monitor of owner `owner` (of locks or leases) held by `replica_id` would report now."""
        if self.lease_workload.owns(owner):
            return not self.lease_workload.alive(owner)  # its node is always linked
        return self.lock_workload.owner_down(owner, replica_id)

    def owner_alive(self, owner: PID) -> bool:
        if self.lease_workload.owns(owner):
            return self.lease_workload.alive(owner)
        return self.lock_workload.alive(owner)

    def ready_crash_point(self) -> int | None:
        if self.chaos and self.p_ready_crash and self.rng.random() < self.p_ready_crash:
            return self.rng.randint(0, 2)
        return None

    def crash(self, r: SimReplica, downtime: int | None = None) -> None:
        self.stop(r)
        self.stats_crashes += 1
        self.faults.restart_at[r.id] = self.now + (downtime if downtime is not None else self.rng.randint(1, 60))

    def stop(self, r: SimReplica) -> None:
        """Crash `r`; the others' monitors of it fire (the shell's peer monitors)."""
        r.crash()
        for o in self.live_replicas():
            self.peer_lost(o, r.id)

    def peer_lost(self, r: SimReplica, peer: str) -> None:
        """`r`'s monitor of `peer` fired: it ended, or the link between them broke."""
        if r.replica is not None and not r.retired:
            r.replica.peer_down(peer)
            self.monitor.observe(r)

    def retire(self, node_id: str) -> None:
        """A committed removal: stop that server for good (after the current step)."""
        self._to_retire.append(node_id)

    # --- running --------------------------------------------------------------------------

    def run(self) -> SimResult:
        try:
            self._run_chaos()
            self._run_heal()
            self._check_history()
            self.lock_monitor.check_told_grants_ended()
            self.lease_workload.check_tables()
        except RaftInvariantError as exc:
            self._fail("safety", str(exc), exc)
        except SimulationFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any bug still gets the seed and replay command
            self._fail("crash", f"{type(exc).__name__}: {exc}", exc)
        wl, lw, lm = self.workload, self.lock_workload, self.lock_monitor
        rates = [r.rate for r in self.replicas.values()]
        return SimResult(
            seed=self.seed,
            nodes=self.n_nodes,
            ticks=self.now,
            ops=len(wl.history),
            unknown_ops=wl.unknown,
            transactions=sum(1 for op in wl.history if op.input[0] == "txn"),
            lease_grants=self.lease_workload.grants,
            lease_keepalives=self.lease_workload.keepalives,
            lease_expiries=self.lease_workload.expiries,
            lease_owner_deaths=self.lease_workload.owner_deaths,
            watch_events=self.watch_workload.events,
            watch_resumes=self.watch_workload.resumes,
            lost_retries=wl.lost_retries,
            leaders=len(self.monitor.leaders),
            crashes=self.stats_crashes,
            conf_changes=self.faults.stats_conf_changes,
            transfers=self.faults.stats_transfers,
            compactions=self.stats_compactions,
            snapshot_installs=self.stats_snapshot_installs,
            messages=self.net.sent,
            dropped=self.net.dropped,
            lease_reads=self.raft_config.lease_reads,
            quiet_ticks=self.stats_quiet_ticks,
            lock_clients=len(lw.clients),
            lock_grants=len(lm.grants),
            lock_expiries=lm.stats_expiries,
            owner_releases=lm.stats_owner_releases,
            lock_refreshes=lm.stats_refreshes,
            pauses=lw.stats_pauses,
            stale_holders=lw.stats_stale_holders,
            client_deaths=lw.stats_crashes,
            client_isolations=self.faults.stats_client_isolations,
            protected_writes=sum(st.accepted for st in lw.stores.values()),
            stale_writes_refused=sum(st.refused for st in lw.stores.values()),
            overlapping_writes=lm.stats_overlaps,
            max_clock_skew=max(rates) / min(rates),
        )

    def _fail(self, kind: str, detail: str, cause: BaseException | None = None) -> None:
        context = "\n".join(self.events)
        raise SimulationFailure(
            self.seed,
            self.now,
            kind,
            f"{detail}\n  last events:\n{context}",
            replay_command(self.seed, self.requested_nodes, self.lock_heavy),
        ) from cause

    def _run_chaos(self) -> None:
        for _ in range(self.chaos_ticks):
            self._tick()

    def _tick(self) -> None:
        self.now += 1
        rng = self.rng
        monitor = self.monitor
        if self.chaos:
            self.faults.step()
        live = self.live_replicas()
        rng.shuffle(live)
        for r in live:
            monitor.tick(r)
            monitor.observe(r)
            if r.node is not None and r.node.quiesced:
                self.stats_quiet_ticks += 1
        replicas = self.replicas
        for m in self.net.pop_due(self.now):
            target = replicas.get(m.dst)
            if target is None or target.replica is None or target.retired:
                continue
            target.replica.step(m)
            monitor.observe(target)
            sender = replicas.get(m.src)
            if sender is not None and (sender.replica is None or sender.retired):
                # A monitor's DOWN comes after the last message its process sent.
                self.peer_lost(target, m.src)
            if rng.random() < 0.25:
                self._drain(target)
        self._deliver_forwards()
        self.workload.tick()
        self.lock_workload.tick()
        self.lease_workload.tick()
        self.watch_workload.tick()
        for r in self.live_replicas():
            r.check()  # owners' DOWNs, then the lock timers, grace periods and waiters
            self.lock_monitor.check_leader_timers(r)
            self._drain(r)
        self._retire_pending()

    def _drain(self, r: SimReplica) -> None:
        for _ in range(16):
            if r.inflight is not None:
                if self.p_slow_disk and self.rng.random() < self.p_slow_disk:
                    return  # the disk is busy: persist later, keep receiving meanwhile
                r.finish_ready()
            replica = r.replica
            if replica is None or not replica.has_work() or not r.begin_ready():
                return

    def _retire_pending(self) -> None:
        while self._to_retire:
            r = self.replicas.get(self._to_retire.pop())
            if r is not None and not r.retired:
                self.event(f"{r.id} retired (its removal committed)")
                r.retired = True
                if r.replica is not None:
                    self.stop(r)

    # --- heal and drain ----------------------------------------------------------------------

    def _members_of(self, leader: SimReplica) -> list[SimReplica]:
        assert leader.node is not None
        conf = leader.node.conf
        return [self.replicas[m] for m in conf.voters + conf.learners if m in self.replicas]

    def _stable_leader(self) -> SimReplica | None:
        """A leader that every member of its configuration is alive and following."""
        leader = self.leader()
        if leader is None or leader.node is None:
            return None
        term = leader.node.term
        for r in self._members_of(leader):
            node = r.node
            if node is None or r.retired or node.term != term or node.leader != leader.id:
                return None
        return leader

    def _run_heal(self) -> None:
        self.chaos = False
        self.event("heal: network repaired, crashed members restart")
        net = self.net
        self.faults.episodes = []
        net.heal()
        self.lock_workload.heal()
        net.loss = 0.0
        net.dup = 0.0
        # Raft is live only when broadcast time << election timeout (§5.6): the chaos may
        # break that on purpose, healing restores it (delays and disk stalls stay, smaller).
        net.max_delay = min(net.max_delay, max(1, self.raft_config.election_tick_min // 4))
        self.p_slow_disk = min(self.p_slow_disk, 0.2)
        for r in self.replicas.values():
            if r.replica is None and not r.retired:
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
        # Drain: no new operations; a request without an answer is retried with its session
        # tag (so it applies at most once) until it is answered.
        wl, lw = self.workload, self.lock_workload
        wl.accepting = False
        lw.accepting = False
        wl.draining = True
        start = self.now
        barrier = None
        while True:
            leader = self._stable_leader()
            if leader is not None and leader.node is not None:
                if barrier is None or leader.node.entry_term(barrier[0]) != barrier[1]:
                    # None yet, or overwritten by a later leader: (re)propose it.
                    barrier = self._propose_barrier(leader)
                elif (
                    self._converged(leader, barrier[0])
                    and not wl.busy()
                    and not lw.busy()
                    and not self.lock_monitor.holders
                    and self.lease_workload.settled()
                    and self.watch_workload.caught_up(leader.sm.revision if leader.sm is not None else 0)
                ):
                    break
            self._stop_strays()
            if self.now - start >= DRAIN_TICKS:
                pending = [(c.cid, c.op, c.state) for c in wl.clients if c.state != 0] + [
                    (c.name, c.kind, c.state) for c in lw.clients if c.state
                ]
                pending += self.lease_workload.pending()
                held = list(self.lock_monitor.holders.values())
                self._fail(
                    "liveness",
                    f"not converged {DRAIN_TICKS} ticks into the drain (barrier {barrier}, "
                    f"pending clients {pending}, locks held {held}): {self._describe()}",
                )
            self._tick()
        self.watch_workload.check_streams(leader)
        digests = {r.id: r.sm.state_digest(sessions=True) for r in self._members_of(leader) if r.sm is not None}
        if len(set(digests.values())) != 1:
            self._fail("safety", f"state machines differ after the drain: {digests}")
        for r in self._members_of(leader):
            if r.sm is not None and r.sm.locks():
                self._fail("liveness", f"{r.id} still holds locks after the drain: {r.sm.locks()}")
        if self.raft_config.quiesce:
            self._run_quiet(leader)

    def _run_quiet(self, leader: SimReplica) -> None:
        """Seeds with quiescence: the drained group must go quiet and stay silent, and a
        leader lost while it is quiet must be replaced (the peers' monitors wake the rest)."""
        members = {r.id for r in self._members_of(leader)}
        for r in self.live_replicas():
            if r.id not in members:  # a stray (see _stop_strays) campaigns: it is no member
                self.event(f"{r.id} stopped: in no configuration, before the quiet phase")
                r.retired = True
                self.stop(r)

        def quiet() -> bool:
            if self.net.in_flight():
                return False
            for r in self._members_of(leader):
                node, replica = r.node, r.replica
                if node is None or replica is None or not node.quiesced or r.inflight is not None:
                    return False  # (a Ready on a slow disk still holds messages to send)
                if replica.has_work():
                    return False
            return True

        def until_quiet() -> None:
            start = self.now
            while not quiet():
                if self.now - start >= QUIET_TICKS:
                    state = self._describe()
                    self._fail("liveness", f"the idle group did not go quiet in {QUIET_TICKS} ticks: {state}")
                self._tick()
            self.event(f"quiet after {self.now - start} ticks")

        until_quiet()
        sent = self.net.sent
        for _ in range(2 * self.raft_config.election_tick_max):
            self._tick()
        if self.net.sent != sent:
            self._fail("liveness", f"a quiet group sent {self.net.sent - sent} messages: {self._describe()}")
        cfg = self.raft_config
        old = self.leader()
        assert old is not None and old.node is not None
        if cfg.check_quorum and len(old.node.conf.voters) >= 3:
            self._cut_silently_and_ask(old)
            self._until_led(0, "the silent cut healed")
            until_quiet()
            old = self.leader()
        node = old.node if old is not None else None
        assert old is not None and node is not None
        term = node.term
        cut = next((r for r in self._members_of(old) if r is not old and r.node is not None), None)
        if cfg.pre_vote and cfg.check_quorum and cut is not None and len(node.conf.voters) >= 3:
            # One link breaks while quiet: both ends wake; PreVote and CheckQuorum must keep
            # the cut-off member from deposing a leader the others still hear.
            self.event(f"the link {old.id} <-> {cut.id} breaks while the group is quiet")
            self.net.blocked = {(old.id, cut.id), (cut.id, old.id)}
            self.peer_lost(old, cut.id)
            self.peer_lost(cut, old.id)
            for _ in range(3 * cfg.election_tick_max):
                self._tick()
            if self.leader() is not old or node.term != term:
                self._fail("liveness", f"one broken link deposed a quiet leader: {self._describe()}")
            self.net.blocked = set()
        self.event(f"{old.id} crashes while the group is quiet")
        self.stop(old)
        self._until_led(term, "the quiet leader crashed")

    def _until_led(self, term: int, after: str) -> None:
        """Tick until a leader of a term above `term` is followed by every live member."""
        start = self.now
        while True:
            new = self.leader()
            if new is not None and new.node is not None and new.node.term > term:
                following = [r for r in self._members_of(new) if r.node is not None and not r.retired]
                if all(r.node is not None and r.node.leader == new.id for r in following):
                    break
            if self.now - start >= HEAL_LEADER_TICKS:
                self._fail("liveness", f"no leader followed by all {HEAL_LEADER_TICKS} ticks after {after}")
            self._tick()
        self.event(f"{new.id} leads term {new.node.term}, {self.now - start} ticks after {after}")

    def _cut_silently_and_ask(self, leader: SimReplica) -> None:
        """A partition that drops packets cuts the quiet leader off: no monitor fires, so
        it notices nothing by itself. Asked for its status, it must step down (CheckQuorum)
        within an election timeout or two."""
        node, replica = leader.node, leader.replica
        assert node is not None and replica is not None
        others = [rid for rid in self.replicas if rid != leader.id]
        self.event(f"{leader.id} is cut off silently while quiet, then asked for its status")
        self.net.blocked = {(leader.id, o) for o in others} | {(o, leader.id) for o in others}
        replica.confirm_leadership()
        asked = self.now
        for _ in range(3 * self.raft_config.election_tick_max):
            if node.role is not Role.LEADER:
                break
            self._tick()
        else:
            self._fail("liveness", f"a quiet leader cut off and asked still leads: {self._describe()}")
        self.event(f"{leader.id} stepped down, {self.now - asked} ticks after it was asked")
        self.net.blocked = set()

    def _stop_strays(self) -> None:
        """A server in no configuration the leader knows (its addition was lost with the
        leader that proposed it) is stopped, as an operator stops a node whose add-peer
        failed. Left running, it campaigns in ever higher terms; with neither PreVote nor
        CheckQuorum (both on by default, off in some seeds) that deposes every leader
        before a lagging member's InstallSnapshot completes (Raft thesis 4.2.3)."""
        leader = self.leader()
        if leader is None or leader.node is None:
            return
        conf = leader.node.conf
        members = set(conf.voters) | set(conf.learners) | {leader.id}
        absent = self._absent_since
        for r in self.live_replicas():
            if r.id in members:
                absent.pop(r.id, None)
            elif self.now - absent.setdefault(r.id, self.now) >= STRAY_TICKS:
                # (Not at once: a member being removed is absent from the leader's latest
                # configuration until the removal commits, and then it is retired anyway.)
                self.event(f"{r.id} stopped: in no leader's configuration for {STRAY_TICKS} ticks")
                r.retired = True
                self.stop(r)

    def _propose_barrier(self, leader: SimReplica) -> tuple[int, int] | None:
        """A no-op entry of the leader's term: once it is applied everywhere, everything
        before it is decided on every member."""
        node = leader.node
        assert node is not None
        try:
            index = node.propose(barrier_command())
        except NotLeader:
            return None  # e.g. a transfer started during the chaos is still running
        self.monitor.observe(leader)
        return index, node.term

    def _converged(self, leader: SimReplica, barrier: int) -> bool:
        node = leader.node
        assert node is not None
        if node.commit_index < barrier or node.commit_index != node.last_index:
            return False
        target = node.commit_index
        for r in self._members_of(leader):
            if r.sm is None or r.sm.applied_index != target:
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
        result = check_operations(kv_model(), self.workload.history, timeout=self.check_timeout)
        if result.ok is False:
            self._fail("linearizability", result.info)
        if result.ok is None:
            self._fail(
                "linearizability",
                f"checker gave up after {self.check_timeout}s: {result.info}",
            )


def run_seed(seed: int, nodes: int | None = None, verbose: bool = False, lock_heavy: bool = False) -> SimResult:
    """Run one seed; raises `SimulationFailure` (with a replay command) on any violation."""
    return Simulation(seed, nodes=nodes, verbose=verbose, lock_heavy=lock_heavy).run()
