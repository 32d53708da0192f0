"""Single-server membership changes (thesis §4.1-4.2) and leadership transfer (§3.10)."""

from __future__ import annotations

import pytest
from raft_harness import Cluster, config, elect

from global_kv._errors import (
    ConfChangeRejected,
    LeadershipTransferInProgress,
    NotLeader,
    TransferRejected,
)
from global_kv.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    RequestVote,
    Role,
    TimeoutNow,
    decode_conf_entry,
    encode_conf_entry,
)

IDS = ["a", "b", "c"]
ADD, LEARNER, REMOVE = (
    ConfChangeType.ADD_VOTER,
    ConfChangeType.ADD_LEARNER,
    ConfChangeType.REMOVE_NODE,
)


def test_an_added_server_learns_the_log_and_the_membership_by_replication() -> None:
    c = elect(IDS, "a")
    c.propose("a", b"before")
    c.add_empty("d")
    assert not c.nodes["d"].conf.voters  # an empty replica knows nothing, never campaigns
    index = c.nodes["a"].propose_conf_change(ConfChange(ADD, "d"))
    c.tick(n=3)
    d = c.nodes["d"]
    assert d.conf.voters == ("a", "b", "c", "d") and d.commit_index >= index
    assert c.data_applied("d") == [b"before"]
    change, conf = decode_conf_entry(c.applied["d"][-1].data)
    assert change == ConfChange(ADD, "d") and conf.voters == d.conf.voters


def test_a_change_takes_effect_when_appended_and_counts_in_the_quorum() -> None:
    c = elect(IDS, "a")
    c.add_empty("d")
    c.add_empty("e")
    c.nodes["a"].propose_conf_change(ConfChange(ADD, "d"))
    c.tick(n=3)
    c.nodes["a"].propose_conf_change(ConfChange(ADD, "e"))
    c.tick(n=3)
    # Five voters now: with d and e cut off, a, b, c still commit; with b and c too, not.
    c.blocked = {("a", "d"), ("a", "e")}
    index = c.propose("a", b"3 of 5")
    assert c.nodes["a"].commit_index == index
    c.blocked |= {("a", "b"), ("a", "c")}
    index = c.propose("a", b"1 of 5")
    assert c.nodes["a"].commit_index == index - 1


def test_one_change_at_a_time() -> None:
    c = elect(IDS, "a")
    c.blocked = {("a", "b"), ("a", "c")}
    c.nodes["a"].propose_conf_change(ConfChange(ADD, "d"))
    with pytest.raises(ConfChangeRejected, match="not committed yet"):
        c.nodes["a"].propose_conf_change(ConfChange(ADD, "e"))


def test_a_new_leader_commits_an_entry_of_its_term_before_any_change() -> None:
    # The fix for the single-server change bug (Ongaro, raft-dev 2015).
    c = Cluster(IDS)
    c.hold.add("a")
    c.nodes["a"].campaign()
    rd = c.nodes["a"].ready()
    c.stores["a"].persist(rd)
    c.nodes["a"].advance()
    c.queue.extend(rd.persisted_messages)
    c.deliver()
    assert c.nodes["a"].role is Role.LEADER
    with pytest.raises(ConfChangeRejected, match="own term"):
        c.nodes["a"].propose_conf_change(ConfChange(ADD, "d"))
    c.hold.clear()
    c.tick(n=2)
    c.nodes["a"].propose_conf_change(ConfChange(ADD, "d"))


def test_conf_changes_only_on_the_leader() -> None:
    c = elect(IDS, "a")
    with pytest.raises(NotLeader) as info:
        c.nodes["b"].propose_conf_change(ConfChange(ADD, "d"))
    assert info.value.leader_hint == "a"


def test_removing_a_follower_shrinks_the_quorum() -> None:
    c = elect(IDS, "a")
    c.nodes["a"].propose_conf_change(ConfChange(REMOVE, "c"))
    c.tick(n=3)
    assert c.nodes["a"].conf.voters == ("a", "b") and "c" not in c.nodes["a"].status().peers
    assert c.nodes["c"].conf.voters == ("a", "b")  # it was sent its own removal
    c.isolate("c")
    index = c.propose("a", b"without c")
    assert c.nodes["a"].commit_index == index
    c.tick(["c"], n=60)
    assert c.nodes["c"].role is Role.FOLLOWER  # it knows it is out: never campaigns


def test_a_removed_leader_leads_until_the_change_commits_then_hands_over() -> None:
    c = elect(IDS, "a")
    c.sent.clear()
    index = c.nodes["a"].propose_conf_change(ConfChange(REMOVE, "a"))
    c.deliver()
    a = c.nodes["a"]
    assert a.role is Role.FOLLOWER and a.commit_index >= index
    assert any(isinstance(m, TimeoutNow) for m in c.sent)
    c.tick(["b", "c"], n=2)
    leader = c.leader()
    assert leader in ("b", "c") and c.nodes[leader].term == 3
    c.tick(["a"], n=50)
    assert a.role is Role.FOLLOWER


def test_a_learner_replicates_but_neither_votes_nor_counts() -> None:
    c = elect(IDS, "a")
    c.add_empty("l")
    c.nodes["a"].propose_conf_change(ConfChange(LEARNER, "l"))
    c.tick(n=3)
    c.propose("a", b"x")
    c.tick(n=2)
    assert c.data_applied("l") == [b"x"] and c.nodes["l"].conf.learners == ("l",)
    c.tick(["l"], n=60)
    assert c.nodes["l"].role is Role.FOLLOWER  # a learner never campaigns
    # Promote it: now it is a voter.
    c.nodes["a"].propose_conf_change(ConfChange(ADD, "l"))
    c.tick(n=3)
    assert c.nodes["l"].conf.voters == ("a", "b", "c", "l")


def test_a_conf_entry_overwritten_by_a_new_leader_reverts_the_membership() -> None:
    c = Cluster.from_logs({"a": (2, []), "b": (2, []), "c": (2, [])})
    b = c.nodes["b"]
    conf_d = encode_conf_entry(ConfChange(ADD, "d"), ConfState(("a", "b", "c", "d")))
    from global_kv.raft import AppendEntries

    b.step(AppendEntries(2, "a", "b", 1, 1, (Entry(2, 2, EntryType.CONF_CHANGE, conf_d),), 1))
    assert b.conf.voters == ("a", "b", "c", "d")
    b.step(AppendEntries(3, "c", "b", 1, 1, (Entry(2, 3, EntryType.NOOP),), 1))
    assert b.conf.voters == ("a", "b", "c")


def test_transfer_to_an_up_to_date_follower() -> None:
    c = elect(IDS, "a")
    c.nodes["a"].transfer_leadership("b")
    c.deliver()
    assert c.nodes["b"].role is Role.LEADER and c.nodes["b"].term == 3
    assert c.nodes["a"].role is Role.FOLLOWER and c.nodes["a"].leader == "b"


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    c = elect(IDS, "a")
    c.blocked = {("a", "c")}
    for n in range(5):
        c.propose("a", b"%d" % n)
    c.sent.clear()
    c.nodes["a"].transfer_leadership("c")
    with pytest.raises(LeadershipTransferInProgress) as info:
        c.nodes["a"].propose(b"refused")
    assert isinstance(info.value, NotLeader) and info.value.leader_hint == "c"
    c.heal()
    c.tick(["a"], n=2)
    assert c.nodes["c"].role is Role.LEADER
    assert c.data_applied("c")[:5] == [b"%d" % n for n in range(5)]
    timeout_now = [m for m in c.sent if isinstance(m, TimeoutNow)]
    assert timeout_now and timeout_now[0].dst == "c"


def test_transfer_is_abandoned_after_an_election_timeout() -> None:
    c = elect(IDS, "a")
    c.isolate("c")
    c.nodes["a"].transfer_leadership("c")
    c.tick(["a", "b"], n=10)
    assert c.nodes["a"].transferee is None and c.nodes["a"].role is Role.LEADER
    c.propose("a", b"accepted again")


def test_transfer_requests_are_checked() -> None:
    c = elect(IDS, "a")
    with pytest.raises(TransferRejected, match="not a voter"):
        c.nodes["a"].transfer_leadership("zz")
    with pytest.raises(NotLeader):
        c.nodes["b"].transfer_leadership("c")


def test_timeout_now_bypasses_the_followers_lease() -> None:
    c = elect(IDS, "a", config(check_quorum=True, pre_vote=True))
    c.nodes["b"].step(RequestVote(5, "c", "b", 99, 9))  # an ordinary candidate is ignored
    assert c.nodes["b"].term == 2
    c.nodes["a"].transfer_leadership("c")
    c.deliver()
    assert c.nodes["c"].role is Role.LEADER and c.nodes["c"].term == 3
