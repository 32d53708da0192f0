"""Quiescence (`RaftConfig.quiesce`): an idle group stops its timers, and wakes for any input.

What it buys is no heartbeat traffic while nothing happens; what it must not cost is
any guarantee: a quiet leader still answers reads only after a heartbeat round, a
follower that missed the last heartbeat still gets the group going, and a lost leader
is replaced once the driver's failure detector says so (`wake`).
"""

from __future__ import annotations

import random

from raft_harness import Cluster, config, elect

from global_kv.raft import Heartbeat, RaftConfig, RaftNode, Role

IDS = ["a", "b", "c"]


def _quiet(cfg: RaftConfig | None = None) -> Cluster:
    c = elect(IDS, "a", cfg or config(quiesce=True))
    c.tick(n=3)
    return c


def test_an_idle_group_sends_a_last_heartbeat_and_then_nothing_however_long_it_ticks() -> None:
    c = _quiet()
    assert all(n.quiesced for n in c.nodes.values())
    last = [m for m in c.sent if type(m) is Heartbeat][-2:]
    assert {(m.dst, m.quiesce, m.read_seq, m.commit) for m in last} == {("b", True, 0, 2), ("c", True, 0, 2)}
    assert all(n.ticks_until_due() is None for n in c.nodes.values())
    sent = len(c.sent)
    c.tick(n=1000)  # 50 election timeouts
    assert len(c.sent) == sent
    assert c.nodes["a"].role is Role.LEADER and {n.term for n in c.nodes.values()} == {2}
    assert c.nodes["a"].status().quiesced


def test_without_the_option_a_leader_heartbeats_forever() -> None:
    c = elect(IDS, "a")
    c.tick(n=3)
    sent = len(c.sent)
    c.tick(n=10)
    assert not any(n.quiesced for n in c.nodes.values())
    assert len(c.sent) >= sent + 2 * 10


def test_a_proposal_wakes_the_group_commits_everywhere_and_the_group_goes_quiet_again() -> None:
    c = _quiet()
    c.propose("a", b"x")
    assert not c.nodes["a"].quiesced
    c.tick(n=3)
    assert all(c.data_applied(i) == [b"x"] for i in IDS)
    assert all(n.quiesced for n in c.nodes.values())


def test_a_read_on_a_quiet_leader_waits_for_a_heartbeat_round_even_with_a_lease() -> None:
    c = _quiet(config(quiesce=True, lease_reads=True, check_quorum=True, pre_vote=True))
    c.tick(n=100)  # the lease, earned before the group went quiet, has run out
    c.nodes["a"].read_index(b"r")
    rd = c.handle("a")
    assert rd is not None and rd.read_states == ()  # not from the stale lease
    assert {(m.dst, m.read_seq > 0) for m in rd.messages} == {("b", True), ("c", True)}
    c.deliver()
    assert [r.context for r in c.reads["a"]] == [b"r"]


def test_a_follower_that_missed_the_last_heartbeat_campaigns_and_the_leader_keeps_its_term() -> None:
    c = Cluster(IDS, config(quiesce=True, check_quorum=True, pre_vote=True))
    c.filter = lambda m: not (type(m) is Heartbeat and m.quiesce and m.dst == "c")
    c.campaign("a")
    c.tick(n=3)
    c.filter = None
    assert c.nodes["a"].quiesced and c.nodes["b"].quiesced and not c.nodes["c"].quiesced
    c.tick(n=40)  # c's timer fires; its PreVote wakes a and b, and a's heartbeats win
    assert c.nodes["a"].role is Role.LEADER and {n.term for n in c.nodes.values()} == {2}
    assert all(n.leader == "a" for n in c.nodes.values())


def test_a_leader_does_not_go_quiet_while_a_follower_lacks_an_entry() -> None:
    c = elect(IDS, "a", config(quiesce=True))
    c.isolate("c")
    c.propose("a", b"x")
    c.tick(n=20)
    assert not c.nodes["a"].quiesced
    assert c.nodes["a"].ticks_until_due() is not None


def test_a_lost_leader_is_replaced_once_the_driver_wakes_the_followers() -> None:
    c = _quiet()
    c.crash("a")
    c.tick(["b", "c"], n=200)
    assert c.nodes["b"].role is Role.FOLLOWER and c.nodes["c"].role is Role.FOLLOWER  # nothing noticed
    c.nodes["b"].wake()
    c.nodes["c"].wake()
    c.tick(["b", "c"], n=25)
    assert c.leader() in ("b", "c") and c.nodes[c.leader()].term == 3


def test_a_request_for_a_leader_on_a_quiet_follower_wakes_it() -> None:
    c = _quiet()
    c.nodes["b"].read_index(b"r")
    assert not c.nodes["b"].quiesced
    assert c.nodes["b"].ticks_until_due() is not None


def test_a_link_lost_while_quiet_keeps_the_leader_awake_and_in_its_term() -> None:
    cfg = config(quiesce=True, check_quorum=True, pre_vote=True)
    c = _quiet(cfg)
    c.blocked |= {("a", "c"), ("c", "a")}  # one link broke; b still hears both
    c.nodes["a"].wake()  # both ends' monitors fire
    c.nodes["c"].wake()
    c.tick(n=200)
    assert c.nodes["a"].role is Role.LEADER and c.nodes["a"].term == 2
    assert not c.nodes["a"].quiesced  # c answers no round: a keeps heartbeating, b keeps refusing c
    assert c.nodes["b"].leader == "a" and c.nodes["c"].role is not Role.LEADER
    c.heal()
    c.tick(n=40)
    assert all(n.leader == "a" and n.term == 2 for n in c.nodes.values())
    assert all(n.quiesced for n in c.nodes.values())


def test_a_follower_without_the_option_ignores_a_quiesce_heartbeat() -> None:
    c = elect(IDS, "a", config(quiesce=True))
    follower = RaftNode("b2", config(), random.Random(0))
    follower.step(Heartbeat(2, "a", "b2", 0, 0, True))
    assert not follower.quiesced and follower.leader == "a"
    assert c.nodes["a"].role is Role.LEADER
