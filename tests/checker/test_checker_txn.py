"""The KV model's transactions: keys a transaction touches are checked together, and a
history that no order of its multi-key transactions explains is refused."""

from __future__ import annotations

from global_kv.checker import UNKNOWN, Operation, check_operations, kv_model

MODEL = kv_model()


def _txn(compares: tuple[tuple[str, str | None], ...], success: tuple, failure: tuple = ()) -> tuple:  # type: ignore[type-arg]
    keys = tuple(sorted({k for k, _ in compares} | {op[1] for op in success + failure}))
    return ("txn", keys, compares, success, failure)


def test_transactions_join_their_keys_into_one_partition() -> None:
    ops = [
        Operation(0, ("put", "a", "1"), 0, None, 1),
        Operation(1, _txn((("a", "1"),), (("put", "b", "2"),)), 2, (True, ()), 3),
        Operation(2, ("put", "c", "3"), 0, None, 1),
        Operation(3, ("get", "b"), 4, "2", 5),
    ]
    parts = MODEL.partition(ops)
    assert sorted(len(p) for p in parts) == [1, 3]
    assert check_operations(MODEL, ops).ok is True


def test_a_get_inside_sees_the_writes_before_it_and_the_other_branch_runs_on_a_failed_compare() -> None:
    ops = [
        Operation(0, _txn((("a", None),), (("put", "a", "x"), ("get", "a")), (("get", "a"),)), 0, (True, ("x",)), 1),
        Operation(0, _txn((("a", None),), (("put", "a", "y"),), (("get", "a"),)), 2, (False, ("x",)), 3),
    ]
    assert check_operations(MODEL, ops).ok is True
    wrong = [ops[0], Operation(0, ops[1].input, 2, (True, ()), 3)]  # both found `a` absent
    assert check_operations(MODEL, wrong).ok is False


def test_two_key_swaps_that_would_each_need_the_other_first_are_not_linearizable() -> None:
    # Concurrent transfers between a and b, each seeing the state before the other, both
    # succeeding: a lost update no order of the two explains.
    start = [Operation(0, ("put", "a", "1"), 0, None, 1), Operation(0, ("put", "b", "0"), 1, None, 2)]
    move = _txn((("a", "1"), ("b", "0")), (("put", "a", "0"), ("put", "b", "1")))
    back = Operation(1, move, 3, (True, ()), 5)
    again = Operation(2, move, 3, (True, ()), 5)
    assert check_operations(MODEL, [*start, back, again]).ok is False
    unknown = Operation(2, move, 3, UNKNOWN, None)  # may never have applied
    assert check_operations(MODEL, [*start, back, unknown]).ok is True
