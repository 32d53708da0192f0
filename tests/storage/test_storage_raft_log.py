"""RaftLogStore: persistence of a Ready, truncation, compaction, snapshot install, invariants."""

from __future__ import annotations

import random

import pytest

from global_kv._errors import RaftInvariantError, StorageError
from global_kv.raft import ConfState, Entry, EntryType, HardState, SnapshotMeta
from global_kv.storage import RaftLogStore, _files

CONF = ConfState(voters=("n1", "n2", "n3"))


def ents(lo: int, hi: int, term: int, size: int = 10) -> list[Entry]:
    return [Entry(i, term, EntryType.NORMAL, bytes([i % 251]) * size) for i in range(lo, hi + 1)]


def reopened(store: RaftLogStore, **kw) -> RaftLogStore:
    path = store.path
    store.close()
    return RaftLogStore(path, **kw)


def test_empty_log(tmp_path):
    with RaftLogStore(tmp_path / "log") as log:
        st = log.load()
        assert (st.hard_state, st.snapshot, st.entries) == (
            HardState(),
            SnapshotMeta(),
            [],
        )
        assert (log.first_index(), log.last_index()) == (1, 0)
        assert log.term(0) == 0


def test_save_and_reload(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    e = ents(1, 10, 1) + [
        Entry(11, 1, EntryType.CONF_CHANGE, b"conf"),
        Entry(12, 1, EntryType.NOOP),
    ]
    log.save(HardState(1, "n1", 0), e)
    log.save(HardState(1, "n1", 12))
    log = reopened(log)
    st = log.load()
    assert st.hard_state == HardState(1, "n1", 12)
    assert st.entries == e
    assert log.term(12) == 1 and log.last_index() == 12
    log.close()


def test_one_fsync_per_save_whatever_the_batch_size(tmp_path, monkeypatch):
    log = RaftLogStore(tmp_path / "log")
    calls = []
    real = _files.fdatasync
    monkeypatch.setattr(_files, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    log.save(HardState(1, "n1", 0), ents(1, 128, 1))
    assert len(calls) == 1
    log.save(None, ents(129, 129, 1))
    assert len(calls) == 2
    log.save(HardState(1, "n1", 0), [])  # unchanged hard state, no entries: nothing to do
    assert len(calls) == 2
    log.close()


def test_conflicting_suffix_is_replaced(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(1, None, 0), ents(1, 10, 1))
    log.save(HardState(2, "n2", 3), ents(6, 8, 2))  # truncate from 6, append 6..8
    assert log.last_index() == 8
    assert [log.term(i) for i in (5, 6, 8)] == [1, 2, 2]
    log = reopened(log)
    st = log.load()
    assert [(x.index, x.term) for x in st.entries] == [(i, 1) for i in range(1, 6)] + [(i, 2) for i in range(6, 9)]
    assert st.entries[6].data == ents(7, 7, 2)[0].data
    log.close()


def test_resending_committed_entries_with_same_terms_is_allowed(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(1, None, 5), ents(1, 5, 1))
    log.save(None, ents(3, 7, 1))
    assert log.last_index() == 7
    log.close()


def test_entries_reads_ranges_and_respects_max_bytes(tmp_path):
    log = RaftLogStore(tmp_path / "log", segment_bytes=4096)
    for lo in range(1, 200, 10):
        log.save(HardState(1, None, 0), ents(lo, lo + 9, 1, size=100))
    assert [x.index for x in log.entries(15, 37)] == list(range(15, 37))
    assert [x.index for x in log.entries(15, 37, max_bytes=350)] == [15, 16, 17]
    assert [x.index for x in log.entries(15, 37, max_bytes=1)] == [15]
    assert log.entries(40, 40) == []
    with pytest.raises(IndexError):
        log.entries(0, 3)
    with pytest.raises(IndexError):
        log.entries(5, 202)
    with pytest.raises(IndexError):
        log.term(201)
    assert log.statistics().segments > 3
    log.close()


def test_compaction_drops_entries_and_segments(tmp_path):
    log = RaftLogStore(tmp_path / "log", segment_bytes=4096)
    for lo in range(1, 300, 10):
        log.save(HardState(1, "n1", lo + 9), ents(lo, lo + 9, 1, size=100))
    before = log.statistics()
    meta = SnapshotMeta(250, 1, CONF)
    log.compact(meta)
    after = log.statistics()
    assert after.segments < before.segments and after.size_bytes < before.size_bytes
    assert (log.first_index(), log.last_index()) == (251, 300)
    assert log.term(250) == 1
    with pytest.raises(IndexError):
        log.entries(250, 252)
    log = reopened(log, segment_bytes=4096)
    st = log.load()
    assert st.snapshot == meta
    assert [x.index for x in st.entries] == list(range(251, 301))
    assert st.hard_state.commit == 300
    log.compact(SnapshotMeta(300, 1, CONF))
    log = reopened(log, segment_bytes=4096)
    st = log.load()
    assert st.entries == [] and log.first_index() == 301 and log.last_index() == 300
    log.save(None, ents(301, 302, 1))
    assert [x.index for x in log.load().entries] == [301, 302]
    log.close()


def test_install_snapshot_that_matches_keeps_the_suffix(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(2, None, 4), ents(1, 5, 1) + ents(6, 9, 2))
    meta = SnapshotMeta(6, 2, CONF)
    log.save(HardState(2, None, 6), snapshot=meta)
    log = reopened(log)
    st = log.load()
    assert st.snapshot == meta and [x.index for x in st.entries] == [7, 8, 9]
    log.close()


def test_install_snapshot_that_conflicts_discards_the_log(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(2, None, 4), ents(1, 5, 1) + ents(6, 9, 2))
    meta = SnapshotMeta(20, 3, CONF)
    log.save(HardState(3, None, 20), ents(21, 22, 3), snapshot=meta)
    log = reopened(log)
    st = log.load()
    assert st.snapshot == meta and [(x.index, x.term) for x in st.entries] == [
        (21, 3),
        (22, 3),
    ]
    assert log.first_index() == 21
    log.close()


@pytest.mark.parametrize(
    "setup, bad",
    [
        (
            lambda l: l.save(HardState(1, None, 0), ents(1, 3, 1)),
            lambda l: l.save(None, ents(5, 6, 1)),
        ),  # gap
        (
            lambda l: l.save(HardState(1, None, 3), ents(1, 3, 1)),
            lambda l: l.save(HardState(2, None, 3), ents(2, 4, 2)),
        ),  # overwrite committed
        (
            lambda l: l.save(HardState(3, "a", 0)),
            lambda l: l.save(HardState(2, "a", 0)),
        ),  # term backwards
        (
            lambda l: l.save(HardState(3, "a", 0)),
            lambda l: l.save(HardState(3, "b", 0)),
        ),  # vote changed in term
        (
            lambda l: l.save(HardState(1, None, 2), ents(1, 3, 1)),
            lambda l: l.save(HardState(1, None, 1)),
        ),  # commit back
        (
            lambda l: l.save(HardState(1, None, 0), ents(1, 3, 1)),
            lambda l: l.save(HardState(1, None, 4)),
        ),  # commit past end
        (
            lambda l: l.save(HardState(2, None, 0), ents(1, 3, 2)),
            lambda l: l.save(None, ents(4, 4, 1)),
        ),  # term decreases
        (
            lambda l: l.save(HardState(1, None, 0)),
            lambda l: l.save(None, ents(1, 1, 5)),
        ),  # entry term > current
        (
            lambda l: l.save(HardState(1, None, 0)),
            lambda l: l.save(None, [Entry(1, 1), Entry(3, 1)]),
        ),  # not contiguous
        (
            lambda l: l.save(HardState(1, None, 2), ents(1, 3, 1)),
            lambda l: l.compact(SnapshotMeta(3, 1)),
        ),  # uncommitted
        (
            lambda l: l.save(HardState(1, None, 3), ents(1, 3, 1)),
            lambda l: l.compact(SnapshotMeta(2, 7)),
        ),  # wrong term
        (
            lambda l: l.save(HardState(1, None, 3), ents(1, 3, 1)),
            lambda l: l.compact(SnapshotMeta(9, 1)),
        ),  # beyond log
        (
            lambda l: l.save(HardState(1, None, 3), ents(1, 3, 1)),
            lambda l: l.save(None, snapshot=SnapshotMeta(2, 9)),
        ),  # conflicts commit
    ],
)
def test_invariant_violations_raise_and_write_nothing(tmp_path, setup, bad):
    log = RaftLogStore(tmp_path / "log")
    setup(log)
    before = log.load()
    size = log.statistics().size_bytes
    with pytest.raises(RaftInvariantError):
        bad(log)
    assert log.statistics().size_bytes == size
    log = reopened(log)
    assert log.load() == before
    log.close()


def test_second_open_is_refused_and_closed_log_raises(tmp_path):
    log = RaftLogStore(tmp_path / "log")
    with pytest.raises(StorageError, match="already open"):
        RaftLogStore(tmp_path / "log")
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.save(HardState(1, None, 0))
    RaftLogStore(tmp_path / "log").close()


class Model:
    """The log as plain Python values, changed by the same operations as the store."""

    def __init__(self) -> None:
        self.hs = HardState()
        self.snap = SnapshotMeta()
        self.entries: list[Entry] = []

    def last(self) -> int:
        return self.entries[-1].index if self.entries else self.snap.index

    def term_at(self, i: int) -> int:
        if i == self.snap.index:
            return self.snap.term
        return self.entries[i - self.snap.index - 1].term


def random_step(rng: random.Random, log: RaftLogStore, m: Model) -> None:
    op = rng.random()
    if op < 0.45:  # leader appends, maybe with a commit advance
        n = rng.randint(1, 20)
        new = [
            Entry(
                m.last() + k + 1,
                m.hs.term or 1,
                EntryType.NORMAL,
                rng.randbytes(rng.randint(0, 300)),
            )
            for k in range(n)
        ]
        hs = HardState(m.hs.term or 1, m.hs.vote, m.hs.commit)
        log.save(hs, new)
        m.hs, m.entries = hs, m.entries + new
    elif op < 0.65 and m.last() > m.hs.commit:  # new term: a conflicting suffix after commit
        start = rng.randint(m.hs.commit + 1, m.last())
        term = m.hs.term + 1
        hs = HardState(term, f"n{rng.randint(1, 3)}", m.hs.commit)
        new = [Entry(start + k, term, EntryType.NORMAL, rng.randbytes(20)) for k in range(rng.randint(1, 5))]
        log.save(hs, new)
        m.hs = hs
        m.entries = [e for e in m.entries if e.index < start] + new
    elif op < 0.85 and m.last() > m.hs.commit:
        hs = HardState(m.hs.term, m.hs.vote, rng.randint(m.hs.commit + 1, m.last()))
        log.save(hs)
        m.hs = hs
    elif m.hs.commit > m.snap.index:
        i = rng.randint(m.snap.index + 1, m.hs.commit)
        meta = SnapshotMeta(i, m.term_at(i), CONF)
        log.compact(meta)
        m.entries = [e for e in m.entries if e.index > i]
        m.snap = meta


@pytest.mark.parametrize("seed", range(3))
def test_random_histories_survive_reopen(tmp_path, seed):
    rng = random.Random(seed)
    log = RaftLogStore(tmp_path / "log", segment_bytes=4096)
    m = Model()
    for step in range(200):
        random_step(rng, log, m)
        if rng.random() < 0.05:
            log = reopened(log, segment_bytes=4096)
        if step % 25 == 0 or rng.random() < 0.05:
            st = log.load()
            assert (st.hard_state, st.snapshot, st.entries) == (
                m.hs,
                m.snap,
                m.entries,
            ), (seed, step)
    log = reopened(log, segment_bytes=4096)
    st = log.load()
    assert (st.hard_state, st.snapshot, st.entries) == (m.hs, m.snap, m.entries)
    log.close()
