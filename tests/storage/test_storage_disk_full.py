"""A full disk (a real 2 MiB tmpfs, and ENOSPC injected at the file layer) and failing
fsyncs: writes fail with a clear StorageError, nothing acknowledged is lost, and the
store works again once there is space (or after a reopen, when fsync itself failed)."""

from __future__ import annotations

import errno
import logging

import pytest

from global_kv._errors import StorageError, StorageFull
from global_kv.raft import Entry, HardState, SnapshotMeta
from global_kv.storage import RaftLogStore, SnapshotStore, _files, open_engine


def fill_log_until_full(log: RaftLogStore) -> list[Entry]:
    saved: list[Entry] = []
    for i in range(1, 100_000):
        e = Entry(i, 1, data=bytes([i % 256]) * 20_000)
        try:
            log.save(HardState(1, "n1", i - 1), [e])
        except StorageFull as exc:
            assert "no space left" in str(exc) and "free disk space" in str(exc)
            return saved
        saved.append(e)
    raise AssertionError("the disk never filled up")


def test_raft_log_on_a_full_tmpfs(small_tmpfs):
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"x" * 300_000)
    log = RaftLogStore(small_tmpfs / "log")
    saved = fill_log_until_full(log)
    assert len(saved) > 20
    assert log.last_index() == len(saved)  # the failed save changed nothing
    with pytest.raises(StorageFull):  # still full: still refused, still clean
        log.save(None, [Entry(len(saved) + 1, 1, data=b"y" * 100_000)])
    log.close()
    log = RaftLogStore(small_tmpfs / "log")
    assert log.load().entries == saved  # every acknowledged entry, no torn tail
    ballast.unlink()  # free space: writes work again
    log.save(HardState(1, "n1", len(saved)), [Entry(len(saved) + 1, 1, data=b"after")])
    log.close()
    log = RaftLogStore(small_tmpfs / "log")
    assert log.load().entries == saved + [Entry(len(saved) + 1, 1, data=b"after")]
    log.close()


def test_snapshot_store_on_a_full_tmpfs(small_tmpfs):
    store = SnapshotStore(small_tmpfs / "snaps")
    store.save(SnapshotMeta(1, 1), [b"a" * 500_000])
    with pytest.raises(StorageFull):
        store.save(SnapshotMeta(2, 1), [b"b" * 500_000] * 4)
    assert [p.name for p in (small_tmpfs / "snaps").iterdir() if p.name.startswith(".tmp-")] == []
    with store.open_latest() as r:
        assert r.meta.index == 1 and b"".join(r.chunks()) == b"a" * 500_000
    store.close()


@pytest.mark.parametrize("name", ["leveldb", "lmdb", "hybrid"])
def test_engines_on_a_full_tmpfs(small_tmpfs, name):
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"x" * 200_000)
    options = {"checkpoint_bytes": 256 << 10} if name == "hybrid" else {}
    e = open_engine(name, small_tmpfs, **options)
    acked: dict[bytes, bytes] = {}
    with pytest.raises(StorageFull):
        for i in range(1, 10_000):
            k, v = b"k%05d" % i, bytes([i % 256]) * 10_000
            e.write_batch(puts={k: v}, applied_index=i)
            acked[k] = v
    assert len(acked) > 5
    e.close()
    ballast.unlink()
    e = open_engine(name, small_tmpfs, **options)
    assert e.applied_index() == len(acked)
    assert dict(e.range()) == acked
    e.put(b"after", b"space was freed")
    assert e.get(b"after") == b"space was freed"
    e.close()


def test_injected_enospc_mid_append_cuts_back_and_recovers(tmp_path, monkeypatch, caplog):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(1, "n1", 0), [Entry(i, 1, data=b"d") for i in range(1, 11)])
    size = log.statistics().size_bytes
    real = _files.pwrite

    def short_then_full(fd, data, off):
        real(fd, bytes(data[: len(data) // 2]), off)  # half the record reaches the file...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(_files, "pwrite", short_then_full)
    with pytest.raises(StorageFull) as info:
        log.save(HardState(1, "n1", 5), [Entry(11, 1, data=b"x" * 5000)])
    assert isinstance(info.value, StorageError) and info.value.path.endswith(".log")
    assert log.statistics().size_bytes == size  # the partial record was cut off again
    assert log.last_index() == 10 and log.hard_state().commit == 0
    monkeypatch.undo()
    log.save(HardState(1, "n1", 5), [Entry(11, 1, data=b"x" * 5000)])
    log.close()
    with caplog.at_level(logging.WARNING, logger="global_kv.storage"):
        log = RaftLogStore(tmp_path / "log")
    assert "torn" not in caplog.text
    assert [e.index for e in log.load().entries] == list(range(1, 12))
    log.close()


def test_failed_fsync_poisons_the_log_until_reopened(tmp_path, monkeypatch):
    log = RaftLogStore(tmp_path / "log")
    log.save(HardState(1, "n1", 0), [Entry(1, 1)])

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_files, "fdatasync", eio)
    with pytest.raises(StorageError, match="fdatasync failed"):
        log.save(None, [Entry(2, 1)])
    monkeypatch.undo()
    # After a failed fsync nobody knows what is on disk: refuse, don't guess.
    with pytest.raises(StorageError, match="reopen"):
        log.save(None, [Entry(2, 1)])
    log.close()
    log = RaftLogStore(tmp_path / "log")
    assert log.last_index() in (
        1,
        2,
    )  # the unacknowledged save may or may not have landed
    assert log.load().entries[0] == Entry(1, 1)
    log.close()


def test_injected_enospc_in_hybrid_engine_and_checkpoint(tmp_path, monkeypatch):
    e = open_engine("hybrid", tmp_path, checkpoint_bytes=8 << 10)
    e.write_batch(puts={b"a": b"1"}, applied_index=1)

    def full(fd, data, off):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files, "pwrite", full)
    with pytest.raises(StorageFull):
        e.write_batch(puts={b"b": b"2"}, applied_index=2)
    with pytest.raises(StorageFull):
        e.compact()  # a checkpoint that cannot be written
    assert (e.get(b"b"), e.applied_index()) == (None, 1)
    monkeypatch.undo()
    for i in range(2, 40):  # crosses checkpoints now that writes succeed
        e.write_batch(puts={b"k%d" % i: b"v" * 500}, applied_index=i)
    e.close()
    e = open_engine("hybrid", tmp_path, checkpoint_bytes=8 << 10)
    assert e.applied_index() == 39 and e.get(b"a") == b"1" and e.get(b"k39") == b"v" * 500
    assert [p.name for p in e.path.iterdir() if p.name.startswith(".tmp-")] == []
    e.close()
