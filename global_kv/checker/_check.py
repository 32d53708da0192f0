"""The checker's entry points: `check_operations` and `assert_linearizable`.

It validates the history, splits it with the model's partition (per key for a KV
store, as Porcupine does: a history is linearizable iff each partition is), drops the
operations that cannot constrain anything, and runs the search on each partition,
smallest first so that a violation is found before the time budget goes to a large
healthy partition. It must never report True unless every partition was proven, and
never turn a timeout into a verdict.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import CheckerError, LinearizabilityUnknown, NotLinearizable
from ._history import UNKNOWN, Operation, validate_operations
from ._model import Model
from ._report import format_failure
from ._search import search_partition

__all__ = ["CheckResult", "assert_linearizable", "check_operations"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history.

    `ok` is True (proven linearizable), False (proven not linearizable) or None (the
    timeout expired first: not a pass). `info` is a human-readable account; for a
    failure it names the partition and the operations around the point no
    linearization gets past. `partitions_checked` counts partitions proven
    linearizable. For a failure, `longest_prefix` is the longest linearizable prefix of
    the failing partition, in linearization order, and `stuck_operation` the operation
    whose return it could not get past.
    """

    ok: bool | None
    info: str
    partitions_checked: int
    partitions: int = 0
    states_explored: int = 0
    elapsed: float = 0.0
    longest_prefix: tuple[Operation, ...] = ()
    stuck_operation: Operation | None = None


def check_operations(model: Model, ops: Iterable[Operation], timeout: float | None = None) -> CheckResult:
    """Check that `ops` is linearizable with respect to `model`.

    `timeout` (seconds, for the whole history) bounds the search, whose worst case is
    exponential; when it expires the result is `ok=None`. Raises `InvalidHistory` for a
    malformed history: there is no verdict to give on one.
    """
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    history = validate_operations(ops)
    parts = model.partition(history)
    if sum(len(p) for p in parts) != len(history):
        raise CheckerError(
            f"{type(model).__name__}.partition lost or duplicated operations "
            f"({sum(len(p) for p in parts)} in the partitions, {len(history)} in the history)"
        )
    is_read_only = model.is_read_only
    pruned = [[op for op in part if not (op.output is UNKNOWN and is_read_only(op.input))] for part in parts]
    count = len(parts)
    order = sorted(range(count), key=lambda i: len(pruned[i]))
    checked = 0
    explored = 0
    for index in order:
        part = pruned[index]
        timed_out = deadline is not None and time.monotonic() > deadline
        outcome = None if timed_out else search_partition(model, part, deadline)
        if outcome is not None:
            explored += outcome.states_explored
        if outcome is None or outcome.ok is None:
            label = model.describe_partition(parts[index])
            named = f" ({label})" if label else ""
            so_far = f" after exploring {outcome.states_explored} states" if outcome else ""
            return CheckResult(
                ok=None,
                info=(
                    f"unknown: gave up at the {timeout:g} s timeout with {checked} of {count} "
                    f"partitions proven linearizable; partition {index + 1}{named} "
                    f"({len(part)} operations) unfinished{so_far}. This is not a pass: "
                    "raise the timeout or check a shorter history"
                ),
                partitions_checked=checked,
                partitions=count,
                states_explored=explored,
                elapsed=time.monotonic() - start,
            )
        if outcome.ok is False:
            label = model.describe_partition(parts[index])
            return CheckResult(
                ok=False,
                info=format_failure(model, part, outcome, label, index, count),
                partitions_checked=checked,
                partitions=count,
                states_explored=explored,
                elapsed=time.monotonic() - start,
                longest_prefix=tuple(part[i] for i in outcome.longest_prefix),
                stuck_operation=None if outcome.stuck_op is None else part[outcome.stuck_op],
            )
        checked += 1
    elapsed = time.monotonic() - start
    return CheckResult(
        ok=True,
        info=(
            f"linearizable: {len(history)} operations in {count} partitions "
            f"({explored} states explored, {elapsed:.3f} s)"
        ),
        partitions_checked=checked,
        partitions=count,
        states_explored=explored,
        elapsed=elapsed,
    )


def assert_linearizable(model: Model, ops: Iterable[Operation], timeout: float | None = None) -> CheckResult:
    """`check_operations`, raising `NotLinearizable` or `LinearizabilityUnknown` unless proven.

    For test harnesses and simulators, where anything but a proof must stop the run.
    """
    result = check_operations(model, ops, timeout)
    if result.ok is False:
        raise NotLinearizable(result)
    if result.ok is None:
        raise LinearizabilityUnknown(result)
    return result
