"""Turn a failed search into text a person can debug a distributed-system bug from.

A linearizability failure is only useful if it points at the operations involved: the
partition (key), the operation no linearization gets past, the longest prefix that did
linearize and the state it left, and what each pending operation would have done from
there. This module must never decide a verdict; it only describes one.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._history import Operation
from ._model import Model
from ._search import SearchOutcome

__all__ = ["clip", "describe_op", "format_failure"]

_PREFIX_TAIL = 8  # linearized operations shown before the point of failure
_MAX_CANDIDATES = 12  # pending operations shown at the point of failure
_MAX_TEXT = 200


def clip(text: str, limit: int = _MAX_TEXT) -> str:
    """Shorten long values (appended strings grow) keeping both ends, where differences hide."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head - 5
    return f"{text[:head]} ... {text[-tail:]}"


def _t(x: float | None) -> str:
    return "never (unknown outcome)" if x is None else f"{x:g}"


def describe_op(model: Model, op: Operation) -> str:
    """One operation with its client and its interval, on one line."""
    what = clip(model.describe_operation(op.input, op.output))
    return f"client {op.client_id}: {what}  [call {_t(op.call)}, return {_t(op.return_time)}]"


def format_failure(
    model: Model,
    ops: Sequence[Operation],
    outcome: SearchOutcome,
    label: str,
    index: int,
    count: int,
) -> str:
    """The failure report for partition `index` (0-based) of `count`, named `label`."""
    lines: list[str] = []
    named = f" ({label})" if label else ""
    lines.append(f"not linearizable: partition {index + 1} of {count}{named}, {len(ops)} operations checked")
    prefix = outcome.longest_prefix
    state_text = clip(model.describe_state(outcome.state_after_prefix))
    stuck = ops[outcome.stuck_op] if outcome.stuck_op is not None else None
    if stuck is not None:
        lines.append("no linearization gets past the return of:")
        lines.append(f"  {describe_op(model, stuck)}")
    lines.append(f"longest linearizable prefix: {len(prefix)} of {len(ops)} operations; state after it: {state_text}")
    if prefix:
        shown = prefix[-_PREFIX_TAIL:]
        more = f"last {len(shown)} " if len(shown) < len(prefix) else ""
        lines.append(f"{more}operations of that prefix, in linearization order:")
        for i in shown:
            lines.append(f"  {describe_op(model, ops[i])}")
    if stuck is not None:
        in_prefix = set(prefix)
        horizon = stuck.return_time if stuck.return_time is not None else float("inf")
        pending = [i for i in range(len(ops)) if i not in in_prefix and ops[i].call <= horizon]
        # Completed operations first: unknown outcomes are rarely the culprit.
        pending.sort(key=lambda i: (ops[i].return_time is None, ops[i].call, i))
        lines.append(
            f"operations not in that prefix that were called before it returned ({len(pending)}), "
            "and what each would do next from that state:"
        )
        for i in pending[:_MAX_CANDIDATES]:
            ok, _next = model.step(outcome.state_after_prefix, ops[i].input, ops[i].output)
            verdict = (
                "possible, but no continuation linearizes the rest"
                if ok
                else "impossible: the model gives a different output"
            )
            lines.append(f"  {describe_op(model, ops[i])}  -> {verdict}")
        if len(pending) > _MAX_CANDIDATES:
            lines.append(f"  ... and {len(pending) - _MAX_CANDIDATES} more")
    return "\n".join(lines)
