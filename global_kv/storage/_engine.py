"""The `StorageEngine` interface (the seed's, in Python) and what all engines share.

The base class owns the rules so that every engine behaves the same: key and value
validation, the applied-index contract, CAS, iterator semantics, the snapshot format
and locking. A concrete engine implements a handful of primitive hooks (`_get`,
`_write`, `_scan`, `_view`, `_restore`, ...), each of which must be atomic on its own.

Guarantees every engine gives (the conformance suite checks them):

- keys are `bytes` of 1..MAX_KEY_SIZE bytes, ordered bytewise; values are any `bytes`;
- `write_batch` (and so `batch_put`, `batch_delete`, `cas`) is all-or-nothing, and
  records the Raft applied index in the same atomic step when given one;
- `range` / `prefix_scan` / `snapshot_chunks` see a point-in-time view: writes made
  after the call are not seen, and an iterator still open when the engine is closed or
  restored raises `StorageError` instead of ending early;
- every method is safe to call from several threads (one lock per engine).

This module must never let a foreign exception (plyvel, lmdb, OSError) escape: engines
map them to `StorageError` at their boundary, and nothing here swallows one.
"""

from __future__ import annotations

import abc
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import ClassVar, Self

from .._errors import RaftInvariantError, StorageCorrupted, StorageError
from ._kv_stream import KVStreamDecoder, encode_kv_stream

__all__ = [
    "MAX_KEY_SIZE",
    "KVIterator",
    "SnapshotStream",
    "StorageEngine",
    "prefix_end",
]

# LMDB's compile-time key limit, applied to every engine so that any snapshot restores
# into any engine.
MAX_KEY_SIZE = 511

Pairs = Iterator[tuple[bytes, bytes]]


def _check_key(key: object) -> bytes:
    if type(key) is not bytes:
        raise TypeError(f"keys are bytes, got {type(key).__name__}; encode str keys first")
    if not 0 < len(key) <= MAX_KEY_SIZE:
        raise ValueError(f"key length {len(key)} outside 1..{MAX_KEY_SIZE} bytes")
    return key


def _check_value(value: object) -> bytes:
    if type(value) is not bytes:
        raise TypeError(f"values are bytes, got {type(value).__name__}")
    return value


def _check_bound(bound: object, what: str) -> bytes | None:
    if bound is not None and type(bound) is not bytes:
        raise TypeError(f"{what} is bytes or None, got {type(bound).__name__}")
    return bound


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class _Invalidatable(abc.ABC):
    @abc.abstractmethod
    def _invalidate(self, reason: str) -> None: ...


class KVIterator(_Invalidatable):
    """(key, value) pairs in bytewise key order from a point-in-time view.

    The seed's Next/Key/Value/Error/Close as Python's iterator protocol: iterate it (or
    call `next`), errors raise `StorageError` from `next` instead of ending the scan,
    and `close()` (or leaving a `with` block) releases what the view pins (an LMDB read
    transaction, a LevelDB snapshot). Exhausting it closes it too.
    """

    def __init__(
        self,
        engine: StorageEngine,
        pairs: Pairs,
        release: Callable[[], None] | None,
        limit: int | None,
    ) -> None:
        self._engine = engine
        self._pairs = pairs
        self._release = release
        self._left = limit
        self._error: StorageError | None = None
        self._closed = False

    def __iter__(self) -> KVIterator:
        return self

    def __next__(self) -> tuple[bytes, bytes]:
        with self._engine._lock:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopIteration
            if self._left is not None:
                if self._left <= 0:
                    self.close()
                    raise StopIteration
                self._left -= 1
            try:
                return next(self._pairs)
            except StopIteration:
                self.close()
                raise

    def close(self) -> None:
        with self._engine._lock:
            if self._closed:
                return
            self._closed = True
            self._engine._views.discard(self)
            release, self._release = self._release, None
            if release is not None:
                release()

    def _invalidate(self, reason: str) -> None:
        self.close()
        self._error = StorageError(f"iterator invalidated: {reason}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SnapshotStream(_Invalidatable):
    """A point-in-time snapshot of an engine, as chunks of the engine-independent format.

    `last_index` is the applied index the snapshot covers. Iterate it to get `bytes`
    chunks (their concatenation is what `snapshot()` returns); the state is read as the
    chunks are consumed, so a large state is never held in memory as one blob.
    """

    def __init__(
        self,
        engine: StorageEngine,
        pairs: Pairs,
        last_index: int,
        release: Callable[[], None] | None,
        chunk_size: int,
    ) -> None:
        self.last_index = last_index
        self._iter = KVIterator(engine, pairs, release, None)
        self._chunks = encode_kv_stream(self._iter, last_index, chunk_size)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._iter.close()

    def _invalidate(self, reason: str) -> None:
        self._iter._invalidate(reason)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StorageEngine(abc.ABC):
    """A key-value engine: bytes keys in bytewise order, atomic batches, snapshots.

    Subclasses: MemoryStorage, LevelDBStorage, LMDBStorage, HybridStorage. Use
    `open_engine(name, data_dir)` to pick one from configuration.
    """

    name: ClassVar[str]
    durable: ClassVar[bool]

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._views: weakref.WeakSet[_Invalidatable] = weakref.WeakSet()

    # ---- reads ----------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value of `key`, or None if absent."""
        _check_key(key)
        with self._lock:
            self._check_open()
            return self._get(key)

    def applied_index(self) -> int:
        """The Raft index whose effects were written last (0 if none): replay from +1."""
        with self._lock:
            self._check_open()
            return self._applied()

    def range(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        limit: int | None = None,
    ) -> KVIterator:
        """Pairs with start <= key < end (None: unbounded), at most `limit` of them."""
        _check_bound(start, "start")
        _check_bound(end, "end")
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0 or None")
        with self._lock:
            self._check_open()
            pairs, release = self._scan(start, end, limit)
            it = KVIterator(self, pairs, release, limit)
            self._views.add(it)
            return it

    def prefix_scan(self, prefix: bytes, limit: int | None = None) -> KVIterator:
        """Pairs whose key starts with `prefix`, in key order."""
        _check_bound(prefix, "prefix")
        return self.range(prefix or None, prefix_end(prefix), limit)

    # ---- writes ---------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes) -> None:
        self.write_batch(puts={key: value})

    def delete(self, key: bytes) -> None:
        """Remove `key`; removing an absent key is not an error."""
        self.write_batch(deletes=(key,))

    def batch_put(self, items: Mapping[bytes, bytes]) -> None:
        self.write_batch(puts=items)

    def batch_delete(self, keys: Iterable[bytes]) -> None:
        self.write_batch(deletes=keys)

    def write_batch(
        self,
        puts: Mapping[bytes, bytes] | None = None,
        deletes: Iterable[bytes] = (),
        applied_index: int | None = None,
    ) -> None:
        """Apply `puts` and `deletes` and record `applied_index`, all or nothing.

        This is how the state machine applies one Raft entry: its effects and its index
        land together, so a restart replays exactly the entries after `applied_index()`.
        `applied_index` must grow strictly (applying an entry twice is a bug).
        """
        put_map = {_check_key(k): _check_value(v) for k, v in (puts or {}).items()}
        del_list = [_check_key(k) for k in deletes]
        both = put_map.keys() & set(del_list)
        if both:
            raise ValueError(f"keys both put and deleted in one batch: {sorted(both)[:3]!r}")
        with self._lock:
            self._check_open()
            self._check_applied(applied_index)
            if put_map or del_list or applied_index is not None:
                self._write(put_map, del_list, applied_index)

    def cas(
        self,
        key: bytes,
        old: bytes | None,
        new: bytes | None,
        applied_index: int | None = None,
    ) -> bool:
        """Set `key` to `new` (None: delete) only if its value is `old` (None: absent).

        Returns whether it swapped. `applied_index` is recorded either way: a CAS that
        fails is still an applied entry.
        """
        _check_key(key)
        if old is not None:
            _check_value(old)
        if new is not None:
            _check_value(new)
        with self._lock:
            self._check_open()
            self._check_applied(applied_index)
            if self._get(key) != old:
                if applied_index is not None:
                    self._write({}, [], applied_index)
                return False
            if new is None:
                if old is not None or applied_index is not None:
                    self._write({}, [key] if old is not None else [], applied_index)
            else:
                self._write({key: new}, [], applied_index)
            return True

    # ---- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> tuple[bytes, int]:
        """The whole state in the engine-independent format, and the applied index."""
        with self.snapshot_chunks() as stream:
            return b"".join(stream), stream.last_index

    def snapshot_chunks(self, chunk_size: int = 1 << 20) -> SnapshotStream:
        """A streaming, point-in-time snapshot (see SnapshotStream)."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        with self._lock:
            self._check_open()
            pairs, applied, release = self._view()
            stream = SnapshotStream(self, pairs, applied, release, chunk_size)
            self._views.add(stream)
            return stream

    def restore(self, snapshot: bytes, last_index: int) -> None:
        """Replace the whole state with `snapshot` (from any engine's `snapshot()`)."""
        self.restore_chunks((snapshot,), last_index)

    def restore_chunks(self, chunks: Iterable[bytes], last_index: int) -> None:
        """Replace the whole state with a snapshot given as chunks (any boundaries).

        Atomic: if the stream is damaged or truncated, StorageCorrupted is raised and the
        engine keeps its previous state. Open iterators are invalidated. Afterwards
        `applied_index()` is `last_index`.
        """
        decoder = KVStreamDecoder(chunks)
        if decoder.last_index != last_index:
            raise StorageCorrupted(
                decoder.source,
                last_index,
                f"the snapshot covers index {decoder.last_index}, not {last_index}",
            )
        with self._lock:
            self._check_open()
            self._invalidate_views("the engine was restored from a snapshot")
            self._restore(decoder.pairs(), last_index)

    # ---- maintenance ----------------------------------------------------------------------

    def compact(self) -> None:
        """Reclaim space (LevelDB compaction, LMDB copy-compaction, hybrid checkpoint)."""
        with self._lock:
            self._check_open()
            self._compact()

    def size(self) -> int:
        """Bytes used: on disk for durable engines, of keys and values for memory."""
        with self._lock:
            self._check_open()
            return self._size()

    def sync(self) -> None:
        """Make every write so far durable against power loss (engines opened with
        sync=False only guarantee that against a crash of the process)."""
        with self._lock:
            self._check_open()
            self._sync()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._invalidate_views("the engine was closed")
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- shared helpers -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self.name} storage engine is closed")

    def _check_applied(self, applied_index: int | None) -> None:
        if applied_index is None:
            return
        if type(applied_index) is not int or applied_index < 0:
            raise ValueError(f"applied_index must be a non-negative int, got {applied_index!r}")
        current = self._applied()
        if applied_index <= current:
            raise RaftInvariantError(f"applied index must grow: {applied_index} after {current} (entry applied twice?)")

    def _invalidate_views(self, reason: str) -> None:
        for view in list(self._views):
            view._invalidate(reason)
        self._views.clear()

    # ---- hooks ----------------------------------------------------------------------------

    @abc.abstractmethod
    def _get(self, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def _applied(self) -> int: ...

    @abc.abstractmethod
    def _write(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        """Atomically apply puts, deletes and the applied index (validated already)."""

    @abc.abstractmethod
    def _scan(
        self, start: bytes | None, end: bytes | None, limit: int | None
    ) -> tuple[Pairs, Callable[[], None] | None]:
        """A point-in-time iterator over start <= key < end, and its release function."""

    @abc.abstractmethod
    def _view(self) -> tuple[Pairs, int, Callable[[], None] | None]:
        """A point-in-time iterator over everything, its applied index, and its release."""

    @abc.abstractmethod
    def _restore(self, pairs: Pairs, last_index: int) -> None:
        """Atomically replace the state with `pairs` (sorted) and set the applied index.

        `pairs` raises StorageCorrupted midway on damage: leave the old state untouched.
        """

    @abc.abstractmethod
    def _compact(self) -> None: ...

    @abc.abstractmethod
    def _size(self) -> int: ...

    @abc.abstractmethod
    def _sync(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...
