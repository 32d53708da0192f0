"""Figure 3 of the Raft paper, checked after every step of random schedules.

Election Safety, Leader Append-Only, Log Matching, Leader Completeness and State
Machine Safety must hold whatever happens; hypothesis picks the happenings (who ticks,
who is cut off, who proposes, who crashes and restarts) on a five-replica cluster.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raft_harness import Cluster, config

from global_kv.raft import Role

IDS = ["a", "b", "c", "d", "e"]

action = st.one_of(
    st.tuples(st.just("campaign"), st.sampled_from(IDS), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from(IDS), st.integers(1, 12)),
    st.tuples(st.just("tick_all"), st.just(""), st.integers(1, 4)),
    st.tuples(st.just("propose"), st.sampled_from(IDS), st.integers(1, 3)),
    st.tuples(st.just("partition"), st.just(""), st.integers(1, 30)),
    st.tuples(st.just("heal"), st.just(""), st.just(0)),
    st.tuples(st.just("restart"), st.sampled_from(IDS), st.just(0)),
)


class Figure3:
    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.leaders: dict[int, str] = {}
        self.leader_logs: dict[str, tuple[int, list[tuple[int, int]]]] = {}
        self.committed: dict[int, tuple[int, bytes]] = {}

    def check(self) -> None:
        c = self.c
        logs = {i: {e.index: e for e in n.entries(n.first_index, n.last_index + 1)} for i, n in c.nodes.items()}
        for i, n in c.nodes.items():
            if n.role is Role.LEADER:
                # Election Safety
                assert self.leaders.setdefault(n.term, i) == i, f"two leaders in term {n.term}"
                # Leader Append-Only
                log = [(e.index, e.term) for e in logs[i].values()]
                term, before = self.leader_logs.get(i, (None, []))
                if term == n.term:
                    assert log[: len(before)] == before, f"leader {i} rewrote its log"
                else:
                    # Leader Completeness: a new leader holds everything committed so far.
                    for index, (t, data) in self.committed.items():
                        e = logs[i].get(index)
                        assert e is not None and (e.term, e.data) == (t, data), f"{i} lacks committed {index}"
                self.leader_logs[i] = (n.term, log)
            # State Machine Safety (on what every replica committed and applied)
            for e in c.applied[i]:
                assert self.committed.setdefault(e.index, (e.term, e.data)) == (
                    e.term,
                    e.data,
                )
        # Log Matching: same index and term => identical prefixes
        ids = list(c.nodes)
        for x in ids:
            for y in ids[ids.index(x) + 1 :]:
                common = [k for k in logs[x] if k in logs[y] and logs[x][k].term == logs[y][k].term]
                if common:
                    top = max(common)
                    for k in range(1, top + 1):
                        assert logs[x][k] == logs[y][k], f"{x} and {y} differ at {k} below {top}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, min_size=10, max_size=60), st.integers(0, 3))
def test_figure_3_properties_hold_after_every_step(actions: list[tuple[str, str, int]], seed: int) -> None:
    c = Cluster(IDS, config(pre_vote=bool(seed & 1), check_quorum=bool(seed & 2)), seed=seed)
    props = Figure3(c)
    n = 0
    for kind, who, k in actions:
        if kind == "campaign":
            c.campaign(who)
        elif kind == "tick":
            c.tick([who], n=k)
        elif kind == "tick_all":
            c.tick(n=k)
        elif kind == "propose":
            # Any replica that believes it leads proposes: deposed leaders too.
            for node in c.nodes.values():
                if node.role is Role.LEADER:
                    for _ in range(k):
                        n += 1
                        node.propose(b"v%d" % n)
            c.deliver()
        elif kind == "partition":
            # Bit i of k set: replica i is on the minority side.
            side = {i for b, i in enumerate(IDS) if k >> b & 1}
            c.blocked = {(x, y) for x in IDS for y in IDS if (x in side) != (y in side)}
        elif kind == "heal":
            c.heal()
        elif kind == "restart":
            c.crash(who)
            c.restart(who)
            c.deliver()
        props.check()
