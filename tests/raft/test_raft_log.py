"""The in-memory log: Figure 2's AppendEntries receiver rules, marks and compaction."""

from __future__ import annotations

import pytest

from global_kv._errors import RaftInvariantError
from global_kv.raft import ConfState, Entry, EntryType, SnapshotMeta, encode_conf_entry
from global_kv.raft._log import RaftLog
from global_kv.raft._ready import Snapshot


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(start + n, t, EntryType.NORMAL, f"{start + n}@{t}".encode()) for n, t in enumerate(terms)]


def make(terms: tuple[int, ...] = (), committed: int = 0, snap: SnapshotMeta | None = None) -> RaftLog:
    meta = snap or SnapshotMeta()
    log = RaftLog(
        Snapshot(meta, b"s"),
        ents(*terms, start=meta.index + 1),
        committed=max(committed, meta.index),
        applied=meta.index,
    )
    return log


def terms_of(log: RaftLog) -> list[int]:
    return [log.term(i) for i in range(log.first_index(), log.last_index() + 1)]  # type: ignore[misc]


def test_term_lookup_and_bounds() -> None:
    log = make((1, 1, 2))
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 3, 2)
    assert log.term(0) == 0 and log.term(3) == 2 and log.term(4) is None


def test_mismatched_prev_is_rejected_and_changes_nothing() -> None:
    log = make((1, 1, 2))
    assert log.maybe_append(3, 1, 0, ents(3, start=4)) is None
    assert terms_of(log) == [1, 1, 2]


def test_duplicate_append_does_not_truncate_a_longer_log() -> None:
    # PySyncObj's bug: a delayed copy of an earlier AppendEntries must not cut the log.
    log = make((1, 1, 2, 2, 2))
    assert log.maybe_append(1, 1, 0, ents(1, 2, start=2)) == 3
    assert terms_of(log) == [1, 1, 2, 2, 2]
    assert log.unstable_from == 6  # nothing new to persist


def test_conflicting_suffix_is_replaced() -> None:
    log = make((1, 1, 2, 2))
    assert log.maybe_append(2, 1, 0, ents(3, 3, 3, start=3)) == 5
    assert terms_of(log) == [1, 1, 3, 3, 3]
    assert log.unstable_from == 3  # storage must rewrite from the conflict


def test_partial_overlap_appends_only_new_entries() -> None:
    log = make((1, 1, 2))
    assert log.maybe_append(1, 1, 0, ents(1, 2, 2, 2, start=2)) == 5
    assert terms_of(log) == [1, 1, 2, 2, 2]
    assert log.unstable_from == 4


def test_follower_commit_is_bounded_by_the_last_new_entry() -> None:
    # Figure 2 step 5: commit = min(leaderCommit, index of last new entry), not our last
    # index: entries after the message's end may be stale ones from an older leader.
    log = make((1, 1, 2, 2, 2))
    assert log.maybe_append(1, 1, 100, ents(1, start=2)) == 2
    assert log.committed == 2


def test_conflict_with_a_committed_entry_raises() -> None:
    log = make((1, 1, 2), committed=3)
    with pytest.raises(RaftInvariantError, match="committed"):
        log.maybe_append(1, 1, 0, ents(3, 3, start=2))


def test_commit_beyond_log_raises() -> None:
    log = make((1, 1))
    with pytest.raises(RaftInvariantError, match="beyond the last entry"):
        log.commit_to(3)


@pytest.mark.parametrize(
    ("index", "term", "expected"),
    [
        (5, 5, (5, 4)),  # our entry 5 has term 4 <= 5
        (5, 3, (4, 3)),  # skip entry 5 (term 4): entry 4 has term 3
        (5, 2, (2, 2)),  # skip the whole term 3 and 4 run
        (5, 1, (1, 1)),
        (9, 3, (4, 3)),  # index beyond our log: start at our last entry
        (5, 0, (0, 0)),
    ],
)
def test_find_conflict_by_term(index: int, term: int, expected: tuple[int, int]) -> None:
    log = make((1, 2, 3, 3, 4))
    assert log.find_conflict_by_term(index, term) == expected


def test_is_up_to_date_compares_last_term_then_length() -> None:
    # Raft §5.4.1
    log = make((1, 2, 2))
    assert log.is_up_to_date(1, 3)  # higher last term wins even if shorter
    assert log.is_up_to_date(3, 2)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


def test_stable_mark_survives_an_overwrite_during_an_outstanding_ready() -> None:
    log = make((1,))
    log.append(ents(2, 2, start=2), False)
    assert log.unstable_entries()[0].index == 2
    log.trunc_mark = None  # a Ready with entries 2..3 is handed out
    assert log.maybe_append(2, 2, 0, ents(3, start=3)) == 3  # entry 3 replaced meanwhile
    log.stable_to(3)
    assert [e.term for e in log.unstable_entries()] == [3]  # storage must rewrite 3


def test_compaction_keeps_terms_and_membership_at_the_snapshot() -> None:
    conf_a = ConfState(voters=("a",))
    conf_ab = ConfState(voters=("a", "b"))
    log = RaftLog(Snapshot(), [], 0, 0)
    log.append([Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_entry(None, conf_a))], True)
    log.append(ents(1, 1, start=2), False)
    log.append([Entry(4, 1, EntryType.CONF_CHANGE, encode_conf_entry(None, conf_ab))], True)
    log.commit_to(4)
    log.applied = 3
    meta = log.compact(3, b"state")
    assert (meta.index, meta.term, meta.conf) == (3, 1, conf_a)
    assert log.conf == conf_ab and log.first_index() == 4 and log.term(3) == 1
    assert log.term(2) is None


def test_truncating_a_conf_entry_reverts_the_membership() -> None:
    conf1 = ConfState(voters=("a", "b", "c"))
    conf2 = ConfState(voters=("a", "b", "c", "d"))
    log = RaftLog(Snapshot(), [], 0, 0)
    log.append([Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_entry(None, conf1))], True)
    log.commit_to(1)
    log.maybe_append(1, 1, 1, [Entry(2, 2, EntryType.CONF_CHANGE, encode_conf_entry(None, conf2))])
    assert log.conf == conf2
    log.maybe_append(1, 1, 1, ents(3, start=2))
    assert log.conf == conf1


def test_restore_replaces_everything() -> None:
    log = make((1, 1, 2), committed=1)
    snap = Snapshot(SnapshotMeta(10, 3, ConfState(voters=("x",))), b"data")
    log.restore(snap)
    assert (log.first_index(), log.last_index(), log.committed, log.conf.voters) == (
        11,
        10,
        10,
        ("x",),
    )
    assert log.pending_snapshot is snap


def test_recovered_state_is_validated() -> None:
    with pytest.raises(RaftInvariantError, match="commit index 5 outside"):
        RaftLog(Snapshot(), ents(1, 1), committed=5, applied=0)
    with pytest.raises(RaftInvariantError, match="start at"):
        RaftLog(Snapshot(SnapshotMeta(3, 1)), ents(1, start=5), committed=3, applied=3)
    with pytest.raises(RaftInvariantError, match="not contiguous"):
        RaftLog(Snapshot(), [Entry(1, 1), Entry(3, 1)], committed=0, applied=0)
