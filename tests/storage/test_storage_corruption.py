"""Damaged files: torn tails are cut with a warning, any other damage stops the open.

Bytes are flipped in the middle and at the tail of the Raft log, the hybrid engine's
WAL and checkpoint, snapshot files, and LevelDB / LMDB data files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from global_kv._errors import StorageCorrupted
from global_kv.raft import Entry, HardState, SnapshotMeta
from global_kv.storage import (
    HybridStorage,
    LevelDBStorage,
    LMDBStorage,
    RaftLogStore,
    SnapshotStore,
)

LOGGER = "global_kv.storage"


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("wal-*.log"))


def build_log(path: Path, batches: int = 20, **kw) -> list[int]:
    """A log of `batches` saves of 5 entries each; returns each record's end offset."""
    log = RaftLogStore(path, **kw)
    ends = []
    for b in range(batches):
        lo = b * 5 + 1
        log.save(
            HardState(1, "n1", lo - 1),
            [Entry(i, 1, data=b"%06d" % i * 20) for i in range(lo, lo + 5)],
        )
        ends.append(log.statistics().size_bytes)
    log.close()
    return ends


@pytest.mark.parametrize("cut", [1, 7, 12, 13, 300])
def test_torn_final_record_is_cut_with_a_warning(tmp_path, caplog, cut):
    ends = build_log(tmp_path)
    seg = segments(tmp_path)[-1]
    os.truncate(seg, ends[-1] - cut)  # an append interrupted part way
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        log = RaftLogStore(tmp_path)
    assert "torn" in caplog.text
    assert log.last_index() == 95  # the last save (96..100) is gone, everything before is intact
    assert [e.index for e in log.load().entries] == list(range(1, 96))
    log.save(None, [Entry(96, 1, data=b"new")])  # and the log goes on from there
    log.close()
    log = RaftLogStore(tmp_path)
    assert log.load().entries[-1] == Entry(96, 1, data=b"new")
    log.close()


def test_zero_filled_tail_is_treated_as_torn(tmp_path, caplog):
    build_log(tmp_path)
    with open(segments(tmp_path)[-1], "ab") as f:
        f.write(b"\x00" * 5000)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        log = RaftLogStore(tmp_path)
    assert "zero-filled" in caplog.text and log.last_index() == 100
    log.close()


@pytest.mark.parametrize("where", ["payload", "header"])
def test_flip_in_the_middle_raises_naming_file_and_index(tmp_path, where):
    ends = build_log(tmp_path)
    seg = segments(tmp_path)[-1]
    start_of_record_10 = ends[9]  # record 11 holds entries 51..55
    flip(seg, start_of_record_10 + (40 if where == "payload" else 2))
    with pytest.raises(StorageCorrupted) as info:
        RaftLogStore(tmp_path)
    assert info.value.path == str(seg)
    assert info.value.index == 51
    assert "checksum" in info.value.detail


def test_flip_in_the_final_record_is_corruption_not_a_torn_write(tmp_path):
    """A complete, synced final record that fails its checksum was acknowledged: refusing
    to start is right; cutting it off would silently lose a vote or an entry."""
    ends = build_log(tmp_path)
    seg = segments(tmp_path)[-1]
    flip(seg, ends[-1] - 3)
    with pytest.raises(StorageCorrupted) as info:
        RaftLogStore(tmp_path)
    assert info.value.index == 96


def test_damage_in_an_earlier_segment_raises(tmp_path):
    build_log(tmp_path, batches=40, segment_bytes=4096)
    segs = segments(tmp_path)
    assert len(segs) >= 3
    os.truncate(segs[1], segs[1].stat().st_size - 4)  # torn, but not the last segment
    with pytest.raises(StorageCorrupted, match="not the last one"):
        RaftLogStore(tmp_path, segment_bytes=4096)


def test_missing_middle_segment_raises(tmp_path):
    build_log(tmp_path, batches=40, segment_bytes=4096)
    segs = segments(tmp_path)
    segs[1].unlink()
    with pytest.raises(StorageCorrupted, match="missing"):
        RaftLogStore(tmp_path, segment_bytes=4096)


def test_snapshot_file_damage_is_detected_while_streaming(tmp_path):
    store = SnapshotStore(tmp_path)
    data = [bytes([i]) * 10_000 for i in range(10)]
    info = store.save(SnapshotMeta(7, 2), data)
    store.close()
    flip(info.path, info.size_bytes // 2)
    store = SnapshotStore(tmp_path)
    reader = store.open_latest()
    assert reader is not None and reader.meta.index == 7  # the header is fine
    got: list[bytes] = []
    with pytest.raises(StorageCorrupted, match="checksum"):
        got.extend(reader.chunks())
    assert got == data[: len(got)] and len(got) < len(data)  # nothing damaged was handed out
    reader.close()
    store.close()


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_truncated_or_headless_snapshot_file_raises(tmp_path, damage):
    store = SnapshotStore(tmp_path)
    info = store.save(SnapshotMeta(7, 2), [b"x" * 1000, b"y" * 1000])
    if damage == "truncate":
        os.truncate(info.path, info.size_bytes - 10)
        with (
            store.open_latest() as reader,
            pytest.raises(StorageCorrupted, match="truncated"),
        ):
            list(reader.chunks())
    else:
        flip(info.path, 20)
        with pytest.raises(StorageCorrupted):
            store.open_latest()
    store.close()


def test_hybrid_wal_damage(tmp_path, caplog):
    e = HybridStorage(tmp_path, checkpoint_bytes=1 << 30)
    for i in range(50):
        e.write_batch(puts={b"k%03d" % i: b"v" * 100}, applied_index=i + 1)
    e.close()
    wal = next(tmp_path.glob("wal-*.log"))
    size = wal.stat().st_size
    os.truncate(wal, size - 10)  # torn tail
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        e = HybridStorage(tmp_path)
    assert "torn" in caplog.text and e.applied_index() == 49 and e.get(b"k048") is not None
    e.close()
    flip(wal, size // 2)
    with pytest.raises(StorageCorrupted):
        HybridStorage(tmp_path)


def test_hybrid_checkpoint_damage(tmp_path):
    e = HybridStorage(tmp_path)
    e.batch_put({b"k%03d" % i: b"v" * 100 for i in range(100)})
    e.compact()  # writes a checkpoint
    e.close()
    ckpt = next(tmp_path.glob("checkpoint-*.kv"))
    flip(ckpt, ckpt.stat().st_size // 2)
    with pytest.raises(StorageCorrupted):
        HybridStorage(tmp_path)


def test_leveldb_table_damage_surfaces_as_storage_corrupted(tmp_path):
    e = LevelDBStorage(tmp_path, compression=None)
    e.batch_put({b"k%05d" % i: b"%05d" % i * 40 for i in range(5000)})
    e.compact()  # into .ldb table files
    e.close()
    tables = sorted(tmp_path.glob("db-*/*.ldb"))
    assert tables
    for t in tables:
        for off in range(100, t.stat().st_size // 2, 997):
            flip(t, off)
    with pytest.raises(StorageCorrupted):
        e = LevelDBStorage(tmp_path, compression=None)
        try:
            list(e.range())
        finally:
            e.close()


def test_lmdb_record_damage_surfaces_as_storage_corrupted(tmp_path):
    e = LMDBStorage(tmp_path)
    e.put(b"victim", b"precious-value-" * 10)
    e.put(b"other", b"fine")
    e.close()
    data = (tmp_path / "data.mdb").read_bytes()
    pos = data.find(b"precious-value-")
    while pos >= 0:  # copy-on-write leaves older copies of the page around: damage them all
        flip(tmp_path / "data.mdb", pos + 3)
        pos = data.find(b"precious-value-", pos + 150)
    e = LMDBStorage(tmp_path)
    assert e.get(b"other") == b"fine"
    with pytest.raises(StorageCorrupted, match="checksum"):
        e.get(b"victim")
    with pytest.raises(StorageCorrupted):
        list(e.range())
    e.close()


def test_leveldb_leftovers_of_an_interrupted_restore_are_removed(tmp_path):
    e = LevelDBStorage(tmp_path)
    e.write_batch(puts={b"k": b"v"}, applied_index=3)
    e.close()
    (tmp_path / "db-7").mkdir()  # what a restore that crashed before switching ACTIVE leaves
    (tmp_path / "db-7" / "000001.log").write_bytes(b"half a restore")
    e = LevelDBStorage(tmp_path)
    assert (e.get(b"k"), e.applied_index()) == (b"v", 3)
    assert not (tmp_path / "db-7").exists()
    e.close()


def test_leveldb_active_pointer_to_a_missing_database_raises(tmp_path):
    LevelDBStorage(tmp_path).close()
    (tmp_path / "ACTIVE").write_text("db-42")
    with pytest.raises(StorageCorrupted, match="missing database"):
        LevelDBStorage(tmp_path)
