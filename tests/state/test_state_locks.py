"""Locks: fencing tokens are entry indexes, only the holding token releases, owners die."""

from __future__ import annotations

import pytest

from global_kv.state import (
    Granted,
    Lock,
    LockAcquire,
    LockExpire,
    LockHeldResult,
    LockNotHeldResult,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Released,
    StaleTokenResult,
    StateMachine,
)
from tests.state.state_support import A, B, C, Log, apply1


def test_acquire_grants_with_the_entry_index_as_token(sm: StateMachine, log: Log) -> None:
    log.noops(4)
    sm.apply(log.entries)
    entry = log.cmd(LockAcquire(b"L", A, 250))
    assert apply1(sm, entry) == Granted(b"L", entry.index, 250)
    assert sm.lock(b"L") == Lock(b"L", A, entry.index, 250, entry.index, entry.index)
    assert sm.lock(b"other") is None


@pytest.mark.parametrize("who", [A, B], ids=["same-owner", "other-owner"])
def test_acquire_of_a_held_lock_fails_with_the_holder(sm: StateMachine, log: Log, who: object) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 0)))
    assert apply1(sm, log.cmd(LockAcquire(b"L", who, 10))) == LockHeldResult(b"L", A, 1)  # type: ignore[arg-type]
    assert sm.lock(b"L") == Lock(b"L", A, 1, 0, 1, 1)  # unchanged: not re-entrant, no queue


def test_tokens_increase_strictly_across_keys_holders_and_releases(sm: StateMachine, log: Log) -> None:
    tokens: list[int] = []
    for round_ in range(4):
        for key, owner in [(b"x", A), (b"y", B), (b"x", C)]:
            result = apply1(sm, log.cmd(LockAcquire(key, owner, 0)))
            if isinstance(result, Granted):
                tokens.append(result.token)
                assert result.token == log.next - 1  # the granting entry's index
        log.noops(round_)  # leader changes add no-ops: tokens only grow
        sm.apply(log.entries)
        for lock in sm.locks():
            apply1(sm, log.cmd(LockRelease(lock.key, lock.token)))
    assert len(tokens) == 8
    assert tokens == sorted(set(tokens))


def test_release_only_with_the_holding_token(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 0)))  # token 1
    assert apply1(sm, log.cmd(LockRelease(b"L", 7))) == StaleTokenResult(b"L", 7, 1)
    assert sm.lock(b"L") is not None
    assert apply1(sm, log.cmd(LockRelease(b"other", 1))) == LockNotHeldResult(b"other")
    assert apply1(sm, log.cmd(LockRelease(b"L", 1))) == Released(((b"L", 1),))
    assert sm.lock(b"L") is None and sm.owners() == []
    # A retried release (no session): the lock is free now ...
    assert apply1(sm, log.cmd(LockRelease(b"L", 1))) == LockNotHeldResult(b"L")
    # ... or held by someone newer, who keeps it.
    granted = apply1(sm, log.cmd(LockAcquire(b"L", B, 0)))
    assert apply1(sm, log.cmd(LockRelease(b"L", 1))) == StaleTokenResult(b"L", 1, granted.token)
    assert sm.lock(b"L").owner == B  # type: ignore[union-attr]


def test_refresh_updates_ttl_and_refreshed_index_only(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 100)))
    log.noops(2)
    sm.apply(log.entries)
    refresh = log.cmd(LockRefresh(b"L", 1, 900))
    assert apply1(sm, refresh) == Granted(b"L", 1, 900)
    assert sm.lock(b"L") == Lock(b"L", A, 1, 900, 1, refresh.index)
    assert apply1(sm, log.cmd(LockRefresh(b"L", 2, 5))) == StaleTokenResult(b"L", 2, 1)
    assert apply1(sm, log.cmd(LockRefresh(b"M", 1, 5))) == LockNotHeldResult(b"M")
    assert sm.lock(b"L").ttl_ms == 900  # type: ignore[union-attr]


def test_owner_release_frees_everything_it_held_and_nothing_else(sm: StateMachine, log: Log) -> None:
    sm.apply(
        [
            log.cmd(LockAcquire(b"c", A, 0)),
            log.cmd(LockAcquire(b"a", A, 10)),
            log.cmd(LockAcquire(b"b", B, 0)),
            log.cmd(LockAcquire(b"d", A, 0)),
        ]
    )
    assert sm.owners() == [A, B]
    assert [lock.key for lock in sm.locks_of(A)] == [b"a", b"c", b"d"]
    result = apply1(sm, log.cmd(LockReleaseOwner(A)))
    assert result == Released(((b"a", 2), (b"c", 1), (b"d", 4)))
    assert sm.locks_of(A) == [] and sm.owners() == [B]
    assert [lock.key for lock in sm.locks()] == [b"b"]
    assert apply1(sm, log.cmd(LockReleaseOwner(A))) == Released(())  # again: nothing left
    assert apply1(sm, log.cmd(LockReleaseOwner(C))) == Released(())


def test_expire_only_with_the_current_token(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 100)))  # token 1
    apply1(sm, log.cmd(LockRelease(b"L", 1)))
    apply1(sm, log.cmd(LockAcquire(b"L", B, 100)))  # token 3
    # The old grant's timer fires late: the new holder keeps the lock.
    assert apply1(sm, log.cmd(LockExpire(b"L", 1))) == StaleTokenResult(b"L", 1, 3)
    assert sm.lock(b"L").owner == B  # type: ignore[union-attr]
    assert apply1(sm, log.cmd(LockExpire(b"L", 3))) == Released(((b"L", 3),))
    assert apply1(sm, log.cmd(LockExpire(b"L", 3))) == LockNotHeldResult(b"L")


def test_expire_armed_before_a_refresh_keeps_the_lock(sm: StateMachine, log: Log) -> None:
    apply1(sm, log.cmd(LockAcquire(b"L", A, 100)))  # token 1, refreshed_index 1
    refresh = log.cmd(LockRefresh(b"L", 1, 100))
    apply1(sm, refresh)
    # The leader armed its timer from refreshed_index 1; the refresh won the race.
    assert apply1(sm, log.cmd(LockExpire(b"L", 1, 1))) == LockHeldResult(b"L", A, 1)
    assert sm.lock(b"L") is not None
    assert apply1(sm, log.cmd(LockExpire(b"L", 1, refresh.index))) == Released(((b"L", 1),))


def test_lock_table_survives_reopen(sm: StateMachine, log: Log) -> None:
    sm.apply([log.cmd(LockAcquire(b"a", A, 5)), log.cmd(LockAcquire(b"b", C, 0)), log.cmd(LockRefresh(b"a", 1, 7))])
    again = StateMachine(sm._engine)
    assert again.locks() == sm.locks() == [Lock(b"a", A, 1, 7, 1, 3), Lock(b"b", C, 2, 0, 2, 2)]
    assert again.owners() == [A, C]
    assert again.locks_of(C) == [Lock(b"b", C, 2, 0, 2, 2)]
    assert apply1(again, log.cmd(LockReleaseOwner(A))) == Released(((b"a", 1),))
