"""Log replication (Raft §5.3, §5.4.2, thesis §10.2.1), each test tied to a rule of the paper."""

from __future__ import annotations

import random

from raft_harness import Cluster, config, elect

from global_kv.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    Message,
    RaftNode,
    Role,
)

IDS = ["a", "b", "c"]

# Figure 8 of the Raft paper, state (b)/(c): s1 led term 2 and put entry 2 on s2; s5 led
# term 3 and put its own entry 2 only on itself. Everyone has since seen term 3.
FIGURE_8 = {
    "s1": (3, [2]),
    "s2": (3, [2]),
    "s3": (3, []),
    "s4": (3, []),
    "s5": (3, [3]),
}


def _figure_8_s1_leads_term_4(allow_noop_to_s3: bool) -> Cluster:
    c = Cluster.from_logs(FIGURE_8, config(max_entries_per_msg=1))

    def only_old_entry_reaches_s3(m: Message) -> bool:
        if m.src == "s1" and m.dst in ("s4", "s5"):
            return False  # s4 and s5 hear nothing more from s1
        if m.dst == "s3" and isinstance(m, AppendEntries) and any(e.index >= 3 for e in m.entries):
            # The first probe (prev 2) is rejected by s3 anyway; later ones would carry
            # the term-4 no-op to s3.
            return allow_noop_to_s3 or c.nodes["s3"].entry_term(2) is None
        return True

    c.filter = only_old_entry_reaches_s3
    c.campaign("s1")  # votes from s2 and s3 suffice
    assert c.nodes["s1"].role is Role.LEADER and c.nodes["s1"].term == 4
    c.tick(["s1"], n=5)
    return c


def test_figure_8_leader_never_commits_an_old_term_entry_by_counting_replicas() -> None:
    # §5.4.2: entry 2 (term 2) is on a majority (s1, s2, s3), but it may still be
    # overwritten, so counting replicas must not commit it.
    c = _figure_8_s1_leads_term_4(allow_noop_to_s3=False)
    assert c.nodes["s3"].entry_term(2) == 2
    assert c.nodes["s1"].commit_index == 1
    # Why: with s1 gone, s5 (last term 3) wins votes from s3 and s4 and overwrites entry 2.
    c.isolate("s1")
    c.filter = None
    c.campaign("s5")  # term 4: s2 and s3 already voted for s1 in that term
    c.campaign("s5")  # term 5, as in the paper's (d)
    c.tick(["s5"], n=3)
    assert c.nodes["s5"].role is Role.LEADER and c.nodes["s5"].term == 5
    assert c.nodes["s3"].entry_term(2) == 3
    assert not any(e.index == 2 and e.term == 2 for log in c.applied.values() for e in log)


def test_figure_8_old_entry_commits_once_an_entry_of_the_current_term_does() -> None:
    # §5.4.2: "once an entry from the current term has been committed ... all prior
    # entries are committed indirectly because of the Log Matching Property".
    c = _figure_8_s1_leads_term_4(allow_noop_to_s3=True)
    s1 = c.nodes["s1"]
    assert s1.commit_index == 3 and s1.entry_term(3) == 4
    assert [e.term for e in c.applied["s1"] if e.index >= 2] == [2, 4]


def _follower(terms: list[int], term: int = 3) -> RaftNode:
    entries = [Entry(1, 1, EntryType.NOOP)] + [
        Entry(2 + n, t, EntryType.NORMAL, f"{2 + n}@{t}".encode()) for n, t in enumerate(terms)
    ]
    node = RaftNode(
        "b",
        config(),
        random.Random(0),
        hard_state=HardState(term, None, 1),
        entries=entries,
    )
    return node


def _ae(prev: int, prev_term: int, terms: list[int], commit: int = 1, term: int = 3) -> AppendEntries:
    ents = tuple(Entry(prev + 1 + n, t, EntryType.NORMAL, f"{prev + 1 + n}@{t}".encode()) for n, t in enumerate(terms))
    return AppendEntries(term, "a", "b", prev, prev_term, ents, commit)


def test_stale_or_duplicate_append_entries_never_truncate() -> None:
    b = _follower([2, 2, 3, 3, 3])  # entries 2..6
    b.step(_ae(1, 1, [2, 2]))  # a delayed copy of an earlier message
    b.step(_ae(3, 2, [3]))
    assert [b.entry_term(i) for i in range(1, 7)] == [1, 2, 2, 3, 3, 3]
    rd = b.ready()
    assert rd.entries == ()  # nothing to rewrite
    assert [m.index for m in rd.persisted_messages] == [
        3,
        4,
    ]  # what each message matched


def test_a_real_conflict_truncates_from_the_first_mismatch() -> None:
    b = _follower([2, 2, 2, 2])
    b.step(_ae(3, 2, [3, 3]))
    assert [b.entry_term(i) for i in range(1, 6)] == [1, 2, 2, 3, 3]
    assert b.last_index == 5
    assert [e.index for e in b.ready().entries] == [4, 5]


def test_rejection_carries_a_hint_that_skips_a_whole_term() -> None:
    b = _follower([2] * 30)
    b.step(_ae(40, 4, []))
    (resp,) = b.ready().persisted_messages
    assert isinstance(resp, AppendEntriesResponse) and resp.reject
    assert (resp.index, resp.hint_index, resp.hint_term) == (40, 31, 2)


def test_fast_backtracking_needs_round_trips_per_term_not_per_entry() -> None:
    # Follower b: 100 stale entries of term 2. Leader a: 20 of term 2, then 20 of term 4.
    c = Cluster.from_logs(
        {
            "a": (4, [2] * 20 + [4] * 20),
            "b": (4, [2] * 100),
            "c": (4, [2] * 20 + [4] * 20),
        }
    )
    c.campaign("a")
    c.tick(n=3)
    rejections = [m for m in c.sent if isinstance(m, AppendEntriesResponse) and m.src == "b" and m.reject]
    assert 1 <= len(rejections) <= 2
    assert c.nodes["b"].last_index == c.nodes["a"].last_index == 42
    assert [c.nodes["b"].entry_term(i) for i in (21, 22, 41)] == [2, 4, 4]


def test_pipelining_is_capped_by_max_inflight_and_batches_by_max_entries() -> None:
    c = elect(IDS, "a", config(max_inflight_msgs=3, max_entries_per_msg=4))
    c.blocked = {("b", "a"), ("c", "a")}  # no acknowledgements come back
    c.sent.clear()
    for n in range(30):
        c.nodes["a"].propose(b"x%d" % n)
    c.deliver()
    to_b = [m for m in c.sent if isinstance(m, AppendEntries) and m.dst == "b"]
    assert len(to_b) == 3 and all(len(m.entries) == 4 for m in to_b)
    c.heal()
    c.tick(n=6)
    assert c.nodes["b"].last_index == c.nodes["a"].last_index == 32


def test_byte_cap_splits_large_entries_but_always_sends_one() -> None:
    c = elect(IDS, "a", config(max_bytes_per_msg=100, max_entries_per_msg=50))
    c.sent.clear()
    c.nodes["a"].propose_batch([b"x" * 60] * 4 + [b"y" * 500])
    c.tick(n=8)
    sizes = [len(m.entries) for m in c.sent if isinstance(m, AppendEntries) and m.dst == "b" and m.entries]
    assert max(sizes) <= 2 and 1 in sizes
    assert c.data_applied("b")[-1] == b"y" * 500


def test_the_leader_counts_its_own_entries_only_once_persisted() -> None:
    # Thesis §10.2.1: a leader may send before persisting, but must not count itself.
    c = elect(IDS, "a")
    c.blocked = {("a", "c"), ("c", "a")}
    a = c.nodes["a"]
    c.hold.add("a")
    index = a.propose(b"v")
    rd = a.ready()
    assert [type(m) for m in rd.messages] == [
        AppendEntries,
        AppendEntries,
    ]  # sent before the persist
    c.queue.extend(rd.messages)
    c.deliver()  # b acknowledges; a has not persisted: only one durable copy of three
    assert a.commit_index == index - 1
    c.stores["a"].persist(rd)
    a.advance()
    assert a.commit_index == index


def test_follower_answers_are_sent_only_after_the_persist() -> None:
    c = elect(IDS, "a")
    c.hold.add("b")
    c.propose("a", b"v")
    rd = c.nodes["b"].ready()
    assert rd.entries and rd.messages == ()
    assert rd.persisted_messages and all(type(m) is AppendEntriesResponse for m in rd.persisted_messages)


def test_heartbeats_carry_only_what_the_follower_is_known_to_hold() -> None:
    c = elect(IDS, "a")
    c.blocked = {("a", "c")}
    c.nodes["a"].propose_batch([b"1", b"2", b"3"])
    c.deliver()
    c.heal()
    c.sent.clear()
    c.nodes["a"].tick()
    c.flush()
    beats = {m.dst: m.commit for m in c.sent if isinstance(m, Heartbeat)}
    assert beats == {"b": 5, "c": 2}


def test_a_follower_that_lost_messages_is_caught_up_by_heartbeat_answers() -> None:
    c = elect(IDS, "a")
    c.blocked = {("a", "c")}
    c.propose("a", b"lost on the way to c")
    c.heal()
    c.tick(n=4)
    assert c.data_applied("c") == [b"lost on the way to c"]


def test_log_matching_after_leader_changes_with_divergent_suffixes() -> None:
    c = elect(["a", "b", "c", "d", "e"], "a")
    c.isolate("a")
    c.nodes["a"].propose_batch([b"doomed"] * 5)
    c.campaign("b")
    c.propose("b", b"kept")
    c.heal()
    c.tick(n=5)
    logs = {i: [(e.index, e.term, e.data) for e in n.entries(1, n.last_index + 1)] for i, n in c.nodes.items()}
    assert all(log == logs["b"] for log in logs.values())
    assert all(b"doomed" not in c.data_applied(i) for i in c.nodes)
