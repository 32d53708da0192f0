"""The Ready contract, restarts, and how a caller learns that a proposal was lost."""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster, config, elect

from global_kv._errors import NotLeader, RaftInvariantError
from global_kv.raft import HardState, Heartbeat, RaftNode, Role, SoftState

IDS = ["a", "b", "c"]


def test_bootstrap_persists_the_membership_as_committed_entry_one() -> None:
    node = RaftNode.bootstrap("a", IDS, config(), random.Random(0))
    rd = node.ready()
    assert rd.hard_state == HardState(term=1, vote=None, commit=1)
    assert [(e.index, e.term) for e in rd.entries] == [(1, 1)] == [(e.index, e.term) for e in rd.committed_entries]
    assert rd.soft_state == SoftState(Role.FOLLOWER, None, 1) and rd.must_sync()
    node.advance()
    assert not node.has_ready() and node.applied_index == 1


@pytest.mark.parametrize(
    ("voters", "fragment"),
    [(("b", "c"), "not among voters"), (("a", "a"), "duplicate")],
)
def test_bootstrap_checks_its_arguments(voters: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(RaftInvariantError, match=fragment):
        RaftNode.bootstrap("a", voters, config(), random.Random(0))


def test_ready_and_advance_must_alternate() -> None:
    node = RaftNode.bootstrap("a", IDS, config(), random.Random(0))
    with pytest.raises(RaftInvariantError, match="without an outstanding"):
        node.advance()
    node.ready()
    assert not node.has_ready()
    with pytest.raises(RaftInvariantError, match="before advance"):
        node.ready()
    node.advance()


def test_hard_and_soft_state_appear_only_when_they_change() -> None:
    c = elect(IDS, "a")
    b = c.nodes["b"]
    b.step(Heartbeat(2, "a", "b", 2, 99))
    rd = b.ready()
    assert rd.hard_state is None and rd.soft_state is None and len(rd.persisted_messages) == 1
    b.advance()
    c.nodes["a"].transfer_leadership("b")
    c.deliver()
    assert c.nodes["a"].soft_state == SoftState(Role.FOLLOWER, "b", 3)


def test_a_misrouted_message_is_refused() -> None:
    node = RaftNode.bootstrap("a", IDS, config(), random.Random(0))
    with pytest.raises(RaftInvariantError, match="delivered to 'a'"):
        node.step(Heartbeat(1, "b", "c", 0, 0))


def test_proposals_on_a_follower_name_the_leader() -> None:
    c = elect(IDS, "a")
    with pytest.raises(NotLeader) as info:
        c.nodes["b"].propose(b"x")
    assert info.value.leader_hint == "a"
    with pytest.raises(NotLeader) as info:
        Cluster(IDS).nodes["b"].propose(b"x")
    assert info.value.leader_hint is None


def test_a_lost_proposal_shows_as_another_term_at_its_index() -> None:
    c = elect(IDS, "a")
    a = c.nodes["a"]
    c.isolate("a")
    index, term = a.propose(b"will be lost"), a.term
    c.campaign("b")
    c.propose("b", b"wins the index")
    c.heal()
    c.tick(n=3)
    committed = {e.index: e for e in c.applied["a"]}
    assert committed[index].term != term  # the caller fails that request: it never commits
    assert b"will be lost" not in c.data_applied("a")


def test_a_batch_gets_consecutive_indexes_in_one_term() -> None:
    c = elect(IDS, "a")
    first = c.nodes["a"].propose_batch([b"1", b"2", b"3"])
    c.deliver()
    assert first == 3 and c.data_applied("c") == [b"1", b"2", b"3"]
    assert {e.term for e in c.applied["c"][-3:]} == {2}


def test_a_restart_resumes_from_what_was_persisted() -> None:
    c = elect(IDS, "a")
    for n in range(3):
        c.propose("a", b"%d" % n)
    before = {i: (n.term, n.vote, n.commit_index, n.last_index) for i, n in c.nodes.items()}
    for i in IDS:
        c.crash(i)
        c.restart(i)
    after = {i: (n.term, n.vote, n.commit_index, n.last_index) for i, n in c.nodes.items()}
    assert after == before
    assert all(n.role is Role.FOLLOWER for n in c.nodes.values())
    c.tick(n=40)
    leader = c.leader()
    assert leader is not None
    c.propose(leader, b"after restart")
    assert all(c.data_applied(i) == [b"0", b"1", b"2", b"after restart"] for i in IDS)


def test_a_crash_before_the_persist_loses_only_unacknowledged_state() -> None:
    c = elect(IDS, "a")
    c.hold.add("b")
    c.propose("a", b"x")
    rd = c.nodes["b"].ready()  # b's Ready with the entry and its acknowledgement...
    assert rd.entries and rd.persisted_messages
    c.crash("b")  # ...is lost before the persist: no acknowledgement was ever sent
    b = c.restart("b")
    assert b.last_index == 2
    c.tick(n=3)
    assert c.data_applied("b") == [b"x"]


def test_committed_entries_beyond_the_stored_log_are_detected_at_restart() -> None:
    with pytest.raises(RaftInvariantError, match="was truncated or lost"):
        RaftNode("a", config(), random.Random(0), hard_state=HardState(2, None, 5))
