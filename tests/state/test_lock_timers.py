"""LockTimers: which expiries a leader proposes, and when (pure: time is given)."""

from __future__ import annotations

from collections.abc import Callable

from ergo_py.ids import PID
from global_kv.state import Granted, Lock, LockExpire, LockTimers, Ok, Released

OWNER = PID("a@host", 1, 1)


def lock(key: bytes = b"k", token: int = 5, ttl_ms: int = 1000, refreshed: int | None = None) -> Lock:
    return Lock(key, OWNER, token, ttl_ms, token, token if refreshed is None else refreshed)


def table(*locks: Lock) -> Callable[[bytes], Lock | None]:
    return {held.key: held for held in locks}.get


def timers() -> LockTimers:
    return LockTimers(ttl_unit=0.001, retry_after=0.5)


def test_a_grant_arms_its_ttl_and_the_expiry_is_due_after_it() -> None:
    t, held = timers(), lock()
    assert t.on_result(Granted(b"k", 5, 1000), 5, held, now=10.0)
    assert t.due(table(held), 10.99) == []
    assert t.due(table(held), 11.0) == [LockExpire(b"k", 5, 5)]


def test_a_duplicates_cached_grant_arms_nothing() -> None:
    # A retried acquire answered from its session names entry 5; the entry applied now is 9.
    t, held = timers(), lock()
    assert not t.on_result(Granted(b"k", 5, 1000), 9, held, now=10.0)
    assert t.deadlines == {}


def test_a_proposed_expiry_is_proposed_again_only_after_retry_after() -> None:
    t, held = timers(), lock()
    t.on_result(Granted(b"k", 5, 1000), 5, held, now=0.0)
    [op] = t.due(table(held), 1.0)
    t.proposed(op, 1.0)
    assert t.due(table(held), 1.4) == []
    assert t.due(table(held), 1.5) == [op]


def test_a_refused_proposal_is_due_again_at_once() -> None:
    t, held = timers(), lock()
    t.on_result(Granted(b"k", 5, 1000), 5, held, now=0.0)
    assert t.due(table(held), 1.0) == t.due(table(held), 1.0) == [LockExpire(b"k", 5, 5)]


def test_a_refresh_that_won_the_race_gets_its_own_deadline_and_expiry() -> None:
    t, held = timers(), lock()
    t.on_result(Granted(b"k", 5, 1000), 5, held, now=0.0)
    [op] = t.due(table(held), 1.0)
    t.proposed(op, 1.0)  # the refresh at entry 8 commits first; this expiry will be refused
    refreshed = lock(refreshed=8)
    assert t.on_result(Granted(b"k", 5, 1000), 8, refreshed, now=1.1)
    assert t.due(table(refreshed), 2.0) == []
    assert t.due(table(refreshed), 2.1) == [LockExpire(b"k", 5, 8)]


def test_a_release_disarms_its_own_token_only() -> None:
    t, new = timers(), lock(token=7)
    t.on_result(Granted(b"k", 7, 1000), 7, new, now=0.0)
    # A retried release of token 5, answered from its session: the new holder keeps its timer.
    t.on_result(Released(((b"k", 5),)), 9, None, now=0.5)
    assert t.deadlines == {b"k": (7, 1.0)}
    t.on_result(Released(((b"k", 7),)), 10, None, now=0.6)
    assert t.deadlines == {}


def test_a_deadline_of_a_lock_gone_or_granted_again_is_dropped_without_a_proposal() -> None:
    t = timers()
    t.on_result(Granted(b"k", 5, 1000), 5, lock(), now=0.0)
    assert t.due(table(), 2.0) == [] and t.deadlines == {}
    t.on_result(Granted(b"k", 5, 1000), 5, lock(), now=0.0)
    assert t.due(table(lock(token=9)), 2.0) == [] and t.deadlines == {}


def test_no_ttl_means_no_timer_and_other_results_change_nothing() -> None:
    t = timers()
    assert t.on_result(Granted(b"k", 5, 0), 5, lock(ttl_ms=0), now=0.0)
    assert t.deadlines == {}
    assert not t.on_result(Ok(), 6, None, now=0.0)


def test_becoming_leader_rearms_every_lock_from_now() -> None:
    t = timers()
    t.on_result(Granted(b"k", 5, 1000), 5, lock(), now=0.0)
    t.arm_all([lock(), lock(b"j", token=6, ttl_ms=2000)], now=50.0)
    assert t.deadlines == {b"k": (5, 51.0), b"j": (6, 52.0)}
