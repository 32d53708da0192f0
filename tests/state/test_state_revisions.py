"""Revisions and key metadata (etcd v3's MVCC): what counts as a change, what a key
carries, and that both survive restarts and snapshots on every engine."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from global_kv._errors import Compacted, FutureRevision, KeyNotFound, RequestTooLarge, StorageCorrupted
from global_kv.raft import Entry
from global_kv.state import (
    CAS,
    BatchDelete,
    BatchPut,
    CompactedResult,
    CompactHistory,
    Delete,
    DeleteRange,
    DeleteResult,
    FutureRevisionResult,
    KeyNotFoundResult,
    KeyValue,
    KVPut,
    LeaseNotFoundResult,
    LockAcquire,
    Put,
    PutResult,
    RangeResult,
    SessionClose,
    StateMachine,
)
from global_kv.storage import StorageEngine
from tests.state.state_support import A, Log, v

DURABLE = ["leveldb", "lmdb", "hybrid"]


def _revision_after(sm: StateMachine, log: Log, op: object, *session: object) -> int:
    sm.apply([log.cmd(op, *session)])  # type: ignore[arg-type]
    return sm.revision


def test_a_revision_per_entry_that_changed_a_key(sm: StateMachine, log: Log) -> None:
    assert sm.revision == 1 and sm.compact_revision == 0  # etcd's store starts at 1
    steps = [
        (Put(b"a", v(b"1")), 2),
        (Put(b"a", v(b"1")), 3),  # the same value again is a change
        (Delete(b"a"), 4),
        (Delete(b"a"), 4),  # nothing to delete: no revision
        (BatchPut({b"a": v(b"1"), b"b": v(b"2"), b"c": v(b"3")}), 5),  # one entry, one revision
        (BatchDelete((b"a", b"zz")), 6),
        (BatchDelete((b"zz",)), 6),
        (CAS(b"b", v(b"wrong"), v(b"x")), 6),  # failed: no change
        (CAS(b"b", v(b"2"), v(b"x")), 7),
        (CAS(b"b", v(b"x"), None), 8),  # a swap that deletes
        (CAS(b"b", None, None), 8),  # absent and stays absent: nothing changed
        (LockAcquire(b"L", A, 0), 8),  # locks and sessions are not keys
        (SessionClose("nobody"), 8),
    ]
    for op, expected in steps:
        assert _revision_after(sm, log, op) == expected, op


def test_a_key_carries_create_and_mod_revisions_and_a_version(sm: StateMachine, log: Log) -> None:
    sm.apply([log.cmd(Put(b"k", v(b"1")))])
    assert sm.get_kv(b"k") == KeyValue(b"k", 2, 2, 1, b"1", 0)
    sm.apply([log.cmd(Put(b"other", v(b"x"))), log.cmd(Put(b"k", v(b"2")))])
    assert sm.get_kv(b"k") == KeyValue(b"k", 2, 4, 2, b"2", 0)
    sm.apply([log.cmd(Delete(b"k"))])
    assert sm.get_kv(b"k") is None and sm.get(b"k") is None
    sm.apply([log.cmd(Put(b"k", v(b"3", compress=True)))])  # re-created: a new life
    assert sm.get_kv(b"k") == KeyValue(b"k", 6, 6, 1, b"3", 0)
    assert sm.range() == [(b"k", b"3"), (b"other", b"x")]


def test_a_batch_with_a_key_twice_changes_it_once_with_the_last_value(sm: StateMachine, log: Log) -> None:
    sm.apply([log.cmd(BatchPut(((b"k", v(b"1")), (b"j", v(b"j")), (b"k", v(b"2")))))])
    assert sm.revision == 2 and sm.get_kv(b"k") == KeyValue(b"k", 2, 2, 1, b"2", 0)
    sm.apply([log.cmd(BatchDelete((b"k", b"k")))])
    assert sm.revision == 3 and sm.get(b"k") is None


@pytest.mark.parametrize("name", DURABLE)
def test_revisions_and_metadata_survive_a_restart(
    engines: Callable[..., StorageEngine], tmp_path: Path, name: str
) -> None:
    where = tmp_path / name
    engine = engines(name, where)
    sm, log = StateMachine(engine), Log()
    sm.apply([log.cmd(Put(b"k", v(b"1"))), log.cmd(Put(b"k", v(b"2"))), log.cmd(Delete(b"gone"))])
    before = (sm.revision, sm.get_kv(b"k"), sm.state_digest())
    engine.close()
    again = StateMachine(engines(name, where))
    assert (
        (again.revision, again.get_kv(b"k"), again.state_digest())
        == before
        == (3, KeyValue(b"k", 2, 3, 2, b"2"), before[2])
    )
    again.apply([log.cmd(Put(b"k", v(b"3")))])
    assert again.get_kv(b"k") == KeyValue(b"k", 2, 4, 3, b"3")


@pytest.mark.parametrize("name", ["memory", *DURABLE])
def test_a_snapshot_carries_revisions_and_history_into_any_engine(
    engines: Callable[..., StorageEngine], name: str
) -> None:
    source, log = StateMachine(engines("memory")), Log()
    source.apply([log.cmd(Put(b"a", v(b"1"))), log.cmd(Delete(b"a")), log.cmd(Put(b"b", v(b"2")))])
    target = StateMachine(engines(name))
    with source.snapshot_chunks() as stream:
        target.restore_chunks(stream, stream.last_index)
    assert target.revision == source.revision == 4
    assert target.state_digest() == source.state_digest()
    target.apply([Log(start=4).cmd(Put(b"a", v(b"3")))])  # `a` is created again, with its history
    assert target.get_kv(b"a") == KeyValue(b"a", 5, 5, 1, b"3")
    assert target.get_kv(b"a", revision=2) == KeyValue(b"a", 2, 2, 1, b"1")
    assert target.get_kv(b"a", revision=3) is None


def test_keys_written_before_revisions_are_refused_with_a_clear_error(engine: StorageEngine) -> None:
    engine.write_batch({b"kold": b"\x00value"}, [], applied_index=7)  # the format before revisions
    with pytest.raises(StorageCorrupted, match="written before revisions"):
        StateMachine(engine)


def test_a_data_dir_in_another_key_layout_is_refused_with_a_clear_error(engine: StorageEngine) -> None:
    engine.write_batch({b"mmvcc": b"\x01" + bytes(16)}, [], applied_index=7)  # the first layout's format
    with pytest.raises(StorageCorrupted, match="another key layout"):
        StateMachine(engine)


def test_every_change_is_kept_as_history(sm: StateMachine, log: Log, engine: StorageEngine) -> None:
    sm.apply([log.cmd(Put(b"k", v(b"1"))), log.cmd(Put(b"k", v(b"2"))), log.cmd(Delete(b"k"))])
    with engine.prefix_scan(b"r") as history:
        records = list(history)
    assert [int.from_bytes(k[1:9], "big") for k, _ in records] == [2, 3, 4]  # by revision
    assert records[0][1].endswith(b"k\x00" + b"1") and records[2][1].endswith(b"k")  # the last: a tombstone
    with engine.prefix_scan(b"d") as dead:
        assert [k for k, _ in dead] == [b"dk"]  # deleted, with history: found by a past range
    reopened = StateMachine(engine)  # the in-memory index of changes is rebuilt from the history
    assert [reopened.get_kv(b"k", revision=r) for r in (1, 2, 3, 4)] == [
        None,
        KeyValue(b"k", 2, 2, 1, b"1"),
        KeyValue(b"k", 2, 3, 2, b"2"),
        None,
    ]


# --- reads at a past revision, against a model that keeps every revision -------------------


class _Model:
    """The store at every revision: {revision: {key: KeyValue}} (etcd's semantics)."""

    def __init__(self) -> None:
        self.revision = 1
        self.now: dict[bytes, KeyValue] = {}
        self.at: dict[int, dict[bytes, KeyValue]] = {1: {}}

    def entry(self, puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
        changed = dict(self.now)
        main = self.revision + 1
        touched = False
        for key, value in puts.items():
            old = changed.get(key)
            create, version = (old.create_revision, old.version + 1) if old else (main, 1)
            changed[key] = KeyValue(key, create, main, version, value)
            touched = True
        for key in deletes:
            if key in changed:
                del changed[key]
                touched = True
        if touched:
            self.revision = main
            self.now = changed
            self.at[main] = dict(changed)


@pytest.mark.parametrize("name", ["memory", *DURABLE])
@pytest.mark.parametrize("seed", range(3))
def test_every_past_revision_reads_as_it_was(engines: Callable[..., StorageEngine], name: str, seed: int) -> None:
    rng = random.Random(seed)
    sm, log, model = StateMachine(engines(name)), Log(), _Model()
    keys = [b"a", b"b", b"b\x00", b"c", b"\xff"]
    for _ in range(60):
        roll = rng.random()
        if roll < 0.5:
            key, value = rng.choice(keys), b"%d" % rng.randrange(1000)
            sm.apply([log.cmd(Put(key, v(value, compress=rng.random() < 0.3)))])
            model.entry({key: value}, [])
        elif roll < 0.75:
            key = rng.choice(keys)
            sm.apply([log.cmd(Delete(key))])
            model.entry({}, [key])
        else:
            chosen = rng.sample(keys, 2)
            values = {k: b"b%d" % rng.randrange(1000) for k in chosen}
            sm.apply([log.cmd(BatchPut({k: v(x) for k, x in values.items()}))])
            model.entry(values, [])
    assert sm.revision == model.revision
    for revision in range(1, model.revision + 1):
        state = model.at[max(r for r in model.at if r <= revision)]
        for key in keys:
            assert sm.get_kv(key, revision) == state.get(key), (revision, key)
        everything = sm.range_kv(b"\x00", b"\x00", revision=revision)
        assert everything == RangeResult(tuple(state[k] for k in sorted(state)), False, len(state))
        first_two = sm.range_kv(b"a", b"c", revision=revision, limit=2)
        inside = [state[k] for k in sorted(state) if b"a" <= k < b"c"]
        assert first_two == RangeResult(tuple(inside[:2]), len(inside) > 2, len(inside)), revision
    assert sm.range_kv(b"b", revision=model.revision).kvs == tuple(kv for kv in [model.now.get(b"b")] if kv)


def test_a_revision_outside_the_history_is_refused_clearly(sm: StateMachine, log: Log) -> None:
    sm.apply([log.cmd(Put(b"k", v(b"1")))])
    with pytest.raises(FutureRevision, match="revision 3 is a future revision: this member is at 2"):
        sm.get_kv(b"k", 3)
    with pytest.raises(ValueError, match="non-negative"):
        sm.range_kv(b"k", revision=-1)
    assert sm.get_kv(b"k", 1) is None and sm.get_kv(b"k", 0) == sm.get_kv(b"k", 2)
    with pytest.raises(RequestTooLarge):
        sm.range_kv(b"\x00", b"\x00", max_bytes=1)


# --- compaction ---------------------------------------------------------------------------


def _history(engine: StorageEngine) -> list[int]:
    """The revisions of the change records kept (one per change)."""
    with engine.prefix_scan(b"r") as records:
        return [int.from_bytes(k[1:9], "big") for k, _ in records]


@pytest.mark.parametrize("name", ["memory", *DURABLE])
@pytest.mark.parametrize("seed", range(3))
def test_compaction_forgets_only_what_no_later_read_needs(
    engines: Callable[..., StorageEngine], name: str, seed: int
) -> None:
    rng = random.Random(seed)
    engine = engines(name)
    sm, log, model = StateMachine(engine), Log(), _Model()
    keys = [b"a", b"b", b"c"]
    compacted = 0
    for step in range(80):
        key = rng.choice(keys)
        entries = []
        if rng.random() < 0.7:
            value = b"%d" % step
            entries.append(log.cmd(Put(key, v(value))))
            model.entry({key: value}, [])
        else:
            entries.append(log.cmd(Delete(key)))
            model.entry({}, [key])
        if rng.random() < 0.15 and model.revision > compacted + 1:
            # In the same apply call as the change before it: the compaction sees it.
            compacted = rng.randint(compacted + 1, model.revision)
            entries.append(log.cmd(CompactHistory(compacted)))
        sm.apply(entries)
    assert compacted and sm.compact_revision == compacted
    for revision in range(1, model.revision + 1):
        if revision < compacted:
            with pytest.raises(Compacted, match=f"at or below {compacted} is gone"):
                sm.range_kv(b"\x00", b"\x00", revision=revision)
            continue
        state = model.at[max(r for r in model.at if r <= revision)]
        assert sm.range_kv(b"\x00", b"\x00", revision=revision).kvs == tuple(state[k] for k in sorted(state))
        for key in keys:
            assert sm.get_kv(key, revision) == state.get(key)
    # At most one change per key at or below the compacted revision, and it is a put.
    kept = [r for r in _history(engine) if r <= compacted]
    at_compaction = model.at[max(r for r in model.at if r <= compacted)]
    assert len(kept) == len({k for k, kv in at_compaction.items() if kv.mod_revision <= compacted})


def test_compaction_refuses_what_it_cannot_do_and_survives_a_restart(
    engines: Callable[..., StorageEngine], tmp_path: Path
) -> None:
    engine = engines("leveldb", tmp_path / "db")
    sm, log = StateMachine(engine), Log()
    sm.apply([log.cmd(Put(b"k", v(b"%d" % i))) for i in range(5)])  # revisions 2..6
    (too_far,) = sm.apply([log.cmd(CompactHistory(7), "c", 1, 1)])
    assert too_far.result == FutureRevisionResult(7, 6)
    sm.apply([log.cmd(CompactHistory(4))])
    assert _history(engine) == [4, 5, 6] and sm.compact_revision == 4
    (again,) = sm.apply([log.cmd(CompactHistory(3), "c", 2, 2)])
    assert again.result == CompactedResult(4)
    with pytest.raises(Compacted):
        sm.get_kv(b"k", 3)
    digest = sm.state_digest()
    engine.close()
    reopened = StateMachine(engines("leveldb", tmp_path / "db"))
    assert reopened.compact_revision == 4 and reopened.state_digest() == digest
    assert reopened.get_kv(b"k", 4) == KeyValue(b"k", 2, 4, 3, b"2")
    reopened.apply([log.cmd(Delete(b"k")), log.cmd(CompactHistory(7))])  # revision 7: the deletion
    assert _history(reopened._engine) == [] and reopened.get_kv(b"k", 7) is None  # a deletion leaves nothing


# --- etcd's put and delete-range ------------------------------------------------------------


def test_a_kv_put_answers_its_revision_and_the_previous_key_value(sm: StateMachine, log: Log) -> None:
    (first,) = sm.apply([log.cmd(KVPut(b"k", v(b"1"), prev_kv=True))])
    assert first.result == PutResult(2, None)
    (second,) = sm.apply([log.cmd(KVPut(b"k", v(b"2"), prev_kv=True))])
    assert second.result == PutResult(3, KeyValue(b"k", 2, 2, 1, b"1"))
    (kept,) = sm.apply([log.cmd(KVPut(b"k", b"", ignore_value=True))])  # the value stays
    assert kept.result == PutResult(4, None) and sm.get_kv(b"k") == KeyValue(b"k", 2, 4, 3, b"2")
    (missing,) = sm.apply([log.cmd(KVPut(b"nope", b"", ignore_value=True))])
    assert missing.result == KeyNotFoundResult(b"nope") and sm.revision == 4
    assert isinstance(missing.result.to_exception(), KeyNotFound)
    (unleased,) = sm.apply([log.cmd(KVPut(b"k", v(b"1"), lease=7))])
    assert unleased.result == LeaseNotFoundResult(7) and sm.revision == 4  # no such lease: nothing written


def test_delete_range_deletes_every_key_in_one_revision(sm: StateMachine, log: Log) -> None:
    sm.apply([log.cmd(BatchPut({b"a": v(b"1"), b"b": v(b"2"), b"c": v(b"3"), b"d": v(b"4")}))])  # revision 2
    (none,) = sm.apply([log.cmd(DeleteRange(b"x", b"z"))])
    assert none.result == DeleteResult(2, 0) and sm.revision == 2
    (two,) = sm.apply([log.cmd(DeleteRange(b"a", b"c", prev_kv=True))])
    assert two.result == DeleteResult(3, 2, (KeyValue(b"a", 2, 2, 1, b"1"), KeyValue(b"b", 2, 2, 1, b"2")))
    (one,) = sm.apply([log.cmd(DeleteRange(b"c"))])  # the key alone
    assert one.result == DeleteResult(4, 1) and sm.range() == [(b"d", b"4")]
    # A put in the same apply call is seen; everything from b"a" on goes in one revision.
    results = sm.apply([log.cmd(Put(b"e", v(b"5"))), log.cmd(DeleteRange(b"a", b"\x00"))])
    assert results[1].result == DeleteResult(6, 2) and sm.range() == []
    assert sm.get_kv(b"d", 5) == KeyValue(b"d", 2, 2, 1, b"4") and sm.get_kv(b"d", 6) is None


def test_a_retried_kv_put_is_answered_with_its_first_revision(sm: StateMachine, log: Log) -> None:
    entry = log.cmd(KVPut(b"k", v(b"1"), prev_kv=True), "c", 1, 1)
    (first,) = sm.apply([entry])
    sm.apply([log.cmd(Put(b"k", v(b"2")))])
    (again,) = sm.apply([Entry(log.next, 1, entry.type, entry.data)])
    assert again.result == first.result == PutResult(2, None) and sm.get(b"k") == b"2"
