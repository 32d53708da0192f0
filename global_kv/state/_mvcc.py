"""Revisions and key history (etcd v3's MVCC), in the state machine's engine.

The store has one `revision` that grows by exactly one per committed entry that changed
a key (a put, a delete that deleted something, a batch or a swap that wrote anything:
one revision for the whole entry, its changes numbered by `sub`). Every key carries
`create_revision`, `mod_revision`, `version` (1 on create, +1 per put, reset by a
delete) and `lease`, and every change is kept as a history record until compacted.
The layout works on every engine through get / range / write_batch:

- b"k" + key  -> live record: key_id, create, mod, version, lease, then the stored value
                 (current reads are one scan of these, as before revisions);
- b"d" + key  -> dead record: key_id and the revision that deleted it, kept while the
                 key has history (so a re-created key keeps its key_id);
- b"r" + main (8) + sub (4) -> history record of that change: tombstone flag, key_id,
                 create, version, lease, the key and its stored value;
- b"i" + key_id + inv(main) -> sub: each key's changes, newest first, so "the latest
                 change at or before R" is one forward seek (`inv(m) = 2**64 - 1 - m`);
- b"m" + b"vcc" -> format, revision, compact_revision.

A key_id is the (main, sub) of the change that first gave the key a record: 12 bytes,
so history keys stay short whatever the user key's length (a user key already takes
510 of the engines' 511 bytes).

This module never decides what an operation means (that is `_machine`); it only writes
the records of a change and reads them back. It must never write to the engine except
through the batch it is given.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .._errors import RaftInvariantError, StorageCorrupted
from ._keys import USER_PREFIX, prefix_end
from ._values import decode_value

if TYPE_CHECKING:
    from ..storage._engine import StorageEngine

__all__ = [
    "RangeResult",
    "DEAD_PREFIX",
    "HISTORY_PREFIX",
    "KeyIndex",
    "INDEX_PREFIX",
    "META_KEY",
    "KeyValue",
    "LiveRecord",
    "Revisions",
    "RevisionWriter",
    "compact_history",
    "decode_live",
]

DEAD_PREFIX = b"d"
INDEX_PREFIX = b"i"
HISTORY_PREFIX = b"r"
META_KEY = b"mvcc"  # under b"m": after every lock record (b"l"), before the history (b"r")
FORMAT = 1
_TOMBSTONE = 0x01
_MAX = (1 << 64) - 1

_LIVE = struct.Struct(">B12sQQQQ")  # format, key_id, create, mod, version, lease
_DEAD = struct.Struct(">B12sQ")  # format, key_id, mod (the deleting revision)
_HISTORY = struct.Struct(">B12sQQQH")  # flags, key_id, create, version, lease, key length
_SUB = struct.Struct(">I")
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
class RangeResult:
    """A range's answer, as etcd's RangeResponse: the keys (at most `limit`), whether more
    were in range, and how many keys the whole range holds."""

    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class LiveRecord:
    key_id: bytes
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
    _, key_id, create, mod, version, lease = _LIVE.unpack_from(raw)
    return LiveRecord(key_id, create, mod, version, lease, raw[_LIVE.size :])


def dead_record(raw: bytes) -> tuple[bytes, int]:
    """(key_id, deleting revision) of a dead-key record; StorageCorrupted if it is not one."""
    if type(raw) is not bytes or len(raw) != _DEAD.size or raw[0] != FORMAT:
        raise StorageCorrupted("state dead-key record", None, f"not a dead-key record: {raw!r:.40}")
    _, key_id, mod = _DEAD.unpack(raw)
    return bytes(key_id), mod


def key_at(engine: StorageEngine, key: bytes, live: bytes | None, dead: bytes | None, revision: int) -> KeyValue | None:
    """`key` as it was at `revision`, given its live (b"k") or dead (b"d") record now."""
    if live is not None:
        now = decode_live(live)
        if now.mod_revision <= revision:
            return now.key_value(key)
        key_id = now.key_id
    elif dead is not None:
        key_id, deleted = dead_record(dead)
        if deleted <= revision:
            return None
    else:
        return None
    # The key's changes, newest first: the first at or after inv(revision) is the latest
    # change at or before `revision`.
    index = INDEX_PREFIX + key_id
    with engine.range(index + inv(revision), prefix_end(index), 1) as found:
        first = next(iter(found), None)
    if first is None:
        return None  # created after `revision`
    main = _MAX - int.from_bytes(first[0][len(index) :], "big")
    (sub,) = _SUB.unpack(first[1])
    raw = engine.get(HISTORY_PREFIX + _REVISION.pack(main, sub))
    if raw is None or len(raw) < _HISTORY.size:
        raise StorageCorrupted("state history", None, f"the change ({main}, {sub}) of key {key!r:.60} is missing")
    flags, _, create, version, lease, size = _HISTORY.unpack_from(raw)
    if flags & _TOMBSTONE:
        return None
    return KeyValue(key, create, main, version, decode_value(raw[_HISTORY.size + size :]), lease)


def inv(main: int) -> bytes:
    """`main` inverted and big-endian: the newest change of a key sorts first."""
    return (_MAX - main).to_bytes(8, "big")


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
            raise StorageCorrupted("state MVCC record", None, f"unknown format: {raw!r:.40}")
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
    its key's previous change superseded, and a deletion is itself forgotten, with the
    key's dead record if that deletion was its last change."""
    low = HISTORY_PREFIX + _REVISION.pack(revisions.compact_revision + 1, 0)
    high = HISTORY_PREFIX + _REVISION.pack(target + 1, 0)
    for hkey, raw in list(batch.scan(low, high)):
        main = _REVISION.unpack(hkey[1:])[0]
        flags, key_id, _, _, _, size = _HISTORY.unpack_from(raw)
        index = INDEX_PREFIX + bytes(key_id)
        before = next(batch.scan(index + inv(main - 1), prefix_end(index)), None)
        if before is not None:
            pmain = _MAX - int.from_bytes(before[0][len(index) :], "big")
            (psub,) = _SUB.unpack(before[1])
            batch.delete(HISTORY_PREFIX + _REVISION.pack(pmain, psub))
            batch.delete(before[0])
        if flags & _TOMBSTONE:
            batch.delete(hkey)
            batch.delete(index + inv(main))
            key = raw[_HISTORY.size : _HISTORY.size + size]
            known = key_index.keys.get(key)
            if known is not None and known[3] == 0 and known[2] == main:
                batch.delete(DEAD_PREFIX + key)  # its last change: nothing of it is left
                del key_index.keys[key]
    revisions.compact_revision = target
    batch.put(b"m" + META_KEY, revisions.encoded())


class KeyIndex:
    """Every key that has records, with its metadata: key -> (key_id, create, mod,
    version, lease); a deleted key that still has history has version 0 and the deleting
    revision as mod.

    In memory (as etcd's key index), so a write needs no read of the engine: rebuilt from
    the live and dead records at start, and kept in step with every change."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[bytes, tuple[bytes, int, int, int, int]] = {}

    @classmethod
    def load(cls, engine: StorageEngine) -> KeyIndex:
        index = cls()
        keys = index.keys
        skip = len(USER_PREFIX)
        with engine.prefix_scan(USER_PREFIX) as live:
            for k, raw in live:
                if len(raw) <= _LIVE.size or raw[0] != FORMAT:
                    decode_live(raw)  # raises StorageCorrupted, saying what it found
                _, key_id, create, mod, version, lease = _LIVE.unpack_from(raw)
                keys[k[skip:]] = (bytes(key_id), create, mod, version, lease)
        with engine.prefix_scan(DEAD_PREFIX) as dead:
            for k, raw in dead:
                key_id, mod = dead_record(raw)
                keys[k[len(DEAD_PREFIX) :]] = (key_id, 0, mod, 0, 0)
        return index


class RevisionWriter:
    """The changes of one entry, under one revision (`revision + 1`), numbered by sub.

    Call `put` / `delete` for each key the entry changes (each key at most once), then
    `finish`, which moves the store's revision if anything changed."""

    __slots__ = ("_batch", "_changed", "_index", "_revisions", "main", "sub")

    def __init__(self, revisions: Revisions, index: KeyIndex, batch: _Batch) -> None:
        self._revisions = revisions
        self._index = index
        self._batch = batch
        self.main = revisions.revision + 1
        self.sub = 0
        self._changed: set[bytes] = set()

    def _touch(self, key: bytes) -> None:
        if key in self._changed:
            raise RaftInvariantError(f"key {key!r:.60} changed twice in revision {self.main}")
        self._changed.add(key)

    def _record(self, key_id: bytes, history: bytes) -> None:
        batch, main, sub = self._batch, self.main, self.sub
        batch.put(HISTORY_PREFIX + _REVISION.pack(main, sub), history)
        batch.put(INDEX_PREFIX + key_id + inv(main), _SUB.pack(sub))
        self.sub = sub + 1

    def current(self, key: bytes) -> LiveRecord | None:
        raw = self._batch.read(USER_PREFIX + key)
        return None if raw is None else decode_live(raw)

    def put(self, key: bytes, stored: bytes, lease: int = 0) -> bool:
        """Set `key` to the stored value `stored`; True if it existed."""
        self._touch(key)
        batch, main, keys = self._batch, self.main, self._index.keys
        known = keys.get(key)
        existed = known is not None and known[3] > 0
        if known is not None and existed:
            key_id, create, version = known[0], known[1], known[3] + 1
        else:
            if known is not None:  # deleted, with history: it keeps its key_id
                key_id = known[0]
                batch.delete(DEAD_PREFIX + key)
            else:
                key_id = _REVISION.pack(main, self.sub)
            create, version = main, 1
        batch.put(USER_PREFIX + key, _LIVE.pack(FORMAT, key_id, create, main, version, lease) + stored)
        self._record(key_id, _HISTORY.pack(0, key_id, create, version, lease, len(key)) + key + stored)
        keys[key] = (key_id, create, main, version, lease)
        return existed

    def delete(self, key: bytes) -> bool:
        """Delete `key` if it exists; True if it did (else nothing changed)."""
        keys = self._index.keys
        known = keys.get(key)
        if known is None or known[3] == 0:
            return False
        self._touch(key)
        batch, key_id, main = self._batch, known[0], self.main
        batch.delete(USER_PREFIX + key)
        batch.put(DEAD_PREFIX + key, _DEAD.pack(FORMAT, key_id, main))
        self._record(key_id, _HISTORY.pack(_TOMBSTONE, key_id, 0, 0, 0, len(key)) + key)
        keys[key] = (key_id, 0, main, 0, 0)
        return True

    def finish(self) -> int | None:
        """The entry is done: its revision if it changed anything (then the store's revision)."""
        if not self.sub:
            return None
        self._revisions.revision = self.main
        self._batch.put(b"m" + META_KEY, self._revisions.encoded())
        return self.main
