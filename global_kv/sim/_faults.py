"""The chaos phase's fault schedule: episodes, restarts, membership changes, transfers.

Faults come in episodes that end by themselves (a partition, an isolated leader, one-way
links, a crash, a lock client cut off from every replica), at a per-seed rate, so runs
alternate between trouble and progress. Isolating a replica also cuts it off from the
lock clients, so a deposed leader sees their owners as lost (as an ergo_py monitor would
on `noconnection`). Every random choice comes from the simulation's seeded generator.
This module must never check anything: the monitors do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfChangeRejected, NotLeader, TransferRejected
from ..raft import ConfChange, ConfChangeType
from ._replica import SimReplica

if TYPE_CHECKING:
    from ._simulation import Simulation

__all__ = ["MAX_MEMBERS", "MIN_VOTERS", "FaultInjector"]

MAX_MEMBERS = 7
MIN_VOTERS = 3

_EPISODES = (
    "isolate_leader",
    "isolate_leader",
    "split",
    "one_way",
    "crash_leader",
    "crash",
)


class FaultInjector:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        rng = sim.rng
        self.p_episode = rng.uniform(0.01, 0.06)
        self.max_episodes = rng.choice((1, 2, 3))
        self.p_conf = rng.choice((0.0, 0.01, 0.03, 0.08))
        self.p_transfer = rng.uniform(0.0, 0.02)
        self.episodes: list[tuple[int, str, set[tuple[str, str]]]] = []
        self.restart_at: dict[str, int] = {}
        self.stats_conf_changes = 0
        self.stats_transfers = 0
        self.stats_client_isolations = 0

    def step(self) -> None:
        """One tick of the chaos phase."""
        sim = self.sim
        rng, now = sim.rng, sim.now
        if self.episodes and any(end <= now for end, _, _ in self.episodes):
            for end, what, _ in self.episodes:
                if end <= now:
                    sim.event(f"over: {what}")
            self.episodes = [ep for ep in self.episodes if ep[0] > now]
            self._apply_blocks()
        for rid, at in list(self.restart_at.items()):
            r = sim.replicas[rid]
            if at <= now:
                del self.restart_at[rid]
                if r.node is None and not r.retired:
                    sim.event(f"{rid} restarts")
                    r.restart()
                    sim.monitor.observe(r)
        if len(self.episodes) < self.max_episodes and rng.random() < self.p_episode:
            self._start_episode()
        if rng.random() < self.p_conf:
            self._membership_change()
        if rng.random() < self.p_transfer:
            self._transfer()

    def _apply_blocks(self) -> None:
        blocked: set[tuple[str, str]] = set()
        for _, _, links in self.episodes:
            blocked |= links
        sim = self.sim
        cut = blocked - sim.net.blocked
        sim.net.blocked = blocked
        # A link blocked either way is a broken connection: both ends' monitors fire.
        replicas = sim.replicas
        for x, y in sorted(cut):
            if x in replicas and y in replicas:
                sim.peer_lost(replicas[x], y)
                sim.peer_lost(replicas[y], x)

    def _start_episode(self) -> None:
        sim = self.sim
        rng = sim.rng
        ids = [r.id for r in sim.replicas.values() if not r.retired]
        clients = [c.name for c in sim.lock_workload.clients]
        leader = sim.leader()
        kind = rng.choice(_EPISODES + (("isolate_lock_client",) if clients else ()))
        duration = rng.randint(5, 80)
        links: set[tuple[str, str]] = set()
        if kind in ("crash_leader", "crash"):
            victim = leader if kind == "crash_leader" else None
            if victim is None:
                live = sim.live_replicas()
                if not live:
                    return
                victim = rng.choice(live)
            sim.event(f"{victim.id} crashes (down {duration} ticks)")
            sim.crash(victim, downtime=duration)
            return
        if kind == "isolate_lock_client":
            name = rng.choice(clients)
            links = {(name, o) for o in ids} | {(o, name) for o in ids}
            what = f"lock client {name} cut off from every replica"
            self.stats_client_isolations += 1
        elif len(ids) < 2:
            return
        elif kind == "isolate_leader":
            target = leader.id if leader is not None else rng.choice(ids)
            others = [o for o in ids if o != target] + clients
            links = {(target, o) for o in others} | {(o, target) for o in others}
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
        sim.event(f"{what} for {duration} ticks")
        self.episodes.append((sim.now + duration, what, links))
        self._apply_blocks()

    def _membership_change(self) -> None:
        sim = self.sim
        leader = sim.leader()
        if leader is None or leader.node is None:
            return
        rng = sim.rng
        node = leader.node
        conf = node.conf
        voters, learners = conf.voters, conf.learners
        roll = rng.random()
        new_id = None
        if learners and roll < 0.4:
            change = ConfChange(ConfChangeType.ADD_VOTER, rng.choice(learners))
        elif len(voters) + len(learners) < MAX_MEMBERS and roll < 0.7:
            new_id = f"n{sim.next_id}"
            kind = ConfChangeType.ADD_LEARNER if rng.random() < 0.3 else ConfChangeType.ADD_VOTER
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
            sim.monitor.removals[(index, node.term)] = change.node_id
        sim.monitor.observe(leader)
        self.stats_conf_changes += 1
        sim.event(f"{leader.id} proposes {change.type.name} {change.node_id} at {index}")
        if new_id is not None:
            sim.next_id += 1
            r = SimReplica(sim, new_id)
            sim.replicas[new_id] = r
            r.boot(None)

    def _transfer(self) -> None:
        sim = self.sim
        leader = sim.leader()
        if leader is None or leader.node is None:
            return
        others = [v for v in leader.node.conf.voters if v != leader.id]
        if not others:
            return
        target = sim.rng.choice(others)
        try:
            leader.node.transfer_leadership(target)
        except (TransferRejected, NotLeader):
            return
        sim.monitor.observe(leader)
        self.stats_transfers += 1
        sim.event(f"{leader.id} transfers leadership to {target}")
