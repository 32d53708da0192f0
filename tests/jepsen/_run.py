"""One Jepsen run: start a cluster, run the workload under the nemesis, heal, read back, check.

`run_jepsen(JepsenConfig(...))` returns a `JepsenReport`; `report.format()` prints the
seed, the fault schedule and every anomaly with its offending operations. It must
never leave a node or owner process running: LocalCluster and the nemesis reap
everything on every exit path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

import ergo_py
from global_kv import GlobalKVError
from global_kv.checker import Operation
from global_kv.cli import LocalCluster
from global_kv.client import open_client

from ._checks import Anomaly, check_all, replay
from ._membership import Membership, membership_anomalies
from ._nemesis import FAULT_KINDS, Fault, FaultEvent, Nemesis, make_schedule
from ._partition import PARTITION_KINDS, open_cluster
from ._proxy import ProxyStatistics
from ._record import Recorder
from ._workload import KEYS, keep_linked, kv_client, lease_worker, lock_worker, watcher

__all__ = ["JepsenConfig", "JepsenReport", "run_jepsen"]


@dataclass(frozen=True)
class JepsenConfig:
    seconds: float = 60.0
    seed: int = 1
    nodes: int = 3
    kv_clients: int = 6
    lock_workers: int = 3
    lock_ttl: float = 2.0
    lease_workers: int = 2
    lease_ttl: float = 1.5
    heal_timeout: float = 30.0
    checker_timeout: float = 120.0
    partitions: bool = True  # nodes dial each other through the fault-injecting proxy
    fault_kinds: tuple[str, ...] | None = None  # None: every kind (no partition kinds without the proxy)

    def kinds(self) -> tuple[str, ...]:
        """The fault kinds of this run; raises ValueError for partitions asked of a run without the proxy."""
        if self.fault_kinds is None:
            return tuple(k for k in FAULT_KINDS if self.partitions or k not in PARTITION_KINDS)
        if not self.partitions and set(self.fault_kinds) & set(PARTITION_KINDS):
            raise ValueError("partition faults need the proxy: do not combine them with partitions=False")
        return self.fault_kinds


@dataclass
class JepsenReport:
    config: JepsenConfig
    schedule: list[Fault]
    events: list[FaultEvent]
    counts: dict[str, int]
    anomalies: list[Anomaly]
    elapsed: float
    node_logs: dict[str, str] = field(default_factory=dict)
    t0: float = 0.0
    pids: list[int] = field(default_factory=list)
    proxy: ProxyStatistics | None = None  # the partition proxy's counters (None: partitions off)

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def format(self) -> str:
        c = self.config
        lines = [
            (
                f"jepsen run: seed={c.seed} nodes={c.nodes} seconds={c.seconds:g} ttl={c.lock_ttl:g} "
                f"-> {'OK' if self.ok else f'{len(self.anomalies)} ANOMALIES'} in {self.elapsed:.1f} s"
            ),
            f"replay: python -m tests.jepsen --minutes {c.seconds / 60:g} --seed {c.seed} --nodes {c.nodes}"
            + ("" if c.partitions else " --no-partitions")
            + (f" --faults {','.join(c.fault_kinds)}" if c.fault_kinds else ""),
            "counts: " + ", ".join(f"{k}={v}" for k, v in self.counts.items()),
        ]
        if self.proxy is not None:
            p = self.proxy
            lines.append(f"proxy: {p.accepted} connections, {p.resets} reset, {p.bytes_forwarded} bytes forwarded")
        lines.append(f"faults injected ({len(self.events)}):")
        lines += [f"  {e.describe(self.t0)}" for e in self.events]
        lines.append(f"(times are seconds since the workload started, t0={self.t0:.2f} on the trio clock)")
        for a in self.anomalies:
            lines.append(str(a))
        if not self.ok:
            for name, tail in self.node_logs.items():
                lines.append(f"--- last log lines of {name} ---\n{tail}")
        return "\n".join(lines)


async def _converged_states(
    cluster: LocalCluster, node: ergo_py.Node, timeout: float
) -> dict[str, dict[bytes, bytes] | None]:
    """Each member's full state (follower reads), once all have applied the same index twice running."""
    states: dict[str, dict[bytes, bytes] | None] = {n.name: None for n in cluster.members}
    with trio.move_on_after(timeout):
        while True:
            # Members only: a spare is out of the configuration at the end (wiped, empty).
            before = {k: v for k, v in (await cluster.statuses(node, timeout=1.0)).items() if k in states}
            applied = {st.last_applied for st in before.values() if st is not None}
            if len(applied) == 1 and all(st is not None for st in before.values()):
                for n in cluster.members:
                    try:
                        async with open_client(node, [n.name], timeout=2, consistency="follower") as c:
                            states[n.name] = dict(await c.range(None, None))
                    except GlobalKVError:
                        states[n.name] = None
                after = {k: v for k, v in (await cluster.statuses(node, timeout=1.0)).items() if k in states}
                if all(st is not None and st.last_applied in applied for st in after.values()) and all(
                    s is not None for s in states.values()
                ):
                    return states
            await trio.sleep(0.3)
    return states


async def _lease_workers(
    cluster: LocalCluster, node: ergo_py.Node, rec: Recorder, config: JepsenConfig, deadline: float, done: trio.Event
) -> None:
    """The TTL lease workers (their last cycle may run past `deadline`, into the heal)."""
    async with trio.open_nursery() as nursery:
        for i in range(config.lease_workers):
            seed = config.seed * 1000 + 700 + i
            nursery.start_soon(lease_worker, cluster, node, i, rec, seed, deadline, config.lease_ttl)
    done.set()


async def _final_reads(cluster: LocalCluster, node: ergo_py.Node, rec: Recorder) -> dict[bytes, bytes]:
    """Linearizable reads of every key, added to the history, and the full final state."""
    async with open_client(node, cluster.names, timeout=10, consistency="linearizable") as c:
        for key in KEYS:
            start = trio.current_time()
            value = await c.get(key)
            rec.ops.append(Operation(-1, ("get", key), start, value, trio.current_time()))
        return dict(await c.range(None, None))


async def _watchers_caught_up(rec: Recorder, final: Mapping[bytes, bytes], timeout: float) -> None:
    """Give the watchers until `timeout` to deliver what the final reads saw (the check
    then says whether they did)."""
    wanted = {k: v for k, v in final.items() if b"a" <= k < b"f"}
    with trio.move_on_after(timeout):
        while any(replay(events) != wanted for events in rec.watches.values()) or (
            len({len(events) for events in rec.watches.values()}) > 1
        ):
            await trio.sleep(0.1)


async def run_jepsen(config: JepsenConfig) -> JepsenReport:
    started = time.monotonic()
    rec = Recorder()
    schedule = make_schedule(config.seed, config.seconds, config.lock_ttl, fault_kinds=config.kinds())
    anomalies: list[Anomaly] = []
    states: Mapping[str, Mapping[bytes, bytes] | None] = {}
    final: dict[bytes, bytes] = {}
    logs: dict[str, str] = {}
    events: list[FaultEvent] = []
    t0 = 0.0
    pids: list[int] = []
    nemesis: Nemesis | None = None
    end_of_run = 0.0
    proxy: ProxyStatistics | None = None
    spares = 1 if "member-replace" in config.kinds() else 0  # the new member that replaces one
    cluster_cm = open_cluster(
        config.nodes, partitions=config.partitions, spares=spares, log_level="WARNING", startup_timeout=30
    )
    async with cluster_cm as (cluster, mesh):
        try:
            async with cluster.open_client_node("jepsen@localhost") as node:
                nemesis = Nemesis(cluster, node, rec, config.lock_ttl, mesh=mesh)
                events = nemesis.events
                if await nemesis.leader(20) is None:
                    raise RuntimeError("no leader elected at start")
                t0 = trio.current_time()
                deadline = t0 + config.seconds
                async with trio.open_nursery() as linker:
                    linker.start_soon(keep_linked, cluster, node)
                    watch_stop = trio.Event()
                    for member in cluster.names:  # a watcher at every node
                        linker.start_soon(watcher, cluster, node, member, rec, watch_stop)
                    leases_done = trio.Event()
                    linker.start_soon(_lease_workers, cluster, node, rec, config, deadline, leases_done)
                    try:
                        async with trio.open_nursery() as work:
                            for i in range(config.kv_clients):
                                work.start_soon(kv_client, cluster, node, i, rec, config.seed * 1000 + i, deadline)
                            for i in range(config.lock_workers):
                                work.start_soon(
                                    lock_worker,
                                    cluster,
                                    node,
                                    i,
                                    rec,
                                    config.seed * 1000 + 500 + i,
                                    deadline,
                                    config.lock_ttl,
                                )
                            with trio.move_on_at(deadline):
                                await nemesis.run(schedule)
                    finally:
                        await nemesis.heal()
                    end_of_run = trio.current_time()
                    if nemesis.starved:
                        anomalies.append(Anomaly("lock-starvation", "a waiting owner was passed over", nemesis.starved))
                    if nemesis.stale_leaders:
                        anomalies.append(
                            Anomaly("stale-leader", "an isolated leader did not step down", nemesis.stale_leaders)
                        )
                    if nemesis.crashes:
                        anomalies.append(Anomaly("node-crash", "nodes exited without being killed", nemesis.crashes))
                    if nemesis.membership is not None and nemesis.membership.failures:
                        failures = nemesis.membership.failures
                        anomalies.append(Anomaly("membership", "membership changes failed or misbehaved", failures))
                    if await nemesis.leader(config.heal_timeout) is None:
                        anomalies.append(
                            Anomaly("unavailable", f"no leader within {config.heal_timeout:g} s of healing")
                        )
                    else:
                        view = Membership(cluster, node)
                        wrong = membership_anomalies(await view.members(config.heal_timeout), view.originals)
                        if wrong:
                            anomalies.append(Anomaly("membership", "the cluster did not end with its members", wrong))
                        with trio.move_on_after(config.heal_timeout):
                            await leases_done.wait()  # their last keys gone, or reported late
                        try:
                            final = await _final_reads(cluster, node, rec)
                        except GlobalKVError as exc:
                            anomalies.append(Anomaly("unavailable", f"final reads failed after healing: {exc!r}"))
                        else:
                            await _watchers_caught_up(rec, final, config.heal_timeout)
                    states = await _converged_states(cluster, node, config.heal_timeout)
                    watch_stop.set()
                    linker.cancel_scope.cancel()
        finally:
            logs = {n.name: n.log_tail(15) for n in cluster.nodes}
            pids = [n.pid for n in cluster.nodes if n.pid is not None]
            if nemesis is not None:
                pids += [p.pid for p in nemesis.owners]
            proxy = mesh.statistics() if mesh is not None else None
    anomalies += check_all(rec, final, states, end_of_run, config.checker_timeout)
    return JepsenReport(
        config, schedule, events, rec.count(), anomalies, time.monotonic() - started, logs, t0, pids, proxy
    )
