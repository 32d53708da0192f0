"""The checker's exceptions: malformed input raises, a verdict is a value.

`check_operations` reports "not linearizable" as `CheckResult.ok is False`, never as an
exception: a failing verdict is the expected outcome of a checker. Exceptions are for
input that cannot be judged at all (a history that breaks its own rules, a log line we
cannot read) and for `assert_linearizable`, whose callers asked for one. This module
must never import the search: it is the leaf every other checker module imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import GlobalKVError

if TYPE_CHECKING:
    from ._check import CheckResult

__all__ = [
    "CheckerError",
    "HistoryParseError",
    "InvalidHistory",
    "LinearizabilityUnknown",
    "NotLinearizable",
]


class CheckerError(GlobalKVError):
    """Root of the linearizability checker's errors."""


class InvalidHistory(CheckerError):
    """An operation breaks the rules of a history (times, unknown outputs, inputs the model
    does not know). The history cannot be judged: fix the recorder, not the checker."""

    def __init__(self, detail: str, operation: object = None) -> None:
        self.detail = detail
        self.operation = operation
        where = f" in {operation!r}" if operation is not None else ""
        super().__init__(f"invalid history{where}: {detail}")


class HistoryParseError(CheckerError):
    """A history file has a line the parser cannot read or that contradicts earlier lines."""

    def __init__(self, path: str, line_no: int, line: str, detail: str) -> None:
        self.path = path
        self.line_no = line_no
        self.line = line
        self.detail = detail
        super().__init__(f"{path}:{line_no}: {detail}: {line.strip()!r}")


class NotLinearizable(CheckerError):
    """Raised by `assert_linearizable`: no linearization exists. `result.info` says where."""

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        super().__init__(result.info)


class LinearizabilityUnknown(CheckerError):
    """Raised by `assert_linearizable`: the search hit its timeout before a verdict.
    Raise the timeout or shorten the history; never read this as a pass."""

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        super().__init__(result.info)
