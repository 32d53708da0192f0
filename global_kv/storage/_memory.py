"""MemoryStorage: the volatile engine, and the table-backed reads it shares with hybrid.

Fast, sorted for range scans, and gone when the process exits: for tests, simulations
and clusters that rebuild their state from the Raft log and peers on restart. Scans and
snapshots copy the references they need (never the bytes) under the lock, which is what
makes them point-in-time views without a multi-version structure.

It must never expose its table to a caller (a caller mutating it would bypass the lock).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from ._engine import Pairs, StorageEngine
from ._sorted_table import SortedTable

__all__ = ["MemoryStorage"]


class _TableEngine(StorageEngine):
    """Reads, scans and snapshots served from a SortedTable (memory and hybrid)."""

    def __init__(self) -> None:
        super().__init__()
        self._table = SortedTable()
        self._applied_index = 0

    def _get(self, key: bytes) -> bytes | None:
        return self._table.get(key)

    def _applied(self) -> int:
        return self._applied_index

    def _scan(
        self, start: bytes | None, end: bytes | None, limit: int | None
    ) -> tuple[Pairs, Callable[[], None] | None]:
        data = self._table.data
        keys = self._table.keys_from(start, end)
        if limit is not None:
            keys = itertools.islice(keys, limit)
        return iter([(k, data[k]) for k in keys]), None

    def _view(self) -> tuple[Pairs, int, Callable[[], None] | None]:
        keys = self._table.all_keys()
        data = self._table.data.copy()  # references only: the values are shared bytes
        return ((k, data[k]) for k in keys), self._applied_index, None

    def _apply_to_table(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        table = self._table
        for key in deletes:
            table.delete(key)
        for key, value in puts.items():
            table.put(key, value)
        if applied_index is not None:
            self._applied_index = applied_index


class MemoryStorage(_TableEngine):
    """The volatile engine: everything in memory, nothing survives the process."""

    name = "memory"
    durable = False

    def _write(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        self._apply_to_table(puts, deletes, applied_index)

    def _restore(self, pairs: Pairs, last_index: int) -> None:
        table = SortedTable.from_sorted(pairs)  # raises before anything is replaced
        self._table = table
        self._applied_index = last_index

    def _compact(self) -> None:
        """Nothing to reclaim: deleted entries are freed immediately."""

    def _size(self) -> int:
        return self._table.nbytes

    def _sync(self) -> None:
        """Nothing is durable in this engine; there is nothing to flush."""

    def _close(self) -> None:
        self._table = SortedTable()
