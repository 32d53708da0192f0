"""Property tests: histories made by running a sequential KV store are always accepted;
the same history with one read changed to a value never written is always rejected."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from global_kv.checker import UNKNOWN, Operation, check_operations, kv_model

KEYS = ("a", "b", "c")
VALUES = ("x", "y", "z")
NEVER_WRITTEN = "never-written"  # no put/append/cas of x, y, z can produce it


@st.composite
def _histories(draw: st.DrawFn) -> list[Operation]:
    """Run random operations one at a time on a dict; operation i takes effect at
    t = 10 * i, and its recorded interval stretches a random amount either side, so
    neighbours overlap in real time. Some become unknown outcomes: they either took
    effect at their point, or never did."""
    n = draw(st.integers(min_value=1, max_value=40))
    store: dict[str, Any] = {}
    ops: list[Operation] = []
    unknown_appends = 0
    for i in range(n):
        key = draw(st.sampled_from(KEYS))
        kind = draw(st.sampled_from(("get", "get", "put", "append", "delete", "cas")))
        value = draw(st.sampled_from(VALUES))
        current = store.get(key)
        inp: tuple[Any, ...]
        expected: str | None = None
        new: str | None = None
        if kind == "get":
            inp = ("get", key)
        elif kind in ("put", "append"):
            inp = (kind, key, value)
        elif kind == "delete":
            inp = ("delete", key)
        else:
            expected = draw(st.sampled_from((current, None, value)))
            new = draw(st.sampled_from((value, None)))
            inp = ("cas", key, expected, new)
        fate = draw(st.sampled_from(("ok",) * 8 + ("unknown-applied", "unknown-lost")))
        if kind == "append" and fate != "ok":
            # Proving a violation is exponential in unknown appends (they never
            # commute): keep a few, so the rejection test stays fast.
            unknown_appends += 1
            if unknown_appends > 3:
                fate = "ok"
        output: Any = None
        if fate != "unknown-lost":
            if kind == "get":
                output = current
            elif kind in ("put", "append"):
                store[key] = value if kind == "put" or current is None else current + value
            elif kind == "delete":
                store.pop(key, None)
            else:
                output = current == expected
                if output:
                    if new is None:
                        store.pop(key, None)
                    else:
                        store[key] = new
        t = 10.0 * i
        call = t - draw(st.integers(min_value=0, max_value=25))
        client = draw(st.integers(min_value=0, max_value=4))
        if fate == "ok":
            ret = t + draw(st.integers(min_value=0, max_value=25))
            ops.append(Operation(client, inp, call, output, ret))
        else:
            ops.append(Operation(client, inp, call, UNKNOWN, None))
    # Always end with a read, so every history has one to corrupt.
    key = draw(st.sampled_from(KEYS))
    ops.append(Operation(9, ("get", key), 10.0 * n, store.get(key), 10.0 * n + 1))
    return draw(st.permutations(ops))


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_histories())
def test_histories_of_a_sequential_store_are_accepted(ops: list[Operation]) -> None:
    result = check_operations(kv_model(), ops, timeout=30)
    assert result.ok is True, result.info


@_SETTINGS
@given(_histories(), st.data())
def test_a_read_of_a_never_written_value_is_rejected(ops: list[Operation], data: st.DataObject) -> None:
    reads = [i for i, o in enumerate(ops) if o.input[0] == "get" and o.output is not UNKNOWN]
    victim = data.draw(st.sampled_from(reads))
    o = ops[victim]
    bad = list(ops)
    bad[victim] = Operation(o.client_id, o.input, o.call, NEVER_WRITTEN, o.return_time)
    result = check_operations(kv_model(), bad, timeout=30)
    assert result.ok is False
    assert result.stuck_operation is not None
    assert NEVER_WRITTEN in result.info
