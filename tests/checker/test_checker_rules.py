"""Small hand-made histories, one per rule the checker must get right."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest

from global_kv.checker import (
    UNKNOWN,
    CheckResult,
    InvalidHistory,
    LinearizabilityUnknown,
    Model,
    NotLinearizable,
    Operation,
    assert_linearizable,
    check_operations,
    kv_model,
    register_model,
)


def op(client: int, inp: tuple[Any, ...], call: float, out: Any, ret: float | None) -> Operation:
    return Operation(client, inp, call, out, ret)


def unknown(client: int, inp: tuple[Any, ...], call: float) -> Operation:
    return Operation(client, inp, call, UNKNOWN, None)


def reg(*ops: Operation) -> CheckResult:
    return check_operations(register_model(), list(ops), timeout=10)


def kv(*ops: Operation) -> CheckResult:
    return check_operations(kv_model(), list(ops), timeout=10)


W = "write"
R = ("read",)


# --- plain sequential and concurrent histories -----------------------------------


def test_sequential_history_is_linearizable() -> None:
    r = reg(op(0, R, 0, None, 1), op(0, (W, 1), 2, None, 3), op(1, R, 4, 1, 5))
    assert r.ok is True
    assert r.partitions_checked == 1


def test_stale_read_is_rejected_and_reported() -> None:
    r = reg(
        op(0, (W, 1), 0, None, 1),
        op(0, (W, 2), 2, None, 3),
        op(1, R, 4, 1, 5),  # 2 was acknowledged before this read began
    )
    assert r.ok is False
    assert r.stuck_operation == op(1, R, 4, 1, 5)
    assert [o.input for o in r.longest_prefix] == [(W, 1), (W, 2)]
    assert "read() -> 1" in r.info
    assert "state after it: 2" in r.info


def test_read_concurrent_with_a_write_may_see_old_or_new() -> None:
    for seen in (None, 1):
        assert reg(op(0, (W, 1), 0, None, 10), op(1, R, 1, seen, 2)).ok is True


def test_reads_cannot_go_back_in_time_during_a_concurrent_write() -> None:
    # Once a read saw the new value, a later read (in real time) cannot see the old one.
    r = reg(op(0, (W, 1), 0, None, 10), op(1, R, 1, 1, 2), op(2, R, 3, None, 4))
    assert r.ok is False
    # The other way round is fine: old, then new.
    assert reg(op(0, (W, 1), 0, None, 10), op(1, R, 1, None, 2), op(2, R, 3, 1, 4)).ok is True


def test_overlapping_writes_can_be_ordered_either_way() -> None:
    base = [op(0, (W, 1), 0, None, 5), op(1, (W, 2), 1, None, 6)]
    assert reg(*base, op(2, R, 7, 1, 8)).ok is True
    assert reg(*base, op(2, R, 7, 2, 8)).ok is True
    assert reg(*base, op(2, R, 7, 2, 8), op(2, R, 9, 1, 10)).ok is False


def test_touching_intervals_count_as_concurrent() -> None:
    # A read returning exactly when the write is called may precede it.
    assert reg(op(0, (W, 1), 5, None, 6), op(1, R, 4, None, 5)).ok is True
    assert reg(op(0, (W, 1), 5, None, 6), op(1, R, 6, None, 7)).ok is True
    assert reg(op(0, (W, 1), 5, None, 6), op(1, R, 7, None, 8)).ok is False


# --- unknown outcomes --------------------------------------------------------------


def test_unknown_write_may_have_taken_effect() -> None:
    assert reg(unknown(0, (W, 1), 0), op(1, R, 5, 1, 6)).ok is True


def test_unknown_write_may_never_take_effect() -> None:
    assert reg(unknown(0, (W, 1), 0), op(1, R, 5, None, 6), op(1, R, 7, None, 8)).ok is True


def test_unknown_write_cannot_be_undone_once_observed() -> None:
    r = reg(unknown(0, (W, 1), 0), op(1, R, 5, 1, 6), op(1, R, 7, None, 8))
    assert r.ok is False


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    assert reg(op(1, R, 0, 1, 1), unknown(0, (W, 1), 2)).ok is False


def test_history_only_linearizable_with_an_unknown_write_applied_late() -> None:
    # write(2) timed out; it must land after write(3) and after the read of 3, long
    # after the client gave up on it.
    ops = [
        op(0, (W, 1), 0, None, 1),
        unknown(1, (W, 2), 2),
        op(2, (W, 3), 3, None, 4),
        op(3, R, 5, 3, 6),
        op(3, R, 7, 2, 8),
    ]
    assert reg(*ops).ok is True
    # ... and then nothing can bring 3 back.
    assert reg(*ops, op(3, R, 9, 3, 10)).ok is False


def test_unknown_output_with_known_return_took_effect_in_its_interval() -> None:
    # A cas whose reply was lost but which certainly ran between t=2 and t=3: with the
    # register at 1 it succeeded, whatever the client saw.
    ops = [op(0, (W, 1), 0, None, 1), op(1, ("cas", 1, 5), 2, UNKNOWN, 3)]
    assert reg(*ops, op(2, R, 4, 5, 5)).ok is True
    assert reg(*ops, op(2, R, 4, 1, 5)).ok is False
    # With return_time=None instead it may also never have run, or run later.
    late = [ops[0], unknown(1, ("cas", 1, 5), 2)]
    assert reg(*late, op(2, R, 4, 1, 5), op(2, R, 6, 5, 7)).ok is True


def test_unknown_reads_are_dropped_so_they_cost_nothing() -> None:
    # 200 timed-out reads overlapping everything would otherwise multiply the search space.
    ops = [unknown(100 + i, R, float(i)) for i in range(200)]
    ops += [op(0, (W, i), 300 + 2 * i, None, 301 + 2 * i) for i in range(20)]
    ops.append(op(1, R, 400, 19, 401))
    r = reg(*ops)
    assert r.ok is True
    assert r.states_explored <= 21


def test_lost_writes_do_not_multiply_the_search() -> None:
    # Jepsen's etcd logs are full of timed-out writes that never happened. Sixteen of
    # them, then a violation: every subset of them could have been applied before the
    # known write, and an exact cache alone explores them all (millions of states).
    lost = [unknown(i, (W, i), float(i)) for i in range(16)]
    tail = [op(100, (W, 100), 20, None, 21), op(101, R, 22, 100, 23)]
    r = reg(*lost, *tail, op(101, R, 24, 999, 25))
    assert r.ok is False
    assert r.states_explored < 5_000
    # ... while one of them may still be the one a read saw.
    assert reg(*lost, *tail, op(101, R, 24, 7, 25)).ok is True


def test_unknown_appends_that_happened_are_found_in_order() -> None:
    appends = [unknown(i, ("append", "k", chr(97 + i)), float(i)) for i in range(12)]
    r = kv(*appends, op(50, ("get", "k"), 20, "abcdefghijkl", 21))
    assert r.ok is True
    assert r.states_explored < 1_000
    assert kv(*appends, op(50, ("get", "k"), 20, "abcdefghijlk", 21)).ok is True
    # Proving "no" needs every order of every subset: fine for a few appends (this is
    # exponential in the number of unknown appends; see the package limitations).
    few = appends[:5]
    assert kv(*few, op(50, ("get", "k"), 20, "abdd", 21)).ok is False


# --- CAS and the KV model --------------------------------------------------------------


def test_register_cas_semantics() -> None:
    assert reg(op(0, ("cas", None, 1), 0, True, 1), op(0, R, 2, 1, 3)).ok is True
    assert reg(op(0, (W, 1), 0, None, 1), op(0, ("cas", 2, 3), 2, False, 3), op(0, R, 4, 1, 5)).ok
    assert reg(op(0, (W, 1), 0, None, 1), op(0, ("cas", 2, 3), 2, True, 3)).ok is False
    assert reg(op(0, (W, 1), 0, None, 1), op(0, ("cas", 1, 3), 2, False, 3)).ok is False


def test_concurrent_cas_only_one_can_win() -> None:
    both = [op(0, (W, 0), 0, None, 1), op(1, ("cas", 0, 1), 2, True, 5)]
    assert reg(*both, op(2, ("cas", 0, 2), 3, True, 6)).ok is False
    assert reg(*both, op(2, ("cas", 0, 2), 3, False, 6)).ok is True
    # The loser may have gone first only if it ... lost anyway: 2 then 1 is impossible.
    assert reg(*both, op(2, ("cas", 0, 2), 3, False, 6), op(0, R, 7, 2, 8)).ok is False


def test_kv_cas_absent_delete_and_append() -> None:
    k = "k"
    ok_history = [
        op(0, ("cas", k, None, "a"), 0, True, 1),  # expected None: must be absent
        op(0, ("cas", k, None, "b"), 2, False, 3),
        op(0, ("append", k, "b"), 4, None, 5),
        op(0, ("get", k), 6, "ab", 7),
        op(0, ("cas", k, "ab", None), 8, True, 9),  # new None: delete
        op(0, ("get", k), 10, None, 11),
        op(0, ("append", k, "z"), 12, None, 13),  # absent counts as empty
        op(0, ("get", k), 14, "z", 15),
        op(0, ("delete", k), 16, None, 17),
        op(0, ("get", k), 18, None, 19),
        op(0, ("put", k, b"x"), 20, None, 21),
        op(0, ("append", k, b"y"), 22, None, 23),
        op(0, ("get", k), 24, b"xy", 25),
    ]
    assert kv(*ok_history).ok is True
    assert kv(*ok_history[:3], op(0, ("get", k), 4, "b", 5)).ok is False


def test_kv_is_checked_per_key_and_the_report_names_the_key() -> None:
    r = kv(
        op(0, ("put", "a", 1), 0, None, 1),
        op(0, ("get", "a"), 2, 1, 3),
        op(1, ("put", "b", 1), 0, None, 1),
        op(1, ("put", "b", 2), 2, None, 3),
        op(1, ("get", "b"), 4, 1, 5),
        op(2, ("get", "c"), 0, None, 1),
    )
    assert r.ok is False
    assert r.partitions == 3
    assert "key 'b'" in r.info
    assert "get('b') -> 1" in r.info
    assert r.stuck_operation is not None and r.stuck_operation.input == ("get", "b")


def test_partitions_make_independent_keys_cheap() -> None:
    # 12 keys, each with 12 mutually concurrent puts and a final get: per key the search
    # space is small; unpartitioned it would be the product over keys.
    ops = []
    for key in range(12):
        ops += [op(c, ("put", key, c), 0, None, 10) for c in range(12)]
        ops.append(op(99, ("get", key), 11, 5, 12))
    r = kv(*ops)
    assert r.ok is True
    assert r.partitions_checked == 12


# --- timeouts, invariants and the assert helper -------------------------------------


def _exponential_history(n: int) -> list[Operation]:
    # n concurrent writes, then a read of a value nobody wrote: proving "no" needs all
    # subsets of the writes, about n * 2**n states.
    ops = [op(i, (W, i), 0, None, 1) for i in range(n)]
    ops.append(op(n, R, 2, -1, 3))
    return ops


def test_timeout_gives_unknown_never_a_pass() -> None:
    r = check_operations(register_model(), _exponential_history(24), timeout=0.2)
    assert r.ok is None
    assert r.partitions_checked == 0
    assert "not a pass" in r.info
    assert r.elapsed < 5


def test_small_exponential_history_is_proven_wrong_without_timeout() -> None:
    assert check_operations(register_model(), _exponential_history(8)).ok is False


def test_assert_linearizable_raises_unless_proven() -> None:
    good = [op(0, (W, 1), 0, None, 1), op(0, R, 2, 1, 3)]
    assert assert_linearizable(register_model(), good).ok is True
    with pytest.raises(NotLinearizable) as bad:
        assert_linearizable(register_model(), [op(0, R, 0, 7, 1)])
    assert bad.value.result.ok is False
    with pytest.raises(LinearizabilityUnknown) as slow:
        assert_linearizable(register_model(), _exponential_history(24), timeout=0.1)
    assert slow.value.result.ok is None


@pytest.mark.parametrize(
    "bad",
    [
        op(0, R, 5, None, 4),  # returns before its call
        op(0, (W, 1), 0, None, None),  # unknown outcome with a made-up output
        op(0, R, float("nan"), None, 1),
        op(0, R, 0, None, float("inf")),  # +inf is spelled None
    ],
)
def test_malformed_operations_raise(bad: Operation) -> None:
    with pytest.raises(InvalidHistory):
        check_operations(register_model(), [bad])


def test_unknown_inputs_and_outputs_raise() -> None:
    with pytest.raises(InvalidHistory):
        reg(op(0, ("increment",), 0, None, 1))
    with pytest.raises(InvalidHistory):
        reg(op(0, ("cas", None, 1), 0, "yes", 1))
    with pytest.raises(InvalidHistory):
        kv(
            op(0, ("put", "k", "a"), 0, None, 1),
            op(0, ("append", "k", b"b"), 2, None, 3),
        )


# --- a model written by someone else ----------------------------------------------


class _Counter(Model):
    """A counter with ("incr",) -> new value and ("read",) -> value."""

    def init(self) -> Hashable:
        return 0

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        if input[0] == "incr":
            return (output is UNKNOWN or output == state + 1), state + 1
        return (output is UNKNOWN or output == state), state


def test_a_custom_model_uses_the_defaults() -> None:
    m = _Counter()
    concurrent = [
        op(0, ("incr",), 0, 2, 5),
        op(1, ("incr",), 1, 1, 6),
        op(2, ("read",), 7, 2, 8),
    ]
    assert check_operations(m, concurrent).ok is True
    dup = [op(0, ("incr",), 0, 1, 5), op(1, ("incr",), 1, 1, 6)]
    r = check_operations(m, dup)
    assert r.ok is False
    assert "('incr',) -> 1" in r.info
