"""The contract between the checker and a sequential specification: `Model`.

A model is the sequential object the history should be equivalent to. The search only
calls `init` and `step` (millions of times: keep them cheap and pure); the `describe_*`
methods exist so a failure report reads in the model's own words. A model must never
keep state between calls: the search backtracks and replays states freely.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Sequence
from typing import Any

from ._history import UNKNOWN, Operation

__all__ = ["Model"]


class Model(abc.ABC):
    """A sequential specification, in the shape Porcupine's `Model` has.

    Rules the search relies on:

    - states are hashable and compare equal exactly when they are the same state (the
      memoisation cache is keyed by them);
    - `step` with `output is UNKNOWN` accepts (returns True) and computes the state as if
      the operation ran: unknown-outcome operations "match anything";
    - `partition` splits a history into independent sub-histories (per key for a KV
      store): a history is linearizable iff every partition is (P-compositionality).
    """

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        """Split into independently checkable sub-histories. Default: one partition."""
        return [list(ops)] if ops else []

    @abc.abstractmethod
    def init(self) -> Hashable:
        """The state before any operation."""

    @abc.abstractmethod
    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        """Apply `input` to `state`: (is `output` what the object would answer, next state).

        The next state only matters when the first element is True. Raise
        `InvalidHistory` for an input this model does not know: it is a recorder bug.
        """

    def describe_operation(self, input: Any, output: Any) -> str:
        """One operation, for humans reading a failure report."""
        shown = "?" if output is UNKNOWN else repr(output)
        return f"{input!r} -> {shown}"

    def describe_state(self, state: Any) -> str:
        """One state, for humans reading a failure report."""
        return repr(state)

    def describe_partition(self, ops: Sequence[Operation]) -> str:
        """What a partition holds (e.g. "key 'x'"), for the failure report. Default: ''."""
        return ""

    def is_read_only(self, input: Any) -> bool:
        """True if `input` never changes the state.

        The checker drops read-only operations whose output is UNKNOWN before searching:
        they accept any output in any state, so they can be placed anywhere and constrain
        nothing, while each one left in would double the states the search may visit.
        Answer False when unsure; that is always sound.
        """
        return False
