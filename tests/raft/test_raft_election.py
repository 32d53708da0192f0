"""Leader election (Raft §5.2, §5.4.1; thesis §4.2.3, §9.6): one sentence of the paper per test."""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster, config, elect

from global_kv._errors import RaftInvariantError
from global_kv.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    HardState,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
    Role,
)

IDS = ["a", "b", "c"]


def test_a_candidate_that_wins_a_majority_becomes_leader_and_appends_a_noop() -> None:
    c = Cluster(IDS)
    c.campaign("a")
    a = c.nodes["a"]
    assert a.role is Role.LEADER and a.term == 2
    assert all(c.nodes[i].leader == "a" and c.nodes[i].term == 2 for i in "bc")
    # Raft §8: the no-op of the new term is what lets the leader commit.
    noop = a.entries(2, 3)[0]
    assert (noop.term, noop.type) == (2, EntryType.NOOP)
    assert a.commit_index == 2


def test_a_vote_is_persisted_before_it_is_sent() -> None:
    b = RaftNode.bootstrap("b", IDS, config(), random.Random(0))
    b.ready()
    b.advance()
    b.step(RequestVote(2, "a", "b", last_index=1, last_term=1))
    rd = b.ready()
    assert rd.hard_state == HardState(term=2, vote="a", commit=1)
    assert rd.messages == ()
    assert rd.persisted_messages == (RequestVoteResponse(2, "b", "a", True),)


def test_each_server_votes_for_at_most_one_candidate_per_term() -> None:
    b = RaftNode.bootstrap("b", IDS, config(), random.Random(0))
    b.step(RequestVote(2, "a", "b", 1, 1))
    b.step(RequestVote(2, "c", "b", 1, 1))
    b.step(RequestVote(2, "a", "b", 1, 1))  # a retransmission from the same candidate
    answers = [(m.dst, m.granted) for m in b.ready().persisted_messages]
    assert answers == [("a", True), ("c", False), ("a", True)]


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [(3, 2, True), (5, 2, True), (2, 2, False), (9, 1, False), (1, 3, True)],
)
def test_votes_only_go_to_candidates_at_least_as_up_to_date(last_index: int, last_term: int, granted: bool) -> None:
    # Raft §5.4.1: compare the last entries' terms, then the lengths.
    entries = [Entry(1, 1, EntryType.NOOP), Entry(2, 2), Entry(3, 2)]
    b = RaftNode(
        "b",
        config(),
        random.Random(0),
        hard_state=HardState(2, None, 1),
        entries=entries,
    )
    b.step(RequestVote(5, "a", "b", last_index, last_term))
    (answer,) = b.ready().persisted_messages
    assert answer.granted is granted


def test_election_timeouts_are_randomised_within_range() -> None:
    cfg = config(election_tick_min=10, election_tick_max=20)
    fired = set()
    for seed in range(40):
        node = RaftNode.bootstrap("a", ["a", "b", "c"], cfg, random.Random(seed))
        for t in range(1, 21):
            node.tick()
            if node.role is Role.CANDIDATE:
                fired.add(t)
                break
    assert min(fired) >= 10 and max(fired) < 20 and len(fired) > 5


def test_split_votes_resolve_and_every_node_agrees() -> None:
    for seed in range(10):
        c = Cluster(["a", "b", "c", "d", "e"], seed=seed)
        for _ in range(200):
            c.tick()
            if c.leader() is not None:
                break
        leader = c.nodes[c.leader()]  # type: ignore[index]
        c.tick(n=2)
        assert all(n.leader == leader.id and n.term == leader.term for n in c.nodes.values())


def test_a_higher_term_makes_a_leader_step_down() -> None:
    c = elect(IDS, "a")
    c.nodes["a"].step(AppendEntriesResponse(7, "b", "a", 0, True))
    assert (c.nodes["a"].role, c.nodes["a"].term, c.nodes["a"].leader) == (
        Role.FOLLOWER,
        7,
        None,
    )


def test_a_stale_leader_is_told_the_newer_term() -> None:
    c = elect(IDS, "a")
    c.isolate("a")
    c.campaign("b")
    assert c.nodes["b"].role is Role.LEADER and c.nodes["a"].role is Role.LEADER
    c.heal()
    c.tick(["a"])  # a's heartbeat reaches the others, whose answer carries the new term
    assert (c.nodes["a"].role, c.nodes["a"].term, c.nodes["a"].leader) == (
        Role.FOLLOWER,
        3,
        None,
    )
    c.tick(["b"])  # and b's next heartbeat names the leader
    assert c.nodes["a"].leader == "b"


def test_a_candidate_follows_a_leader_of_its_term() -> None:
    c = elect(IDS, "a")
    b = c.nodes["b"]
    b.step(AppendEntries(2, "a", "b", 2, 2, (), 2))
    assert b.role is Role.FOLLOWER
    c.isolate("b")
    b.campaign()
    assert b.role is Role.CANDIDATE and b.term == 3
    b.step(AppendEntries(3, "c", "b", 2, 2, (), 2))
    assert b.role is Role.FOLLOWER and b.leader == "c"


def test_two_leaders_in_one_term_is_an_invariant_violation() -> None:
    c = elect(IDS, "a")
    with pytest.raises(RaftInvariantError, match="two leaders in term 2"):
        c.nodes["b"].step(AppendEntries(2, "c", "b", 2, 2, (), 2))
    with pytest.raises(RaftInvariantError, match="acts as leader"):
        c.nodes["a"].step(AppendEntries(2, "c", "a", 2, 2, (), 2))


def test_prevote_keeps_a_partitioned_node_from_raising_its_term() -> None:
    # Thesis §9.6: without PreVote the rejoining node would depose a healthy leader.
    for pre_vote, disrupted in ((True, False), (False, True)):
        c = elect(IDS, "a", config(pre_vote=pre_vote))
        c.isolate("c")
        c.tick(["c"], n=100)
        assert (c.nodes["c"].term > 2) is disrupted
        c.heal()
        c.tick(n=3)
        assert (c.nodes["a"].term > 2) is disrupted


def test_prevote_never_changes_anyones_term() -> None:
    c = elect(IDS, "a", config(pre_vote=True))
    c.isolate("a")
    c.tick(["b"], n=25)  # b's pre-vote at term 3 wins c's grant; only then does b raise its term
    assert c.nodes["b"].role is Role.LEADER and c.nodes["b"].term == 3
    assert c.nodes["a"].term == 2  # a heard nothing at all


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    for check_quorum in (True, False):
        c = elect(IDS, "a", config(check_quorum=check_quorum, election_tick_min=10))
        c.isolate("a")
        c.tick(["a"], n=20)  # two CheckQuorum periods
        assert (c.nodes["a"].role is Role.LEADER) is not check_quorum


def test_followers_ignore_vote_requests_while_they_hear_from_a_leader() -> None:
    # Thesis §4.2.3: a removed or partitioned server cannot disrupt a live leader.
    c = elect(IDS, "a", config(check_quorum=True))
    b = c.nodes["b"]
    b.step(RequestVote(9, "c", "b", 99, 9))
    assert b.term == 2 and not b.has_ready()
    c.tick(["b"], n=10)  # election_tick_min without hearing from the leader
    b.step(RequestVote(9, "c", "b", 99, 9))
    assert b.term == 9 and b.vote == "c"


def test_ticks_until_due_names_the_first_tick_that_does_anything() -> None:
    """A driver sleeps through the ticks before it: they only count."""
    cfg = config(heartbeat_tick=5, election_tick_min=15, election_tick_max=30, check_quorum=True)
    c = elect(IDS, "a", cfg)
    c.deliver()
    for node in (c.nodes["a"], c.nodes["b"]):
        c.flush()
        n = node.ticks_until_due()
        assert n is not None and 1 <= n <= (5 if node.role is Role.LEADER else 30)
        for _ in range(n - 1):
            node.tick()
        assert not node.has_ready()  # the ticks before it only counted
        node.tick()
        rd = node.ready()  # a heartbeat from the leader; a (pre-)campaign from the follower
        assert rd.messages or rd.persisted_messages
        node.advance()


def test_a_replica_that_can_never_campaign_needs_no_tick() -> None:
    cfg = config(check_quorum=True)
    learner = RaftNode("d", cfg, random.Random(0))  # not a voter of any configuration
    assert learner.ticks_until_due() is None
