"""Exactly-once client sessions (Raft dissertation §6.3), expiring by log index only."""

from __future__ import annotations

import pytest

from global_kv.state import (
    CAS,
    CASFailedResult,
    Delete,
    Granted,
    LockAcquire,
    LockHeldResult,
    LockNotHeldResult,
    LockRelease,
    Ok,
    Put,
    Released,
    SessionClose,
    SessionExpiredResult,
    SessionInfo,
    StateMachine,
)
from global_kv.storage import StorageEngine
from tests.state.state_support import A, B, Log, apply1, v


def test_a_duplicate_returns_the_cached_result_and_changes_nothing(sm: StateMachine, log: Log) -> None:
    assert apply1(sm, log.cmd(CAS(b"k", None, v(b"1")), "c", 1, 1)) == Ok()
    assert apply1(sm, log.cmd(LockAcquire(b"L", A, 0), "c", 2, 1)) == Granted(b"L", 2, 0)
    apply1(sm, log.cmd(Put(b"k", v(b"other")), "d", 1, 1))
    digest = sm.state_digest()
    # Executed again, the CAS would fail and the acquire would find the lock held.
    assert apply1(sm, log.cmd(CAS(b"k", None, v(b"1")), "c", 1, 1)) == Ok()
    assert apply1(sm, log.cmd(LockAcquire(b"L", A, 0), "c", 2, 1)) == Granted(b"L", 2, 0)
    assert sm.state_digest() == digest and sm.get(b"k") == b"other"


def test_concurrent_requests_and_acknowledgements(sm: StateMachine, log: Log) -> None:
    # Three requests in flight (ack 1: nothing received yet), applied out of order.
    assert apply1(sm, log.cmd(Put(b"b", v(b"2")), "c", 2, 1)) == Ok()
    assert apply1(sm, log.cmd(Put(b"a", v(b"1")), "c", 1, 1)) == Ok()
    assert apply1(sm, log.cmd(CAS(b"c", v(b"x"), None), "c", 3, 1)) == CASFailedResult(b"c", None)
    assert sm.session("c") == SessionInfo("c", 3, 1, (1, 2, 3))
    apply1(sm, log.cmd(Put(b"a", v(b"changed")), "other", 1, 0))
    assert apply1(sm, log.cmd(Put(b"a", v(b"1")), "c", 1, 1)) == Ok()  # a retry of 1
    assert sm.get(b"a") == b"changed"
    # Request 4 says results below 3 arrived: 1 and 2 are forgotten, 3 is kept.
    assert apply1(sm, log.cmd(Delete(b"z"), "c", 4, 3)) == Ok()
    assert sm.session("c").cached == (3, 4)  # type: ignore[union-attr]
    assert apply1(sm, log.cmd(Put(b"b", v(b"2")), "c", 2, 1)) == SessionExpiredResult("c", 2)
    assert apply1(sm, log.cmd(CAS(b"c", v(b"x"), None), "c", 3, 3)) == CASFailedResult(b"c", None)
    assert sm.get(b"b") == b"2"


def test_forgotten_results_are_deleted_from_storage(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    for seq in range(1, 6):
        apply1(sm, log.cmd(Delete(b"k"), "c", seq, 1))
    apply1(sm, log.cmd(Delete(b"k"), "c", 6, 6))
    with engine.prefix_scan(b"s") as records:
        assert len(list(records)) == 2  # the meta record and the result of 6


def test_unknown_session_with_received_results_is_expired(sm: StateMachine, log: Log) -> None:
    result = apply1(sm, log.cmd(Put(b"k", v(b"1")), "lost", 7, 5))
    assert result == SessionExpiredResult("lost", 7)
    assert sm.get(b"k") is None and sm.session("lost") is None  # not applied, no session made
    assert "continue with a new client id" in str(result.to_exception())


def test_internal_commands_are_not_deduplicated(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 0)))
    assert apply1(sm, log.cmd(LockRelease(b"L", 1))) == Released(((b"L", 1),))
    assert apply1(sm, log.cmd(LockRelease(b"L", 1))) == LockNotHeldResult(b"L")
    assert sm.sessions() == []


@pytest.mark.parametrize("expiry", [1, 5])
def test_sessions_expire_after_idle_entries_by_index(engine: StorageEngine, log: Log, expiry: int) -> None:
    sm = StateMachine(engine, session_expiry_entries=expiry)
    apply1(sm, log.cmd(Put(b"k", v(b"1")), "c", 1, 1))  # used at index 1
    sm.apply(log.noops(expiry))  # idle for exactly `expiry` entries: still alive
    assert sm.session("c") is not None
    assert apply1(sm, log.cmd(Put(b"k", v(b"1")), "c", 1, 1)) == Ok()  # deduplicated, and touched
    touched = log.next - 1
    sm.apply(log.noops(expiry))
    assert sm.session("c") == SessionInfo("c", touched, 1, (1,))
    sm.apply(log.noops(1))  # one more: idle for more than `expiry` entries
    assert sm.session("c") is None
    with engine.prefix_scan(b"s") as records:
        assert list(records) == []
    assert apply1(sm, log.cmd(Put(b"k", v(b"2")), "c", 2, 2)) == SessionExpiredResult("c", 2)


def test_expiry_drops_only_idle_sessions_in_order(engine: StorageEngine, log: Log) -> None:
    sm = StateMachine(engine, session_expiry_entries=3)
    sm.apply([log.cmd(Delete(b"k"), c, 1, 1) for c in ("a", "b", "c")])  # at 1, 2, 3
    apply1(sm, log.cmd(Delete(b"k"), "a", 2, 2))  # a used again at 4
    sm.apply(log.noops(1))  # 5: b idle 3
    assert [s.client_id for s in sm.sessions()] == ["a", "b", "c"]
    sm.apply(log.noops(1))  # 6: b idle 4 > 3
    assert [s.client_id for s in sm.sessions()] == ["a", "c"]
    sm.apply(log.noops(1))  # 7: c idle 4 > 3, a idle 3
    assert [s.client_id for s in sm.sessions()] == ["a"]
    assert StateMachine(engine, session_expiry_entries=3).sessions() == sm.sessions()


def test_session_close(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(Put(b"k", v(b"1")), "c", 1, 1))
    apply1(sm, log.cmd(Put(b"k", v(b"1")), "d", 1, 1))
    assert apply1(sm, log.cmd(SessionClose("c"))) == Ok()
    assert sm.session("c") is None
    # A client closing its own session: the close is not cached anywhere.
    assert apply1(sm, log.cmd(SessionClose("d"), "d", 2, 2)) == Ok()
    assert sm.sessions() == []
    assert apply1(sm, log.cmd(SessionClose("never"))) == Ok()
    assert apply1(sm, log.cmd(Put(b"k", v(b"2")), "c", 2, 2)) == SessionExpiredResult("c", 2)
    assert sm.get(b"k") == b"1"


def test_cached_results_survive_reopen(sm: StateMachine, engine: StorageEngine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", B, 0), "c", 1, 1))
    held = apply1(sm, log.cmd(LockAcquire(b"L", A, 0), "c", 2, 1))
    failed = apply1(sm, log.cmd(CAS(b"x", v(b"no"), None), "c", 3, 1))
    again = StateMachine(engine)
    assert again.sessions() == sm.sessions()
    retries = [
        log.cmd(LockAcquire(b"L", B, 0), "c", 1, 1),
        log.cmd(LockAcquire(b"L", A, 0), "c", 2, 1),
        log.cmd(CAS(b"x", v(b"no"), None), "c", 3, 1),
    ]
    assert [a.result for a in again.apply(retries)] == [Granted(b"L", 1, 0), held, failed]
    assert held == LockHeldResult(b"L", B, 1) and failed == CASFailedResult(b"x", None)
