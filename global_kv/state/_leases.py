"""The lease table: etcd's leases, and which keys each one carries, in memory and stored.

A lease has an id, a TTL, the entries that granted and last refreshed it, and optionally
an owner process (a process-owned lease is revoked when its owner dies, through the same
monitors as locks). A key put with `lease=id` is attached to it and deleted, in one
revision with the lease's other keys, when the lease is revoked or expires.

Memory holds the leases by id and by owner, and the keys of each lease (rebuilt at load
from the keys' own `lease` field); every change of a lease is also written through the
caller's batch as a record under the lease prefix, so the stored table is the truth a
restart or a snapshot restore rebuilds from.

This module must never decide when a lease ends (that is `_machine`, on entries the
leader proposes), and never write to the engine except through the batch it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cbor2

from ergo_py.ids import PID

from .._errors import StorageCorrupted
from ._keys import LEASE_PREFIX
from ._locks import Writes

if TYPE_CHECKING:
    from ..storage._engine import StorageEngine

__all__ = ["Lease", "LeaseTable", "MAX_LEASE_ID"]

MAX_LEASE_ID = (1 << 63) - 1  # etcd's lease ids are int64


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease. Every replica's deadline for it is its own clock at the apply of
    `refreshed_index` (the grant, or the last keep-alive) plus `ttl_ms`."""

    id: int
    ttl_ms: int
    granted_index: int
    refreshed_index: int
    owner: PID | None = None


def _stored_key(lease_id: int) -> bytes:
    return LEASE_PREFIX + lease_id.to_bytes(8, "big")


def _encode(lease: Lease) -> bytes:
    o = lease.owner
    owner = None if o is None else [o.node, o.id, o.creation]
    return cbor2.dumps([lease.ttl_ms, lease.granted_index, lease.refreshed_index, owner])


def _decode(stored_key: bytes, data: bytes) -> Lease:
    try:
        if len(stored_key) != len(LEASE_PREFIX) + 8:
            raise ValueError("the key is not a lease id")
        ttl_ms, granted, refreshed, owner = cbor2.loads(data)
        if any(type(v) is not int for v in (ttl_ms, granted, refreshed)) or refreshed < granted:
            raise ValueError(f"inconsistent: ttl {ttl_ms!r}, granted {granted!r}, refreshed {refreshed!r}")
        pid = None if owner is None else PID(*owner)
    except Exception as exc:
        raise StorageCorrupted("state lease table", None, f"bad lease record {stored_key!r}: {exc}") from exc
    return Lease(int.from_bytes(stored_key[len(LEASE_PREFIX) :], "big"), ttl_ms, granted, refreshed, pid)


class LeaseTable:
    """All leases, by id and by owner, and the keys attached to each."""

    __slots__ = ("_by_id", "_by_owner", "keys")

    def __init__(self) -> None:
        self._by_id: dict[int, Lease] = {}
        self._by_owner: dict[PID, set[int]] = {}
        self.keys: dict[int, set[bytes]] = {}  # lease id -> the keys put with it

    @classmethod
    def load(cls, engine: StorageEngine, key_leases: dict[bytes, int]) -> LeaseTable:
        """The table as stored in `engine`, with the keys that name each lease
        (`key_leases`: key -> lease id, from the key index). StorageCorrupted if a record
        is damaged or a key names a lease that does not exist."""
        table = cls()
        with engine.prefix_scan(LEASE_PREFIX) as records:
            for stored_key, data in records:
                table._add(_decode(stored_key, data))
        for key, lease_id in key_leases.items():
            attached = table.keys.get(lease_id)
            if attached is None:
                raise StorageCorrupted("state lease table", None, f"key {key!r:.60} names lease {lease_id}, not stored")
            attached.add(key)
        return table

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, lease_id: int) -> Lease | None:
        return self._by_id.get(lease_id)

    def all(self) -> list[Lease]:
        return [self._by_id[i] for i in sorted(self._by_id)]

    def of(self, owner: PID) -> list[Lease]:
        return [self._by_id[i] for i in sorted(self._by_owner.get(owner, ()))]

    def owners(self) -> list[PID]:
        return sorted(self._by_owner)

    def new_id(self, index: int) -> int:
        """The id of a lease granted by the entry at `index` without one asked for: the
        index itself (unique and growing, as fencing tokens), unless a client chose it."""
        if index not in self._by_id:
            return index
        return max(self._by_id) + 1

    def grant(self, lease_id: int, ttl_ms: int, owner: PID | None, index: int, writes: Writes) -> Lease:
        lease = Lease(lease_id, ttl_ms, index, index, owner)
        self._add(lease)
        writes.put(_stored_key(lease_id), _encode(lease))
        return lease

    def refresh(self, lease: Lease, index: int, writes: Writes) -> Lease:
        new = Lease(lease.id, lease.ttl_ms, lease.granted_index, index, lease.owner)
        self._by_id[lease.id] = new
        writes.put(_stored_key(lease.id), _encode(new))
        return new

    def remove(self, lease: Lease, writes: Writes) -> None:
        del self._by_id[lease.id]
        self.keys.pop(lease.id, None)
        if lease.owner is not None:
            ids = self._by_owner[lease.owner]
            ids.discard(lease.id)
            if not ids:
                del self._by_owner[lease.owner]
        writes.delete(_stored_key(lease.id))

    def _add(self, lease: Lease) -> None:
        self._by_id[lease.id] = lease
        self.keys[lease.id] = set()
        if lease.owner is not None:
            self._by_owner.setdefault(lease.owner, set()).add(lease.id)
