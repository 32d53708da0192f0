"""The lock table: who holds which lock with which fencing token, in memory and stored.

Memory holds two indexes (by key, by owner) so that grants, releases and "release
everything this dead process held" cost O(locks touched); every change is also written
through the caller's batch as a record under the lock prefix, so the stored table is
the truth a restart or a snapshot restore rebuilds from.

This module must never decide who may hold a lock (that is `_machine`), and never
write to the engine except through the batch it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cbor2

from ergo_py.ids import PID

from .._errors import RaftInvariantError, StorageCorrupted
from ._keys import LOCK_PREFIX, lock_key

if TYPE_CHECKING:
    from ..storage._engine import StorageEngine

__all__ = ["Lock", "LockTable", "Writes"]


class Writes(Protocol):
    """Where the tables put their records: the apply batch's overlay."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Lock:
    """One held lock. `token` is the index of the entry that granted it (so it equals
    `granted_index`); `refreshed_index` is the entry that last set `ttl_ms`.

    The leader's TTL deadline is its own clock at `refreshed_index`'s apply + `ttl_ms`.
    """

    key: bytes
    owner: PID
    token: int
    ttl_ms: int
    granted_index: int
    refreshed_index: int


def _encode(lock: Lock) -> bytes:
    o = lock.owner
    return cbor2.dumps([o.node, o.id, o.creation, lock.token, lock.ttl_ms, lock.granted_index, lock.refreshed_index])


def _decode(stored_key: bytes, data: bytes) -> Lock:
    try:
        node, pid_id, creation, token, ttl_ms, granted, refreshed = cbor2.loads(data)
        ints = (pid_id, creation, token, ttl_ms, granted, refreshed)
        if type(node) is not str or any(type(v) is not int for v in ints):
            raise ValueError("fields have the wrong types")
        if token != granted or refreshed < granted or token < 1:
            raise ValueError(f"inconsistent: token {token}, granted {granted}, refreshed {refreshed}")
    except Exception as exc:
        raise StorageCorrupted("state lock table", None, f"bad lock record {stored_key!r}: {exc}") from exc
    owner = PID(node, pid_id, creation)
    return Lock(stored_key[len(LOCK_PREFIX) :], owner, token, ttl_ms, granted, refreshed)


class LockTable:
    """All held locks, indexed by key and by owner."""

    __slots__ = ("_by_key", "_by_owner")

    def __init__(self) -> None:
        self._by_key: dict[bytes, Lock] = {}
        self._by_owner: dict[PID, set[bytes]] = {}

    @classmethod
    def load(cls, engine: StorageEngine) -> LockTable:
        """The table as stored in `engine` (StorageCorrupted if a record is damaged)."""
        table = cls()
        with engine.prefix_scan(LOCK_PREFIX) as records:
            for stored_key, data in records:
                table._add(_decode(stored_key, data))
        return table

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: bytes) -> Lock | None:
        return self._by_key.get(key)

    def all(self) -> list[Lock]:
        return [self._by_key[k] for k in sorted(self._by_key)]

    def of(self, owner: PID) -> list[Lock]:
        return [self._by_key[k] for k in sorted(self._by_owner.get(owner, ()))]

    def owner_count(self) -> int:
        return len(self._by_owner)

    def owners(self) -> list[PID]:
        return sorted(self._by_owner)

    def __iter__(self) -> Iterator[Lock]:
        return iter(self.all())

    def grant(self, key: bytes, owner: PID, ttl_ms: int, index: int, writes: Writes) -> Lock:
        lock = Lock(key, owner, index, ttl_ms, index, index)
        self._add(lock)
        writes.put(lock_key(key), _encode(lock))
        return lock

    def refresh(self, lock: Lock, ttl_ms: int, index: int, writes: Writes) -> Lock:
        new = Lock(lock.key, lock.owner, lock.token, ttl_ms, lock.granted_index, index)
        self._by_key[lock.key] = new
        writes.put(lock_key(lock.key), _encode(new))
        return new

    def remove(self, lock: Lock, writes: Writes) -> None:
        del self._by_key[lock.key]
        keys = self._by_owner[lock.owner]
        keys.discard(lock.key)
        if not keys:
            del self._by_owner[lock.owner]
        writes.delete(lock_key(lock.key))

    def _add(self, lock: Lock) -> None:
        if lock.key in self._by_key:
            raise RaftInvariantError(f"lock {lock.key!r} granted while held")  # the machine checks first
        self._by_key[lock.key] = lock
        self._by_owner.setdefault(lock.owner, set()).add(lock.key)
