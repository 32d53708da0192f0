"""Applying entries: every KV operation, batching, replay, gaps, and atomic failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from global_kv._errors import MalformedCommand, RaftInvariantError, StorageError
from global_kv.raft import Entry, EntryType
from global_kv.state import (
    CAS,
    Applied,
    BatchDelete,
    BatchPut,
    CASFailedResult,
    Delete,
    Granted,
    LockAcquire,
    Ok,
    Put,
    StateMachine,
)
from global_kv.storage import StorageEngine
from tests.state.state_support import A, Log, apply1, apply_in_splits, scripted_log, v


def test_put_get_overwrite_delete(sm: StateMachine, log: Log) -> None:
    assert apply1(sm, log.cmd(Put(b"a", v(b"1")))) == Ok()
    assert sm.get(b"a") == b"1"
    apply1(sm, log.cmd(Put(b"a", v(b"2", compress=True))))
    assert sm.get(b"a") == b"2"
    assert apply1(sm, log.cmd(Delete(b"a"))) == Ok()
    assert sm.get(b"a") is None
    assert apply1(sm, log.cmd(Delete(b"never-there"))) == Ok()
    assert sm.applied_index == 4


def test_batch_put_and_delete(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(BatchPut(((b"a", v(b"1")), (b"b", v(b"2")), (b"a", v(b"3"))))))
    assert sm.range() == [(b"a", b"3"), (b"b", b"2")]  # a later duplicate wins
    apply1(sm, log.cmd(BatchDelete((b"a", b"zz"))))
    assert sm.range() == [(b"b", b"2")]


LARGE = b"payload " * 500


@pytest.mark.parametrize(
    ("initial", "expected", "new", "result", "final"),
    [
        (None, None, b"1", Ok(), b"1"),  # create if absent
        (b"1", None, b"2", CASFailedResult(b"k", b"1"), b"1"),  # must be absent
        (b"1", b"1", b"2", Ok(), b"2"),
        (b"1", b"x", b"2", CASFailedResult(b"k", b"1"), b"1"),
        (None, b"1", b"2", CASFailedResult(b"k", None), None),
        (b"1", b"1", None, Ok(), None),  # compare-and-delete
        (None, None, None, Ok(), None),  # delete-if-absent: nothing to do
        (b"", b"", b"2", Ok(), b"2"),  # the empty value is not absence
        (b"", None, b"2", CASFailedResult(b"k", b""), b""),
        (LARGE, LARGE, b"small", Ok(), b"small"),
    ],
)
@pytest.mark.parametrize("stored_compressed", [False, True])
@pytest.mark.parametrize("expected_compressed", [False, True])
def test_cas(
    sm: StateMachine,
    log: Log,
    initial: bytes | None,
    expected: bytes | None,
    new: bytes | None,
    result: Any,
    final: bytes | None,
    stored_compressed: bool,
    expected_compressed: bool,
) -> None:
    if initial is not None:
        apply1(sm, log.cmd(Put(b"k", v(initial, stored_compressed))))
    exp = None if expected is None else v(expected, expected_compressed)
    assert apply1(sm, log.cmd(CAS(b"k", exp, None if new is None else v(new)))) == result
    assert sm.get(b"k") == final


def test_cas_compares_decoded_values_not_stored_bytes(sm: StateMachine, log: Log) -> None:
    stored, given = v(LARGE, compress=True), v(LARGE)
    assert stored != given and stored[0] == 1 and given[0] == 0
    apply1(sm, log.cmd(Put(b"k", stored)))
    assert apply1(sm, log.cmd(CAS(b"k", given, v(b"next")))) == Ok()


def test_reads_inside_a_batch_see_earlier_entries(sm: StateMachine, log: Log) -> None:
    entries = [
        log.cmd(Put(b"a", v(b"1"))),
        log.cmd(CAS(b"a", v(b"1"), v(b"2"))),
        log.cmd(CAS(b"a", v(b"1"), v(b"3"))),
        log.cmd(Delete(b"a")),
        log.cmd(CAS(b"a", None, v(b"4"))),
    ]
    results = [a.result for a in sm.apply(entries)]
    assert results == [Ok(), Ok(), CASFailedResult(b"a", b"2"), Ok(), Ok()]
    assert sm.get(b"a") == b"4"


def test_applied_carries_index_and_envelope(sm: StateMachine, log: Log) -> None:
    out = sm.apply([log.noop(), log.cmd(Put(b"a", v(b"1")), "cli", 4, 1), log.cmd(Delete(b"a"))])
    assert out == [Applied(2, "cli", 4, Ok()), Applied(3, None, 0, Ok())]


def test_range_and_prefix_scan(sm: StateMachine, log: Log) -> None:
    keys = [b"a", b"ab", b"abc", b"b", b"b\xff", b"b\xff\xff", b"c"]
    sm.apply([log.cmd(Put(k, v(k.upper() * 300, compress=True))) for k in keys])
    sm.apply([log.cmd(LockAcquire(b"a", A, 0), "cli", 1, 0)])  # a lock and a session exist too
    everything = sm.range()
    assert [k for k, _ in everything] == keys  # internals never show up
    assert everything[0] == (b"a", b"A" * 300)  # values come back decoded
    assert [k for k, _ in sm.range(b"ab", b"b\xff")] == [b"ab", b"abc", b"b"]
    assert [k for k, _ in sm.range(b"b")] == [b"b", b"b\xff", b"b\xff\xff", b"c"]
    assert [k for k, _ in sm.range(None, b"ab")] == [b"a"]
    assert [k for k, _ in sm.range(limit=2)] == [b"a", b"ab"]
    assert sm.range(b"c", b"a") == []
    assert sm.range(limit=0) == []
    assert [k for k, _ in sm.prefix_scan(b"ab")] == [b"ab", b"abc"]
    assert [k for k, _ in sm.prefix_scan(b"b\xff")] == [b"b\xff", b"b\xff\xff"]
    assert [k for k, _ in sm.prefix_scan(b"", limit=3)] == keys[:3]
    assert sm.prefix_scan(b"zz") == []
    with pytest.raises(ValueError):
        sm.range(limit=-1)
    with pytest.raises(TypeError):
        sm.prefix_scan("a")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sm.get(b"")


def test_noop_and_conf_change_only_advance_the_index(sm: StateMachine, log: Log) -> None:
    before = sm.state_digest(sessions=True)
    assert sm.apply([log.noop(), log.conf(), log.noop()]) == []
    assert sm.applied_index == 3
    assert sm.state_digest(sessions=True) == before
    assert sm._engine.applied_index() == 3  # durable too


def test_entries_at_or_below_the_applied_index_are_skipped(sm: StateMachine, log: Log) -> None:
    entries = [log.cmd(LockAcquire(b"L", A, 0)), log.cmd(Put(b"a", v(b"1"))), log.cmd(Delete(b"a"))]
    sm.apply(entries[:2])
    digest = sm.state_digest(sessions=True)
    assert sm.apply(entries[:2]) == []  # a replay changes nothing and reports nothing
    assert sm.state_digest(sessions=True) == digest and sm.applied_index == 2
    out = sm.apply(entries)  # overlapping: only the new tail applies
    assert [a.index for a in out] == [3]
    assert sm.get(b"a") is None and sm.applied_index == 3
    assert sm.apply([]) == []


@pytest.mark.parametrize("prefix_len", [0, 2])
def test_gap_raises_and_writes_nothing(sm: StateMachine, log: Log, prefix_len: int) -> None:
    sm.apply([log.cmd(Put(b"a", v(b"0")))])
    batch = [log.cmd(Put(b"a", v(bytes([49 + i])))) for i in range(prefix_len)]
    log.next += 1  # skip one index
    batch.append(log.cmd(Put(b"a", v(b"late"))))
    with pytest.raises(RaftInvariantError, match=f"gap in committed entries: entry {batch[-1].index}"):
        sm.apply(batch)
    assert sm.applied_index == 1 and sm._engine.applied_index() == 1
    assert sm.get(b"a") == b"0"  # not even the entries before the gap


def test_unknown_entry_type_raises(sm: StateMachine) -> None:
    with pytest.raises(RaftInvariantError, match="unknown type"):
        sm.apply([Entry(1, 1, 9, b"")])  # type: ignore[arg-type]
    assert sm.applied_index == 0


def test_malformed_entry_in_a_batch_applies_nothing(sm: StateMachine, log: Log) -> None:
    good = [log.cmd(Put(b"a", v(b"1"))), log.cmd(LockAcquire(b"L", A, 0), "cli", 1, 0)]
    bad = Entry(log.next, 1, EntryType.NORMAL, b"\x83\x01\x02\x03")
    with pytest.raises(MalformedCommand, match=f"log entry {bad.index}") as info:
        sm.apply([*good, bad])
    assert info.value.index == bad.index
    assert sm.applied_index == 0 and sm.get(b"a") is None
    assert sm.locks() == [] and sm.sessions() == []  # memory rolled back with the batch


class FailingWrites:
    """Wraps an engine's write_batch: fails the next `fail` calls, counts all calls."""

    def __init__(self, engine: StorageEngine, fail: int = 0) -> None:
        self.engine = engine
        self.real = engine.write_batch
        self.fail = fail
        self.calls: list[tuple[int, int, int | None]] = []

    def __call__(self, puts: Any = None, deletes: Any = (), applied_index: int | None = None) -> None:
        self.calls.append((len(puts or {}), len(list(deletes)), applied_index))
        if self.fail:
            self.fail -= 1
            raise StorageError("disk on fire")
        self.real(puts, deletes, applied_index)


def test_one_write_batch_per_apply_call(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    spy = FailingWrites(engine)
    engine.write_batch = spy  # type: ignore[method-assign]
    entries = [log.cmd(Put(bytes([97 + i]), v(b"x"))) for i in range(20)]
    entries += [log.noop(), log.cmd(LockAcquire(b"L", A, 0), "cli", 1, 0)]
    sm.apply(entries)
    # 20 puts (each a live record and a history record) + the revision
    # record (once per batch) + lock record + session meta + cached result, and the
    # index, in one write.
    assert spy.calls == [(20 * 2 + 1 + 3, 0, 22)]
    sm.apply(entries)  # all skipped: nothing to write
    assert len(spy.calls) == 1


def test_a_failed_write_leaves_memory_and_storage_as_before(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    sm.apply([log.cmd(LockAcquire(b"old", A, 0), "cli", 1, 1)])
    before = (sm.locks(), sm.sessions(), sm.state_digest(sessions=True), sm.applied_index)
    spy = FailingWrites(engine, fail=1)
    engine.write_batch = spy  # type: ignore[method-assign]
    batch = [
        log.cmd(LockAcquire(b"new", A, 0), "cli", 2, 2),
        log.cmd(Put(b"a", v(b"1"))),
        log.cmd(Delete(b"x"), "other", 1, 0),
    ]
    with pytest.raises(StorageError, match="disk on fire"):
        sm.apply(batch)
    assert (sm.locks(), sm.sessions(), sm.state_digest(sessions=True), sm.applied_index) == before
    # The retry applies the batch exactly as if the failure never happened.
    out = sm.apply(batch)
    assert [a.result for a in out] == [Granted(b"new", 2, 0), Ok(), Ok()]
    assert sm.applied_index == 4


def test_state_is_rebuilt_from_the_engine_on_open(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    sm.apply([log.cmd(LockAcquire(b"L", A, 500), "cli", 1, 0), log.cmd(Put(b"a", v(b"1")), "cli", 2, 1)])
    again = StateMachine(engine)
    assert again.applied_index == sm.applied_index == 2
    assert again.locks() == sm.locks() and again.sessions() == sm.sessions()
    assert again.owners() == [A]
    assert again.state_digest(sessions=True) == sm.state_digest(sessions=True)


def test_session_expiry_entries_must_be_positive(engine: StorageEngine) -> None:
    with pytest.raises(ValueError):
        StateMachine(engine, session_expiry_entries=0)


@pytest.mark.parametrize("size", [2, 3, 5, 1000])
def test_batch_apply_equals_one_by_one(engines: Callable[..., StorageEngine], size: int) -> None:
    entries = scripted_log()
    one, one_out = apply_in_splits(engines("memory"), entries, 1)
    many, many_out = apply_in_splits(engines("memory"), entries, size)
    assert many_out == one_out
    assert many.state_digest(sessions=True) == one.state_digest(sessions=True)
    assert many.locks() == one.locks() and many.sessions() == one.sessions()
    assert many.applied_index == one.applied_index == len(entries)
    # The script exercised what it claims to.
    kinds = {type(a.result).__name__ for a in one_out}
    assert kinds >= {"Ok", "Granted", "Released", "LockHeldResult", "StaleTokenResult", "SessionExpiredResult"}


def test_restart_midway_on_a_durable_engine_replays_to_the_same_state(
    engines: Callable[..., StorageEngine], tmp_path: Path
) -> None:
    entries = scripted_log()
    reference, ref_out = apply_in_splits(engines("memory"), entries, 1)
    first = engines("leveldb", tmp_path / "db")
    sm = StateMachine(first, session_expiry_entries=8)
    early = sm.apply(entries[:9])
    first.close()
    reopened = StateMachine(engines("leveldb", tmp_path / "db"), session_expiry_entries=8)
    assert reopened.applied_index == 9
    late = reopened.apply(entries)  # the whole log again, as a restarting replica would
    assert early + late == ref_out
    assert reopened.state_digest(sessions=True) == reference.state_digest(sessions=True)


def test_a_machine_that_cannot_rebuild_refuses_further_use(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    sm.apply([log.cmd(LockAcquire(b"L", A, 0))])
    engine.close()  # the write fails, and so does rebuilding the tables from storage
    with pytest.raises(StorageError):
        sm.apply([log.cmd(Put(b"a", v(b"1")))])
    for use in (sm.locks, sm.sessions, lambda: sm.get(b"a"), lambda: sm.apply([])):
        with pytest.raises(RaftInvariantError, match="restart the replica"):
            use()
