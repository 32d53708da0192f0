"""What a recorded client history is made of: `Operation` and the `UNKNOWN` output.

This module defines values and the rules a well-formed history obeys; it must never
search, parse files or know any model.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._errors import InvalidHistory

__all__ = ["UNKNOWN", "Operation", "validate_operations"]


class _Unknown(enum.Enum):
    # An enum member is a true singleton that survives pickling (process pools) and
    # compares only to itself, so `output is UNKNOWN` is reliable everywhere.
    UNKNOWN = "UNKNOWN"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown.UNKNOWN
"""The output of an operation whose result the client never saw; every model accepts it."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as the client observed it.

    `call` and `return_time` are on one clock (any unit, only their order matters).
    `return_time=None` is an unknown outcome (timeout, crash): the operation may have
    taken effect at any moment after `call`, or never, and its `output` must be
    `UNKNOWN`. An operation may also have a known `return_time` with an `UNKNOWN`
    output: it took effect exactly once between `call` and `return_time`, but nobody
    saw its result (use this only when that is certain, e.g. for a read).
    """

    client_id: int
    input: Any
    call: float
    output: Any
    return_time: float | None

    @property
    def unknown_outcome(self) -> bool:
        """True when the client never learned whether (or when) the operation took effect."""
        return self.return_time is None


def validate_operations(ops: Iterable[Operation]) -> list[Operation]:
    """Return `ops` as a list, raising `InvalidHistory` on the first malformed operation.

    A malformed history would make any verdict meaningless (an operation returning before
    its call would be treated as instantaneous, hiding or inventing a violation), so it is
    an error, not a verdict.
    """
    out: list[Operation] = []
    for op in ops:
        if not isinstance(op, Operation):
            raise InvalidHistory(f"expected an Operation, got {type(op).__name__}", op)
        call = op.call
        if not isinstance(call, (int, float)) or math.isnan(call) or math.isinf(call):
            raise InvalidHistory("call time must be a finite number", op)
        ret = op.return_time
        if ret is None:
            if op.output is not UNKNOWN:
                raise InvalidHistory(
                    "an operation with return_time=None (unknown outcome) must have "
                    "output=UNKNOWN; record the output only when the client saw it",
                    op,
                )
        else:
            if not isinstance(ret, (int, float)) or math.isnan(ret) or math.isinf(ret):
                raise InvalidHistory(
                    "return_time must be a finite number, or None for an unknown outcome",
                    op,
                )
            if ret < call:
                raise InvalidHistory(f"returns at {ret} before its call at {call}", op)
        out.append(op)
    return out
