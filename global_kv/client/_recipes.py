"""Elections and semaphores for any client, built on leases, revisions and watches.

Both are etcd's recipes (its `concurrency` package and `v3election` service): each
contender puts a key `<name>/<lease id>` with its lease, and the keys' create revisions
are the queue. An election's leader is the contender with the oldest key; a semaphore of
`permits` is held by the contenders with the `permits` oldest keys. A contender waits by
watching the key just ahead of it (an election) or the name's keys (a semaphore) for a
deletion, never by polling. A contender that dies, or whose lease expires, loses its key
and with it its place, with a revision every observer sees. (`LeaderActor` stays the
in-cluster Raft election; these serve applications.)
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .._errors import GlobalKVError, LockTimeout
from ..protocol import KeyValue, ResponseHeader, prefix_range_end
from . import ops

if TYPE_CHECKING:
    from ._client import GlobalClient, Key

__all__ = ["Election", "NotElected", "Semaphore", "SemaphoreHandle"]


class NotElected(GlobalKVError):
    """This contender does not lead the election (it resigned, or its lease ended)."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        super().__init__(f"not the leader of election {name.decode('utf-8', 'backslashreplace')!r}")


def _name(name: Key) -> bytes:
    return name.encode() if isinstance(name, str) else name


class Election:
    """etcd's v3election on one name: campaign, proclaim, leader, observe, resign."""

    def __init__(self, client: GlobalClient, name: Key) -> None:
        self.client = client
        self.name = _name(name)
        self.prefix = self.name + b"/"
        self.key: bytes | None = None  # our key, while campaigning or leading
        self.revision = 0  # its create revision
        self.header: ResponseHeader | None = None  # of the answer that made it lead (etcd's Mutex.Header)

    async def campaign(self, value: bytes, lease_id: int) -> KeyValue:
        """Wait until this contender leads (its key, put with `lease_id`, is the oldest)."""
        key = self.prefix + b"%x" % lease_id
        # The oldest key under the name comes back with ours, in the same revision: a
        # contender first in line leads at once, with no read after the write.
        first = ops.get(self.prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1, keys_only=True)
        answer = await self.client.txn(
            [ops.create(key) == 0], [ops.put(key, value, lease=lease_id), ops.get(key), first], [ops.get(key), first]
        )
        ours = answer.responses[-2].kvs[0]  # type: ignore[union-attr]
        oldest = answer.responses[-1].kvs  # type: ignore[union-attr]
        self.revision = ours.create_revision
        self.key = key
        self.header = answer.header
        if not answer.succeeded and ours.value != value:
            await self.proclaim_key(key, value, lease_id)
        elif oldest and oldest[0].key == key:
            return ours  # first in line: it leads, as of the transaction's revision
        await _wait_for_older_to_go(self.client, self.prefix, self.revision, 1)
        found = await self.client.range_kv(key)
        if not found.kvs or found.kvs[0].create_revision != self.revision:
            raise NotElected(self.name)  # resigned meanwhile, or its lease ended
        self.header = found.header
        return found.kvs[0]

    async def proclaim(self, value: bytes, lease_id: int) -> None:
        """A new value for the leader's key (NotElected unless this contender leads)."""
        if self.key is None:
            raise NotElected(self.name)
        await self.proclaim_key(self.key, value, lease_id)

    async def proclaim_key(self, key: bytes, value: bytes, lease_id: int) -> None:
        answer = await self.client.txn([ops.create(key) == self.revision], [ops.put(key, value, lease=lease_id)])
        if not answer.succeeded:
            raise NotElected(self.name)

    async def resign(self) -> None:
        """Leave the election (the next contender leads)."""
        if self.key is not None:
            await self.client.txn([ops.create(self.key) == self.revision], [ops.delete(self.key)])
            self.key = None

    async def leader(self) -> KeyValue | None:
        """The leader's key and value (None: nobody campaigns)."""
        return (await self._leader_at(0))[0]

    async def observe(self) -> AsyncIterator[KeyValue | None]:
        """The leader now, then each change of leader or of its value, in order."""
        current, revision = await self._leader_at(0)
        yield current
        async with self.client.watch(self.prefix, prefix=True, start_revision=revision + 1) as events:
            async for event in events:
                leader, _ = await self._leader_at(event.kv.mod_revision)
                if leader != current:
                    current = leader
                    yield leader

    async def _leader_at(self, revision: int) -> tuple[KeyValue | None, int]:
        """The oldest key under the name at `revision` (0: now), and the revision read at."""
        found = await self.client.range_kv(
            self.prefix,
            prefix_range_end(self.prefix),
            revision=revision,
            limit=1,
            sort_order="ascend",
            sort_target="create",
        )
        return (found.kvs[0] if found.kvs else None), found.header.revision


@dataclass(frozen=True, slots=True)
class SemaphoreHandle:
    """One permit: `token` is the create revision of its key (unique, increasing across
    acquisitions: a fencing token), held under lease `lease_id`."""

    name: bytes
    key: bytes
    token: int
    lease_id: int


class Semaphore:
    """A counted lock: at most `permits` holders, served first come first served (by create
    revision), each permit with a fencing token, a TTL and owner-death release (its lease is
    owned by the client's process)."""

    def __init__(self, client: GlobalClient, name: Key, permits: int) -> None:
        if type(permits) is not int or permits < 1:
            raise ValueError(f"permits must be a positive int, got {permits!r}")
        self.client = client
        self.name = _name(name)
        self.prefix = self.name + b"/"
        self.permits = permits

    async def acquire(self, *, ttl: float = 30.0, timeout: float | None = None) -> SemaphoreHandle:
        """Wait (up to `timeout`; None: forever) for a permit; `LockTimeout` if none came."""
        lease = await self.client.lease_grant(ttl, owner=self.client.process)
        key = self.prefix + b"%x" % lease.lease_id
        put = await self.client.put_kv(key, b"", lease=lease.lease_id)
        handle = SemaphoreHandle(self.name, key, put.header.revision, lease.lease_id)
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                await _wait_for_older_to_go(self.client, self.prefix, handle.token, self.permits)
        except trio.TooSlowError:
            await self.release(handle)
            raise LockTimeout(self.name, timeout or 0.0) from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.release(handle)
            raise
        return handle

    @asynccontextmanager
    async def hold(self, *, ttl: float = 30.0, timeout: float | None = None) -> AsyncIterator[SemaphoreHandle]:
        """A permit for the block, kept alive every ttl/3, given back on exit."""
        handle = await self.acquire(ttl=ttl, timeout=timeout)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.client.keep_lease_alive, handle.lease_id, ttl)
                try:
                    yield handle
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.release(handle)

    async def release(self, handle: SemaphoreHandle) -> None:
        """Give the permit back (its lease is revoked: the next waiter gets it)."""
        try:
            await self.client.lease_revoke(handle.lease_id)
        except GlobalKVError:
            pass  # ended already: expired, or its owner's death revoked it

    async def refresh(self, handle: SemaphoreHandle) -> None:
        """Keep the permit's lease alive (LeaseNotFound if it ended: the permit is lost)."""
        await self.client.lease_keepalive(handle.lease_id)

    async def holders(self) -> list[KeyValue]:
        """The keys of the current holders, oldest first."""
        found = await self.client.range_kv(
            self.prefix, prefix_range_end(self.prefix), limit=self.permits, sort_order="ascend", sort_target="create"
        )
        return list(found.kvs)


async def _wait_for_older_to_go(client: GlobalClient, prefix: bytes, revision: int, places: int) -> None:
    """Return once fewer than `places` keys under `prefix` are older than ours (created
    before `revision`): wait on a watch for deletions, never poll."""
    end = prefix_range_end(prefix)
    while True:
        older = await client.range_kv(prefix, end, max_create_revision=revision - 1, keys_only=True, limit=places)
        if len(older.kvs) < places:
            return
        async with client.watch(prefix, prefix=True, start_revision=older.header.revision + 1) as events:
            async for event in events:
                if event.type == "delete":
                    break
