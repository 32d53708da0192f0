"""A sorted in-memory key-value table: a dict for lookups plus chunked sorted key lists.

Why not a plain sorted list: inserting into one Python list of n keys moves n/2
pointers, so 100k random inserts cost ~40 GB of memmove. Chunks of at most 2*LOAD keys
(the layout of the well-known `sortedcontainers` package, written here in a few lines to
avoid a dependency) keep an insert at O(log n + LOAD).

Used by MemoryStorage and by HybridStorage's memtable. Not thread-safe on its own: the
engine's lock guards it. It must never let the dict and the key lists disagree.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

__all__ = ["SortedTable"]

LOAD = 512


class SortedTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._lists: list[list[bytes]] = []
        self._maxes: list[bytes] = []
        self.nbytes = 0  # total length of keys and values

    @classmethod
    def from_sorted(cls, pairs: Iterable[tuple[bytes, bytes]]) -> SortedTable:
        """Build from pairs in strictly increasing key order (as snapshots provide)."""
        table = cls()
        chunk: list[bytes] = []
        data = table.data
        nbytes = 0
        prev: bytes | None = None
        for key, value in pairs:
            if prev is not None and key <= prev:
                raise ValueError(f"keys out of order: {key!r} after {prev!r}")
            prev = key
            data[key] = value
            nbytes += len(key) + len(value)
            chunk.append(key)
            if len(chunk) == LOAD:
                table._lists.append(chunk)
                table._maxes.append(key)
                chunk = []
        if chunk:
            table._lists.append(chunk)
            table._maxes.append(chunk[-1])
        table.nbytes = nbytes
        return table

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        old = self.data.get(key)
        self.data[key] = value
        if old is not None:
            self.nbytes += len(value) - len(old)
            return
        self.nbytes += len(key) + len(value)
        lists, maxes = self._lists, self._maxes
        if not lists:
            lists.append([key])
            maxes.append(key)
            return
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            lists[i].append(key)
            maxes[i] = key
        else:
            bisect.insort(lists[i], key)
        if len(lists[i]) > 2 * LOAD:
            lst = lists[i]
            half = lst[LOAD:]
            del lst[LOAD:]
            maxes[i] = lst[-1]
            lists.insert(i + 1, half)
            maxes.insert(i + 1, half[-1])

    def delete(self, key: bytes) -> None:
        old = self.data.pop(key, None)
        if old is None:
            return
        self.nbytes -= len(key) + len(old)
        i = bisect.bisect_left(self._maxes, key)
        lst = self._lists[i]
        j = bisect.bisect_left(lst, key)
        if lst[j] != key:  # the dict and the lists disagree: a bug, never data to guess at
            raise AssertionError(f"sorted table lost key {key!r}")
        del lst[j]
        if not lst:
            del self._lists[i]
            del self._maxes[i]
        elif j == len(lst):
            self._maxes[i] = lst[-1]

    def keys_from(self, start: bytes | None, end: bytes | None) -> Iterator[bytes]:
        """Keys with start <= key < end in order (None: unbounded)."""
        lists = self._lists
        if start is None:
            i, j = 0, 0
        else:
            i = bisect.bisect_left(self._maxes, start)
            if i == len(lists):
                return
            j = bisect.bisect_left(lists[i], start)
        while i < len(lists):
            lst = lists[i]
            if end is not None and lst[-1] >= end:
                stop = bisect.bisect_left(lst, end, j)
                yield from lst[j:stop]
                return
            yield from lst[j:]
            i += 1
            j = 0

    def all_keys(self) -> list[bytes]:
        out: list[bytes] = []
        for lst in self._lists:
            out.extend(lst)
        return out
