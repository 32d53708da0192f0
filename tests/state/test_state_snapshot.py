"""Snapshots: the engine's stream carries the whole state machine into any engine type."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from global_kv._errors import RaftInvariantError, StorageCorrupted
from global_kv.state import CAS, LockAcquire, LockRefresh, Put, StateMachine
from global_kv.storage import ENGINE_NAMES, StorageEngine
from tests.state.state_support import A, B, Log, scripted_log, v


def populated(engine: StorageEngine, log: Log) -> StateMachine:
    sm = StateMachine(engine)
    sm.apply(scripted_log())
    log.next = sm.applied_index + 1
    sm.apply(
        [
            log.cmd(Put(b"big", v(b"compressible " * 400, compress=True)), "snap", 1, 1),
            log.cmd(LockAcquire(b"held", A, 1500), "snap", 2, 1),
            log.cmd(LockAcquire(b"other", B, 0)),
            log.cmd(LockRefresh(b"held", log.next - 2, 3000)),
        ]
    )
    sm.apply([log.cmd(Put(bytes([i % 256, i // 256]) + b"-key", v(b"%d" % i))) for i in range(300)])
    return sm


@pytest.mark.parametrize("target", ENGINE_NAMES)
def test_restore_into_a_fresh_engine_gives_the_same_state(engines: Callable[..., StorageEngine], target: str) -> None:
    log = Log()
    source = populated(engines("memory"), log)
    with source.snapshot_chunks(chunk_size=512) as stream:
        chunks = list(stream)
        last_index = stream.last_index
    assert len(chunks) > 3 and last_index == source.applied_index
    restored = StateMachine(engines(target))
    restored.restore_chunks(iter(chunks), last_index)
    assert restored.applied_index == source.applied_index
    assert restored.state_digest() == source.state_digest()
    assert restored.state_digest(sessions=True) == source.state_digest(sessions=True)
    assert restored.locks() == source.locks() and restored.owners() == source.owners() == [A, B]
    assert restored.sessions() == source.sessions()
    assert restored.get(b"big") == b"compressible " * 400
    assert restored.range() == source.range()
    # Both continue identically: same results (deduplication included), same state.
    tail = [
        log.cmd(Put(b"big", v(b"x")), "snap", 1, 1),  # a retry answered from the restored cache
        log.cmd(CAS(b"big", v(b"compressible " * 400), v(b"y")), "snap", 3, 2),
        log.cmd(LockAcquire(b"held", B, 0), "new", 1, 0),
    ]
    assert restored.apply(tail) == source.apply(tail)
    assert restored.state_digest(sessions=True) == source.state_digest(sessions=True)
    assert restored.get(b"big") == b"y"


def test_restore_replaces_everything_that_was_there(engines: Callable[..., StorageEngine]) -> None:
    source = StateMachine(engines("memory"))
    log = Log()
    source.apply([log.cmd(Put(b"only", v(b"1")))] + log.noops(50))
    target = StateMachine(engines("memory"))
    other = Log()
    target.apply([other.cmd(LockAcquire(b"L", A, 0), "c", 1, 1), other.cmd(Put(b"stale", v(b"1")))])
    with source.snapshot_chunks() as stream:
        target.restore_chunks(stream, stream.last_index)
    assert target.locks() == [] and target.sessions() == [] and target.owners() == []
    assert target.range() == [(b"only", b"1")]
    assert target.applied_index == 51


def test_digest_differs_when_state_differs(engines: Callable[..., StorageEngine]) -> None:
    a, b = StateMachine(engines("memory")), StateMachine(engines("memory"))
    la, lb = Log(), Log()
    a.apply([la.cmd(Put(b"k", v(b"1")))])
    b.apply([lb.cmd(Put(b"k", v(b"2")))])
    assert a.state_digest() != b.state_digest()
    c, lc = StateMachine(engines("memory")), Log()
    c.apply([lc.cmd(Put(b"k", v(b"1"))), lc.noop(), lc.noop()])
    assert a.state_digest() == c.state_digest()  # user data, history and locks, not the index
    a.apply([la.cmd(Put(b"k", v(b"1")))])
    assert a.state_digest() != c.state_digest()  # the same value, one revision more
    b.apply([lb.cmd(Put(b"k", v(b"1")))])
    assert a.get(b"k") == b.get(b"k") and a.state_digest() != b.state_digest()  # not the same history
    a.apply([la.cmd(LockAcquire(b"L", A, 0))])
    b.apply([lb.cmd(LockAcquire(b"L", B, 0))])
    assert a.state_digest() != b.state_digest()


def test_restoring_an_older_snapshot_is_refused(engines: Callable[..., StorageEngine]) -> None:
    log = Log()
    older = StateMachine(engines("memory"))
    older.apply([log.cmd(Put(b"k", v(b"1")))])
    with older.snapshot_chunks() as stream:
        chunks, index = list(stream), stream.last_index
    newer = StateMachine(engines("memory"))
    newer.apply(Log().noops(5))
    with pytest.raises(RaftInvariantError, match="older than the applied index 5"):
        newer.restore_chunks(chunks, index)
    assert newer.applied_index == 5 and newer.get(b"k") is None


def test_a_damaged_snapshot_changes_nothing(engines: Callable[..., StorageEngine]) -> None:
    log = Log()
    source = populated(engines("memory"), log)
    with source.snapshot_chunks() as stream:
        blob, index = b"".join(stream), stream.last_index
    target = StateMachine(engines("memory"))
    mine = Log()
    target.apply([mine.cmd(LockAcquire(b"mine", A, 0), "me", 1, 1)])
    before = (target.locks(), target.sessions(), target.state_digest(sessions=True))
    damaged = blob[: len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 0xFF]) + blob[len(blob) // 2 + 1 :]
    for bad in (damaged, blob[:-5]):
        with pytest.raises(StorageCorrupted):
            target.restore_chunks([bad], index)
        assert (target.locks(), target.sessions(), target.state_digest(sessions=True)) == before
        assert target.applied_index == 1
