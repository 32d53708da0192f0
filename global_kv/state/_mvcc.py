"""Revisions and key history (etcd v3's MVCC), in the state machine's engine.

The store has one `revision` that grows by exactly one per committed entry that changed
a key (a put, a delete that deleted something, a batch or a swap that wrote anything:
one revision for the whole entry, its changes numbered by `sub`). Every key carries
`create_revision`, `mod_revision`, `version` (1 on create, +1 per put, reset by a
delete) and `lease`, and every change is kept as a history record until compacted.
The layout works on every engine through get / range / write_batch:

- b"k" + key  -> live record: create, mod, version, lease, then the stored value
                 (current reads are one scan of these, as before revisions);
- b"d" + key  -> dead record: the revision that deleted it, kept while the key has
                 history (so a read at a past revision finds deleted keys in key order);
- b"r" + main (8) + sub (4) -> history record of that change: tombstone flag, create,
                 version, lease, the key and its stored value (a watch or a compaction
                 walks these in revision order);
- b"m" + b"vcc" -> format, revision, compact_revision.

A put thus writes two records (live and history), as etcd's backend writes one and its
index keeps the rest. Which changes each key has is kept in memory (`KeyIndex`, as etcd's
treeIndex: a few integers per change, rebuilt from the records at start), so neither a
write nor a read at a past revision searches the engine for it.

This module never decides what an operation means (that is `_machine`); it only writes
the records of a change and reads them back. It must never write to the engine except
through the batch it is given.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sortedcontainers import SortedList

from .._errors import RaftInvariantError, StorageCorrupted
from ._keys import USER_PREFIX
from ._values import decode_value

if TYPE_CHECKING:
    from ..storage._engine import StorageEngine

__all__ = [
    "DEAD_PREFIX",
    "HISTORY_PREFIX",
    "META_KEY",
    "KeyIndex",
    "KeyValue",
    "LiveRecord",
    "RangeResult",
    "Revisions",
    "WatchEvent",
    "history_events",
    "RevisionWriter",
    "compact_history",
    "decode_live",
    "key_at",
]

DEAD_PREFIX = b"d"
HISTORY_PREFIX = b"r"
META_KEY = b"mvcc"  # under b"m": after every lock record (b"l"), before the history (b"r")
FORMAT = 2  # 1: the first development layout (with per-key index records), refused
_TOMBSTONE = 0x01
_SUB_BITS = 32  # a change is numbered main << 32 | sub in memory
_SUB_MASK = (1 << _SUB_BITS) - 1

_LIVE = struct.Struct(">BQQQQ")  # format, create, mod, version, lease
_DEAD = struct.Struct(">BQ")  # format, mod (the deleting revision)
_HISTORY = struct.Struct(">BQQQH")  # flags, create, version, lease, key length
_META = struct.Struct(">BQQ")  # format, revision, compact_revision
_REVISION = struct.Struct(">QI")  # main, sub


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key as etcd's `mvccpb.KeyValue` has it (`value` decoded)."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change, as etcd's `mvccpb.Event`: "put" with the key as written, or "delete"
    with the key and the deleting revision (`mod_revision`); `prev_kv` if asked."""

    type: str
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A range's answer, as etcd's RangeResponse: the keys (at most `limit`), whether more
    were in range, and how many keys the whole range holds."""

    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class LiveRecord:
    create_revision: int
    mod_revision: int
    version: int
    lease: int
    stored: bytes  # the stored form of the value (see `_values`)

    def key_value(self, key: bytes) -> KeyValue:
        """The key as etcd shows it (its value decoded)."""
        value = decode_value(self.stored)
        return KeyValue(key, self.create_revision, self.mod_revision, self.version, value, self.lease)


def decode_live(raw: bytes) -> LiveRecord:
    """The live record `raw` (the value under b"k" + key); StorageCorrupted if it is not one."""
    if type(raw) is not bytes or len(raw) <= _LIVE.size or raw[0] != FORMAT:
        raise StorageCorrupted("state key record", None, f"not a live key record (format {FORMAT}): {raw!r:.40}")
    _, create, mod, version, lease = _LIVE.unpack_from(raw)
    return LiveRecord(create, mod, version, lease, raw[_LIVE.size :])


def _dead_mod(raw: bytes) -> int:
    """The deleting revision in a dead-key record; StorageCorrupted if it is not one."""
    if type(raw) is not bytes or len(raw) != _DEAD.size or raw[0] != FORMAT:
        raise StorageCorrupted("state dead-key record", None, f"not a dead-key record: {raw!r:.40}")
    return int(_DEAD.unpack(raw)[1])


def _history_key(change: int) -> bytes:
    return HISTORY_PREFIX + _REVISION.pack(change >> _SUB_BITS, change & _SUB_MASK)


class _KeyEntry:
    """One key in the index: its metadata now (version 0: deleted, mod the deleting
    revision) and its changes still in history, oldest first (main << 32 | sub)."""

    __slots__ = ("changes", "create", "lease", "mod", "version")

    def __init__(self, create: int, mod: int, version: int, lease: int) -> None:
        self.create = create
        self.mod = mod
        self.version = version
        self.lease = lease
        self.changes: list[int] = []


class KeyIndex:
    """Every key that has records: key -> its metadata and its changes in history, and
    the same keys in order.

    In memory, as etcd's treeIndex, so a write reads nothing from the engine and a read
    at a past revision finds the change to read by bisection: rebuilt at start from the
    live and dead records and one scan of the history, and kept in step with every
    change. Costs a few integers per change kept, bounded by compaction as the history.

    `live` holds the live keys in order, for current reads (`StateMachine._select`): a
    range is counted, ordered and filtered here, and only the records it returns are
    read. An LSM engine's scan steps over every version of a key it has not compacted
    yet, so a range over a key put and deleted all day (a lock's or an election's) cost
    O(its history), 2.4 ms after 20,000 pairs on LevelDB; and a `limit=1` range over
    14,000 keys read and decoded all of them to count them (70 ms of a leader's loop:
    900 of those at once stalled it into elections)."""

    __slots__ = ("keys", "live")

    def __init__(self) -> None:
        self.keys: dict[bytes, _KeyEntry] = {}
        self.live: SortedList = SortedList()  # the keys of self.keys with a version, kept in step

    def add(self, key: bytes, entry: _KeyEntry) -> None:
        """A key new to the index, live."""
        self.keys[key] = entry
        self.live.add(key)

    def revived(self, key: bytes) -> None:
        """A deleted key (still indexed for its history) is put again."""
        self.live.add(key)

    def died(self, key: bytes) -> None:
        """A live key is deleted (it stays indexed for its history)."""
        self.live.remove(key)

    def forget(self, key: bytes) -> None:
        """A deleted key whose history is all compacted."""
        del self.keys[key]

    def live_span(self, low: bytes, high: bytes | None) -> tuple[int, int]:
        """The positions in `live` of the live keys in [low, high) (None: no end)."""
        live = self.live
        if high is not None and len(high) == len(low) + 1 and high[-1] == 0 and high.startswith(low):
            entry = self.keys.get(low)  # the key alone (most ranges in a lock's or election's txns)
            if entry is None or not entry.version:
                return 0, 0
        first = live.bisect_left(low)
        return first, len(live) if high is None else live.bisect_left(high)

    def key_value(self, key: bytes) -> KeyValue:
        """A live key as the index has it, without its value (for keys_only, and to decide
        which keys a range returns)."""
        e = self.keys[key]
        return KeyValue(key, e.create, e.mod, e.version, b"", e.lease)

    def live_names(self, low: bytes, high: bytes | None, most: int) -> list[bytes] | None:
        """The live keys in [low, high) (None: no end), in order, if there are at most
        `most`; None if there are more (scan instead)."""
        first, last = self.live_span(low, high)
        if last - first > most:
            return None
        return list(self.live.islice(first, last))

    @classmethod
    def load(cls, engine: StorageEngine) -> KeyIndex:
        index = cls()
        keys = index.keys
        skip = len(USER_PREFIX)
        with engine.prefix_scan(USER_PREFIX) as live:
            for k, raw in live:
                record = decode_live(raw)
                keys[k[skip:]] = _KeyEntry(record.create_revision, record.mod_revision, record.version, record.lease)
        with engine.prefix_scan(DEAD_PREFIX) as dead:
            for k, raw in dead:
                keys[k[len(DEAD_PREFIX) :]] = _KeyEntry(0, _dead_mod(raw), 0, 0)
        index.live.update(k for k, entry in keys.items() if entry.version)
        with engine.prefix_scan(HISTORY_PREFIX) as history:
            for hkey, raw in history:
                key, _ = _history_fields(hkey, raw)
                entry = keys.get(key)
                if entry is None:
                    raise StorageCorrupted("state history", None, f"a change of key {key!r:.60} that has no record")
                main, sub = _REVISION.unpack(hkey[1:])
                entry.changes.append(main << _SUB_BITS | sub)
        return index


def _history_fields(hkey: bytes, raw: bytes) -> tuple[bytes, int]:
    """(key, flags) of the history record `raw` under `hkey`."""
    if len(hkey) != 1 + _REVISION.size or len(raw) < _HISTORY.size:
        raise StorageCorrupted("state history", None, f"not a history record: {hkey!r:.40}")
    flags, _, _, _, size = _HISTORY.unpack_from(raw)
    key = raw[_HISTORY.size : _HISTORY.size + size]
    if len(key) != size:
        raise StorageCorrupted("state history", None, f"a truncated history record: {hkey!r:.40}")
    return key, flags


def key_at(
    read: Callable[[bytes], bytes | None], index: KeyIndex, key: bytes, live: bytes | None, revision: int
) -> KeyValue | None:
    """`key` as it was at `revision` (at or above the compacted one), given its live record
    now (None: it has none); `read` gets a history record (the engine's get, or an apply
    batch's read, which sees the changes before it)."""
    entry = index.keys.get(key)
    if entry is None:
        return None
    if entry.mod <= revision:  # its latest change is the one to show
        if not entry.version or live is None:
            return None
        return decode_live(live).key_value(key)
    changes = entry.changes
    at = bisect_right(changes, revision << _SUB_BITS | _SUB_MASK)
    if not at:
        return None  # created after `revision`
    change = changes[at - 1]
    raw = read(_history_key(change))
    if raw is None or len(raw) < _HISTORY.size:
        raise StorageCorrupted("state history", None, f"the change {change >> _SUB_BITS} of key {key!r:.60} is missing")
    flags, create, version, lease, size = _HISTORY.unpack_from(raw)
    if flags & _TOMBSTONE:
        return None
    return KeyValue(key, create, change >> _SUB_BITS, version, decode_value(raw[_HISTORY.size + size :]), lease)


def history_events(
    engine: StorageEngine, after: int, upto: int, max_events: int, max_bytes: int
) -> tuple[list[WatchEvent], int]:
    """The changes with revisions in (after, upto], in revision order, and the last revision
    they cover: whole revisions only (a transaction's events stay together), stopping after
    the revision that reaches `max_events` or `max_bytes` of keys and values. The caller
    checks `after` against compaction."""
    events: list[WatchEvent] = []
    covered = after
    size = 0
    low = HISTORY_PREFIX + _REVISION.pack(after + 1, 0)
    high = HISTORY_PREFIX + _REVISION.pack(upto + 1, 0)
    with engine.range(low, high) as records:
        for hkey, raw in records:
            main = _REVISION.unpack(hkey[1:])[0]
            if main != covered and (len(events) >= max_events or size >= max_bytes):
                return events, covered
            size += len(raw)
            key, flags = _history_fields(hkey, raw)
            if flags & _TOMBSTONE:
                events.append(WatchEvent("delete", KeyValue(key, 0, main, 0, b"", 0)))
            else:
                _, create, version, lease, size = _HISTORY.unpack_from(raw)
                value = decode_value(raw[_HISTORY.size + size :])
                events.append(WatchEvent("put", KeyValue(key, create, main, version, value, lease)))
            covered = main
    return events, upto


class Revisions:
    """The store's replicated counters: the current revision and the compacted one."""

    __slots__ = ("compact_revision", "revision")

    def __init__(self, revision: int = 1, compact_revision: int = 0) -> None:
        self.revision = revision  # etcd's store starts at 1: the first change is revision 2
        self.compact_revision = compact_revision

    @classmethod
    def load(cls, engine: StorageEngine) -> Revisions:
        raw = engine.get(b"m" + META_KEY)
        if raw is None:
            with engine.prefix_scan(USER_PREFIX, 1) as found:
                if any(True for _ in found):
                    raise StorageCorrupted(
                        "state",
                        None,
                        "the data dir holds keys written before revisions existed (no MVCC record); "
                        "this version cannot read it: start on an empty data dir and load the data again",
                    )
            return cls()
        if len(raw) != _META.size or raw[0] != FORMAT:
            raise StorageCorrupted(
                "state MVCC record",
                None,
                f"the data dir was written in another key layout (format {raw[:1].hex() or '?'}, this version "
                f"reads {FORMAT}): start on an empty data dir and load the data again",
            )
        _, revision, compact = _META.unpack(raw)
        return cls(revision, compact)

    def encoded(self) -> bytes:
        return _META.pack(FORMAT, self.revision, self.compact_revision)


class _Batch(Protocol):  # what this module uses of `_machine._Batch`
    def read(self, key: bytes) -> bytes | None: ...
    def scan(self, low: bytes, high: bytes) -> Iterator[tuple[bytes, bytes]]: ...
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


def compact_history(revisions: Revisions, key_index: KeyIndex, batch: _Batch, target: int) -> None:
    """Forget every change superseded at or before `target`, and every deletion at or
    before it: each key keeps its latest change at or before `target` if that is a put.

    Walks the changes above the last compaction up to `target` in revision order (through
    the batch, so changes applied just before in the same batch count): each one makes
    its key's earlier changes superseded, and a deletion is itself forgotten, with the
    key's dead record if that deletion was its last change."""
    low = HISTORY_PREFIX + _REVISION.pack(revisions.compact_revision + 1, 0)
    high = HISTORY_PREFIX + _REVISION.pack(target + 1, 0)
    keys = key_index.keys
    for hkey, raw in list(batch.scan(low, high)):
        key, flags = _history_fields(hkey, raw)
        entry = keys[key]
        changes = entry.changes
        main, sub = _REVISION.unpack(hkey[1:])
        at = bisect_left(changes, main << _SUB_BITS | sub)
        for superseded in changes[:at]:
            batch.delete(_history_key(superseded))
        del changes[:at]
        if flags & _TOMBSTONE:
            batch.delete(hkey)
            del changes[0]
            if not changes and not entry.version:
                batch.delete(DEAD_PREFIX + key)  # its last change: nothing of it is left
                key_index.forget(key)
    revisions.compact_revision = target
    batch.put(b"m" + META_KEY, revisions.encoded())


class RevisionWriter:
    """The changes of one entry, under one revision (`revision + 1`), numbered by sub.

    Call `put` / `delete` for each key the entry changes (each key at most once), then
    `finish`, which moves the store's revision if anything changed."""

    __slots__ = ("_batch", "_index", "_keys", "_lease_keys", "_revisions", "main", "sub")

    def __init__(
        self, revisions: Revisions, index: KeyIndex, batch: _Batch, lease_keys: dict[int, set[bytes]] | None = None
    ) -> None:
        self._revisions = revisions
        self._index = index
        self._keys = index.keys
        self._batch = batch
        self._lease_keys = lease_keys  # lease id -> its keys, kept in step (the lease must exist)
        self.main = revisions.revision + 1
        self.sub = 0

    def current(self, key: bytes) -> LiveRecord | None:
        raw = self._batch.read(USER_PREFIX + key)
        return None if raw is None else decode_live(raw)

    def put(self, key: bytes, stored: bytes, lease: int = 0) -> bool:
        """Set `key` to the stored value `stored`; True if it existed."""
        batch, main, sub = self._batch, self.main, self.sub
        entry = self._keys.get(key)
        if entry is None:
            entry = _KeyEntry(main, main, 1, lease)
            self._index.add(key, entry)
            existed = False
            self._lease_moved(key, 0, lease)
        else:
            if entry.mod == main:
                raise RaftInvariantError(f"key {key!r:.60} changed twice in revision {main}")
            existed = entry.version > 0
            if existed:
                entry.version += 1
            else:  # deleted, with history
                batch.delete(DEAD_PREFIX + key)
                entry.create, entry.version = main, 1
                self._index.revived(key)
            self._lease_moved(key, entry.lease, lease)
            entry.mod, entry.lease = main, lease
        create, version = entry.create, entry.version
        batch.put(USER_PREFIX + key, _LIVE.pack(FORMAT, create, main, version, lease) + stored)
        batch.put(
            HISTORY_PREFIX + _REVISION.pack(main, sub),
            _HISTORY.pack(0, create, version, lease, len(key)) + key + stored,
        )
        entry.changes.append(main << _SUB_BITS | sub)
        self.sub = sub + 1
        return existed

    def delete(self, key: bytes) -> bool:
        """Delete `key` if it exists; True if it did (else nothing changed)."""
        entry = self._keys.get(key)
        if entry is None or not entry.version:
            return False
        batch, main, sub = self._batch, self.main, self.sub
        if entry.mod == main:
            raise RaftInvariantError(f"key {key!r:.60} changed twice in revision {main}")
        self._lease_moved(key, entry.lease, 0)
        batch.delete(USER_PREFIX + key)
        batch.put(DEAD_PREFIX + key, _DEAD.pack(FORMAT, main))
        batch.put(HISTORY_PREFIX + _REVISION.pack(main, sub), _HISTORY.pack(_TOMBSTONE, 0, 0, 0, len(key)) + key)
        entry.create = entry.version = entry.lease = 0
        entry.mod = main
        self._index.died(key)
        entry.changes.append(main << _SUB_BITS | sub)
        self.sub = sub + 1
        return True

    def _lease_moved(self, key: bytes, old: int, new: int) -> None:
        leases = self._lease_keys
        if old == new or leases is None:
            return
        if old:
            leases[old].discard(key)
        if new:
            leases[new].add(key)

    def finish(self) -> int | None:
        """The entry is done: its revision if it changed anything (then the store's revision)."""
        if not self.sub:
            return None
        self._revisions.revision = self.main
        self._batch.put(b"m" + META_KEY, self._revisions.encoded())
        return self.main
