"""SnapshotStore: atomic saves, streaming reads, retention, and the engine -> store -> engine path."""

from __future__ import annotations

import errno
import os

import pytest

from global_kv._errors import RaftInvariantError, StorageError, StorageFull
from global_kv.raft import ConfState, SnapshotMeta
from global_kv.storage import SnapshotStore, _files

CONF = ConfState(voters=("a", "b", "c"), learners=("d",))


def test_empty_store(tmp_path):
    with SnapshotStore(tmp_path) as store:
        assert store.latest() is None and store.open_latest() is None and store.list_snapshots() == []


def test_save_and_stream_back(tmp_path):
    chunks = [os.urandom(n) for n in (1, 1000, 0, 300_000, 5)]
    with SnapshotStore(tmp_path) as store:
        meta = SnapshotMeta(10, 3, CONF)
        info = store.save(meta, iter(chunks))
        assert info.meta == meta and info.path.exists() and info.size_bytes == info.path.stat().st_size
    with SnapshotStore(tmp_path) as store:
        assert store.latest() == meta
        with store.open_latest() as reader:
            assert reader.meta == meta
            assert list(reader.chunks()) == [c for c in chunks if c]


def test_open_finds_the_snapshot_a_log_names_even_when_a_newer_one_was_saved(tmp_path):
    # A crash after saving snapshot 40 but before the Raft log was compacted behind it:
    # the log still names 30, which a store keeping two snapshots still has.
    with SnapshotStore(tmp_path, retain=2) as store:
        store.save(SnapshotMeta(30, 2, CONF), [b"at 30"])
        store.save(SnapshotMeta(40, 2, CONF), [b"at 40"])
    with SnapshotStore(tmp_path, retain=2) as store:
        with store.open(SnapshotMeta(30, 2, CONF)) as reader:
            assert reader.meta.index == 30 and b"".join(reader.chunks()) == b"at 30"
        assert store.open(SnapshotMeta(30, 1, CONF)) is None  # same index, another term
        assert store.open(SnapshotMeta(20, 2, CONF)) is None


def test_newest_is_kept_and_older_deleted_after_commit(tmp_path):
    store = SnapshotStore(tmp_path, retain=2)
    for i in range(1, 5):
        store.save(SnapshotMeta(i * 10, 1, CONF), [b"%d" % i])
    assert [m.index for m in store.list_snapshots()] == [30, 40]
    with store.open_latest() as r:
        assert list(r.chunks()) == [b"4"]
    store.close()


def test_nothing_is_visible_before_commit_and_abort_leaves_nothing(tmp_path):
    store = SnapshotStore(tmp_path)
    store.save(SnapshotMeta(5, 1), [b"old"])
    with store.create(SnapshotMeta(9, 1)) as w:
        w.write(b"partial")
        assert store.latest().index == 5  # not committed yet
    # leaving the block without commit() aborted it
    assert store.latest().index == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    w2 = store.create(SnapshotMeta(9, 1))
    w2.write(b"new")
    w2.commit()
    with pytest.raises(StorageError):
        w2.write(b"more")
    assert store.latest().index == 9
    store.close()


def test_older_snapshot_than_the_newest_is_refused(tmp_path):
    with SnapshotStore(tmp_path) as store:
        store.save(SnapshotMeta(10, 2), [b"x"])
        with pytest.raises(RaftInvariantError):
            store.create(SnapshotMeta(9, 2))
        store.save(SnapshotMeta(10, 2), [b"replaced"])  # the same point may be rewritten
        with store.open_latest() as r:
            assert list(r.chunks()) == [b"replaced"]


def test_failed_commit_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    store = SnapshotStore(tmp_path)
    store.save(SnapshotMeta(5, 1), [b"previous"])

    def failing(fd):
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(_files, "fdatasync", failing)
    with pytest.raises(StorageError, match="I/O error"):
        store.save(SnapshotMeta(9, 1), [b"new"])
    monkeypatch.undo()
    assert store.latest().index == 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "LOCK") == [
        "snapshot-00000000000000000005-00000000000000000001.snap"
    ]
    store.close()


def test_enospc_while_writing_is_storage_full_and_cleans_up(tmp_path, monkeypatch):
    store = SnapshotStore(tmp_path)
    store.save(SnapshotMeta(5, 1), [b"previous"])
    real = _files.pwrite
    calls = []

    def filling(fd, data, off):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, off)

    monkeypatch.setattr(_files, "pwrite", filling)
    with pytest.raises(StorageFull):
        store.save(SnapshotMeta(9, 1), [b"a" * 100, b"b" * 100, b"c" * 100])
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    with store.open_latest() as r:
        assert r.meta.index == 5 and list(r.chunks()) == [b"previous"]
    store.close()


def test_reopen_removes_temp_files_and_extra_snapshots(tmp_path):
    store = SnapshotStore(tmp_path, retain=3)
    for i in (1, 2, 3):
        store.save(SnapshotMeta(i, 1), [b"x"])
    store.close()
    (tmp_path / ".tmp-snapshot-crashed").write_bytes(b"half")
    with SnapshotStore(tmp_path, retain=1) as store:
        assert [m.index for m in store.list_snapshots()] == [3]
    assert not (tmp_path / ".tmp-snapshot-crashed").exists()


def test_engine_snapshot_through_the_store_into_another_engine(tmp_path, make_engine):
    src = make_engine("leveldb")
    src.write_batch(puts={b"k%04d" % i: os.urandom(200) for i in range(2000)}, applied_index=77)
    with SnapshotStore(tmp_path / "snaps") as store:
        with src.snapshot_chunks(chunk_size=16_384) as stream:
            store.save(SnapshotMeta(stream.last_index, 4, CONF), stream)
        dst = make_engine("lmdb")
        with store.open_latest() as reader:
            dst.restore_chunks(reader.chunks(), reader.meta.index)
    assert list(dst.range()) == list(src.range())
    assert dst.applied_index() == 77
