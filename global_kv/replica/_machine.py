"""The state machine a replica drives, as an object (hashicorp/raft's `FSM`).

`apply` gets committed entries in order and returns the results of those that carried a
command; `snapshot` hands out a point-in-time view (the index it covers and its chunks,
read a few at a time by the driver so a large state never stalls replication);
`restore` replaces the state with a snapshot's. `NullMachine` is the state of a
`LeaderActor` used alone for leader election: nothing but how far it applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ..raft import Entry, Snapshot
from ..state import Applied

__all__ = ["Machine", "NullMachine"]


class Machine(Protocol):
    @property
    def applied_index(self) -> int: ...

    def apply(self, entries: Sequence[Entry]) -> Sequence[Applied]: ...

    def snapshot(self) -> tuple[int, Iterable[bytes]]: ...

    def restore(self, snapshot: Snapshot) -> None: ...


class NullMachine:
    """No state: entries only move the applied index; a snapshot is empty."""

    __slots__ = ("_applied",)

    def __init__(self, applied: int = 0) -> None:
        self._applied = applied

    @property
    def applied_index(self) -> int:
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> Sequence[Applied]:
        if entries:
            self._applied = entries[-1].index
        return ()

    def snapshot(self) -> tuple[int, Iterable[bytes]]:
        return self._applied, (b"",)

    def restore(self, snapshot: Snapshot) -> None:
        self._applied = max(self._applied, snapshot.meta.index)
