"""ReadIndex (thesis §6.4) and lease reads (thesis §6.4.1)."""

from __future__ import annotations

import pytest
from raft_harness import Cluster, config, elect

from global_kv._errors import NotLeader
from global_kv.raft import (
    Heartbeat,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    RequestVote,
    Role,
)

IDS = ["a", "b", "c"]


def test_a_new_leader_answers_reads_only_after_its_noop_commits() -> None:
    c = Cluster(IDS)
    a = c.nodes["a"]
    c.hold.add("a")  # a's Readies are handled by hand below
    a.campaign()
    rd = a.ready()
    c.stores["a"].persist(rd)
    a.advance()
    c.queue.extend(rd.persisted_messages)
    c.deliver()  # the votes come back: a leads, but its no-op has not gone out
    assert a.role is Role.LEADER and a.commit_index == 1
    a.read_index(b"early")
    c.tick(["b", "c"])
    assert a.ready().read_states == ()
    a.advance()
    c.hold.clear()
    c.tick(["a"], n=2)
    assert c.reads["a"] == [ReadState(2, b"early")]


def test_reads_issued_together_share_one_heartbeat_round() -> None:
    c = elect(IDS, "a")
    c.sent.clear()
    for n in range(5):
        c.nodes["a"].read_index(b"r%d" % n)
    c.deliver()
    beats = [m for m in c.sent if isinstance(m, Heartbeat)]
    assert len(beats) == 2  # one round: one heartbeat per peer
    assert c.reads["a"] == [ReadState(2, b"r%d" % n) for n in range(5)]


def test_the_read_index_is_the_commit_index_when_the_read_arrived() -> None:
    c = elect(IDS, "a")
    c.propose("a", b"w")
    c.nodes["a"].read_index(b"r")
    c.nodes["a"].propose(b"later")
    c.deliver()
    assert c.reads["a"] == [ReadState(3, b"r")]


def test_a_deposed_leader_that_does_not_know_it_confirms_no_read() -> None:
    c = elect(IDS, "a")
    c.isolate("a")
    c.campaign("b")
    c.propose("b", b"new value")
    c.nodes["a"].read_index(b"stale?")
    c.tick(n=30)
    assert c.nodes["a"].role is Role.LEADER  # no CheckQuorum here: it still believes
    assert c.reads["a"] == []


def test_a_follower_read_is_forwarded_and_answered_by_the_leader() -> None:
    c = elect(IDS, "a")
    c.propose("a", b"w")
    c.sent.clear()
    c.nodes["b"].read_index(b"f")
    c.deliver()
    assert [type(m) for m in c.sent if m.src == "b" and m.dst == "a"][:1] == [ReadIndexRequest]
    assert any(isinstance(m, ReadIndexResponse) for m in c.sent)
    assert c.reads["b"] == [ReadState(3, b"f")]


def test_a_read_without_any_known_leader_fails_fast() -> None:
    c = Cluster(IDS)
    with pytest.raises(NotLeader) as info:
        c.nodes["b"].read_index(b"x")
    assert info.value.leader_hint is None


def test_lease_reads_skip_the_heartbeat_round_while_the_lease_holds() -> None:
    cfg = config(check_quorum=True, lease_reads=True, election_tick_min=10, lease_margin_ticks=2)
    c = elect(IDS, "a", cfg)
    c.tick(["a"])  # a heartbeat round acknowledged at tick 2: lease until tick 2 + 10 - 2
    a = c.nodes["a"]
    a.read_index(b"lease")
    rd = c.handle("a")
    assert rd is not None and rd.read_states == (ReadState(2, b"lease"),) and rd.messages == ()
    # Cut off: the lease runs out and reads need a round that cannot complete.
    c.isolate("a")
    c.tick(["a"], n=8)
    a.read_index(b"after")
    c.tick(["a"], n=1)
    assert c.reads["a"][-1].context == b"lease"


def test_the_lease_ends_before_any_other_leader_can_be_elected() -> None:
    cfg = config(check_quorum=True, lease_reads=True, election_tick_min=10, election_tick_max=20)
    for seed in range(5):
        c = elect(IDS, "a", cfg, seed=seed)
        c.isolate("a")
        last_lease_read = new_leader_at = 0
        for t in range(1, 80):
            c.tick()  # one clock for everybody
            if c.nodes["a"].role is Role.LEADER:
                c.nodes["a"].read_index(b"t%d" % t)
                c.flush()
                if c.reads["a"] and c.reads["a"][-1].context == b"t%d" % t:
                    last_lease_read = t
            if not new_leader_at and any(n.role is Role.LEADER and n.term > 2 for n in c.nodes.values()):
                new_leader_at = t
        assert 0 < last_lease_read < new_leader_at


def test_a_leader_that_sent_timeout_now_stops_serving_lease_reads() -> None:
    cfg = config(check_quorum=True, lease_reads=True)
    c = elect(IDS, "a", cfg)
    c.tick(["a"])
    c.blocked = {("a", "b")}  # keep b from taking over so a stays leader
    c.nodes["a"].transfer_leadership("b")
    c.tick(["a"], n=11)  # the transfer is abandoned
    assert c.nodes["a"].role is Role.LEADER and c.nodes["a"].transferee is None
    c.heal()
    c.tick(["a"])
    c.sent.clear()
    c.nodes["a"].read_index(b"x")
    c.flush()
    assert any(isinstance(m, Heartbeat) for m in c.sent)  # a round, not the lease


def test_a_restarted_replica_refuses_votes_while_its_old_lease_may_run() -> None:
    cfg = config(check_quorum=True, lease_reads=True, election_tick_min=10)
    c = elect(IDS, "a", cfg)
    b = c.restart("b")
    b.step(RequestVote(5, "c", "b", 99, 9))
    assert b.term == 2
    for _ in range(10):
        b.tick()
    b.step(RequestVote(5, "c", "b", 99, 9))
    assert b.term == 5
