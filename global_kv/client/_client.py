"""`GlobalClient`: what an application actor calls to use the cluster.

It finds the leader (following `NotLeader` hints), retries with backoff across the
members until its own timeout, and never reports success for a write that was not
committed. Every write carries this client's `SessionTag` (client_id, seq, ack): a
write retried after a timeout or a leader change is applied at most once and
returns its original result (Raft dissertation §6.3).

Keys are `str` (encoded as UTF-8) or `bytes`; values are `bytes`. A missing key
reads as `None` (there is no KeyNotFound).
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, AsyncIterator

import trio

import ergo_py
from ergo_py import Actor, ProcessID

from .._errors import CASFailed, Compacted, GlobalKVError, LockNotHeld, LockTimeout, NotLeader, Unavailable
from ..protocol import (
    AddPeerRequest,
    CompactRequest,
    CompactResponse,
    Compare,
    DeleteRangeResponse,
    DeleteRequest,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
    ListLocksRequest,
    LockInfo,
    LockRequest,
    PrefixRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RefreshRequest,
    RemovePeerRequest,
    SessionTag,
    StatusRequest,
    StatusResponse,
    TxnRequest,
    TxnRequestOp,
    TxnResponse,
    UnlockRequest,
    WatchCanceled,
    WatchCreateRequest,
    WatchCreateResponse,
    prefix_range_end,
)
from . import ops
from ._bootstrap import parse_bootstrap
from ._keys import Key
from ._keys import as_key as _key
from ._links import LinkKeeper
from ._locks import LockHandle
from ._recipes import Election, Semaphore
from ._watch import MemberGone, Registered, Watch, WatchBatch, WatchProgress, WatchReceiver
from ._watch import ack as watch_ack
from ._watch import serve as watch_serve

__all__ = ["GlobalClient", "open_client", "Key"]


# How long a leader this node could not reach directly is left alone (see _go_direct).
_NO_DIRECT_FOR = 60.0
# Errors after which another member may succeed (the call did not reach a working leader).
_RETRYABLE = (NotLeader, ergo_py.NoConnection, ergo_py.CallTimeout, ergo_py.ProcessUnknown, ergo_py.ProcessExited)


def _value(value: bytes) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"values are bytes, got {type(value).__name__} (encode it first)")
    return value


class GlobalClient:
    """A client of the Global cluster whose members are `nodes` (ProcessIDs of `global`).

    `process` is the actor the client acts for: calls come from it, and locks are
    owned by it (released when it dies). `timeout` bounds each operation, retries
    included; `try_timeout` bounds one attempt (a request forwarded to a leader that
    just died is lost, so the client tries again elsewhere rather than waiting it
    out; retrying a write is safe, sessions make it exactly-once); `consistency` is
    the default read level (None: the server's).
    """

    def __init__(
        self,
        nodes: Sequence[ProcessID | str],
        process: Actor,
        *,
        timeout: float = 5.0,
        try_timeout: float = 1.0,
        consistency: str | None = None,
        client_id: str | None = None,
    ) -> None:
        members = [ProcessID("global", n) if isinstance(n, str) else n for n in nodes]
        if not members:
            raise ValueError("a GlobalClient needs at least one member")
        self.nodes = members
        self.process = process
        self.timeout = timeout
        self.try_timeout = try_timeout
        self.consistency = consistency or ""
        self.client_id = client_id or uuid.uuid4().hex
        self._leader: ProcessID | None = None
        self._asked: ProcessID | None = None  # the member last asked who leads (see _go_direct)
        self._ask: ProcessID | None = None  # a member to ask before the next request
        self._redirected: ProcessID | None = None  # the leader _go_direct last moved us to
        self._no_direct: tuple[ProcessID, float] | None = None  # a leader out of reach, until when
        self._next = 0
        self._seq = 0
        self._outstanding: set[int] = set()
        # The server starts a session only for a write with ack <= 1, so ack stays 1 until
        # a write has certainly gone through the log (a success); lower acks are always safe.
        self._session_open = False
        self._keeper_started = False

    # -- KV ------------------------------------------------------------------------------
    async def get(self, key: Key, *, consistency: str | None = None) -> bytes | None:
        return await self._request(GetRequest(_key(key), consistency or self.consistency))  # type: ignore[no-any-return]

    async def range_kv(
        self,
        key: Key,
        range_end: Key = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        consistency: str | None = None,
        sort_order: str = "none",
        sort_target: str = "key",
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> RangeResponse:
        """etcd's Range: the keys in [key, range_end) (b"": `key` alone; b"\\x00": every key
        from it on) with their revisions and versions, as they were at `revision` (0: now);
        `Compacted` below the compacted revision, `FutureRevision` above the member's.

        As etcd: `count` is every key in the range, `more` says `limit` left some out;
        `sort_order` "ascend" / "descend" by `sort_target` "key", "version", "create",
        "mod" or "value" (a target other than the key sorts ascending by default); the
        `min/max_*_revision` filters (0: no bound); `keys_only` returns empty values,
        `count_only` no keys."""
        request = KVRangeRequest(
            _key(key),
            _key(range_end),
            revision,
            limit,
            consistency or self.consistency,
            sort_order,
            sort_target,
            keys_only,
            count_only,
            min_mod_revision,
            max_mod_revision,
            min_create_revision,
            max_create_revision,
        )
        return await self._request(request)  # type: ignore[no-any-return]

    async def range(
        self, start: Key | None, end: Key | None, limit: int = 0, *, consistency: str | None = None
    ) -> list[tuple[bytes, bytes]]:
        request = RangeRequest(
            None if start is None else _key(start),
            None if end is None else _key(end),
            limit,
            consistency or self.consistency,
        )
        return [tuple(pair) for pair in await self._request(request)]  # type: ignore[misc]

    async def prefix_scan(
        self, prefix: Key, limit: int = 0, *, consistency: str | None = None
    ) -> list[tuple[bytes, bytes]]:
        request = PrefixRequest(_key(prefix), limit, consistency or self.consistency)
        return [tuple(pair) for pair in await self._request(request)]  # type: ignore[misc]

    async def put(self, key: Key, value: bytes) -> None:
        await self._write(lambda tag: PutRequest(_key(key), _value(value), tag))

    async def delete(self, key: Key) -> None:
        await self._write(lambda tag: DeleteRequest(_key(key), tag))

    async def put_kv(
        self,
        key: Key,
        value: bytes = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutResponse:
        """etcd's Put: `PutResponse(header, prev_kv)`, `header.revision` the put's own.
        `lease` attaches the key to a lease (deleted when it ends; `LeaseNotFound` if there
        is none); `ignore_value` keeps the current value (`KeyNotFound` if there is none),
        `ignore_lease` the current lease."""
        data = b"" if ignore_value else _value(value)
        k = _key(key)
        return await self._write(  # type: ignore[no-any-return]
            lambda tag: KVPutRequest(k, data, lease, prev_kv, ignore_value, ignore_lease, tag)
        )

    async def delete_range(self, key: Key, range_end: Key = b"", *, prev_kv: bool = False) -> DeleteRangeResponse:
        """etcd's DeleteRange over [key, range_end) (as `range_kv`), in one revision."""
        k, end = _key(key), _key(range_end)
        return await self._write(lambda tag: KVDeleteRangeRequest(k, end, prev_kv, tag))  # type: ignore[no-any-return]

    async def compact(self, revision: int) -> CompactResponse:
        """etcd's Compact: reads below `revision` fail with `Compacted` from now on."""
        return await self._write(lambda tag: CompactRequest(revision, tag))  # type: ignore[no-any-return]

    async def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[TxnRequestOp] = (),
        failure: Iterable[TxnRequestOp] = (),
    ) -> TxnResponse:
        """etcd's Txn, in one revision: if every compare holds, the `success` operations,
        else the `failure` ones (build both with `global_kv.client.ops`). Answered with
        `TxnResponse(header, succeeded, responses)`, one response per operation of the
        branch that ran; a branch that writes a key twice is refused (`InvalidRequest`)."""
        request = TxnRequest(tuple(compare), tuple(success), tuple(failure))
        return await self._write(lambda tag: replace(request, session=tag))  # type: ignore[no-any-return]

    async def cas(self, key: Key, old: bytes | None, new: bytes | None) -> None:
        """Set `key` to `new` (None: delete) if it is `old` (None: absent); else raise
        CASFailed with the value found. A transaction: compare, then put / delete or get."""
        k = _key(key)
        compare = ops.version(k) == 0 if old is None else ops.value(k) == _value(old)
        change = ops.delete(k) if new is None else ops.put(k, _value(new))
        answer = await self.txn([compare], [change], [ops.get(k)])
        if not answer.succeeded:
            (found,) = answer.responses
            raise CASFailed(k, found.kvs[0].value if found.kvs else None)  # type: ignore[union-attr]

    async def batch_put(self, items: Mapping[Key, bytes]) -> None:
        """Set every key, in one revision (a later duplicate key wins)."""
        pairs = {_key(k): _value(v) for k, v in items.items()}
        await self.txn(success=[ops.put(k, v) for k, v in pairs.items()])

    async def batch_delete(self, keys: Iterable[Key]) -> None:
        """Delete every key, in one revision."""
        await self.txn(success=[ops.delete(k) for k in dict.fromkeys(_key(k) for k in keys)])

    # -- watches -------------------------------------------------------------------------------
    def watch(
        self,
        key: Key,
        range_end: Key = b"",
        *,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[str] = (),
        progress_notify: bool = False,
        batched: bool = False,
    ) -> Watch:
        """etcd's Watch: every change of [key, range_end) (or of every key under `key` with
        `prefix`) after `start_revision` - 1 (0: from the serving member's revision when it
        is registered, which a lagging follower may have behind your last write), as
        `WatchEvent(type, kv, prev_kv)` in revision order, a transaction's events together.
        Served by any member from its applied state; if that member goes, the watch resumes
        at another right after the last revision it delivered (no gap, no duplicate).
        `filters`: "noput", "nodelete"; `progress_notify` also yields
        `WatchProgress(revision)` when idle (no event at or below it is still to come).
        `Compacted` if the history it needs is gone.

            async with client.watch("cfg/", prefix=True) as events:  # registered here
                async for event in events:
                    ...

        `async for event in client.watch(...)` works too (registered at the first step);
        the `async with` form also ends the watch when the block is left early. After
        registering, `watch.revision` is the serving member's revision then.

        `batched=True` yields `WatchBatch(revision, events)`: whole revisions together, as
        they came (what a server that forwards revisions, like the etcd API, needs).
        """
        return Watch(
            self._watch_stream(key, range_end, prefix, start_revision, prev_kv, filters, progress_notify, batched)
        )

    async def _watch_stream(
        self,
        key: Key,
        range_end: Key,
        prefix: bool,
        start_revision: int,
        prev_kv: bool,
        filters: Iterable[str],
        progress_notify: bool,
        batched: bool,
    ) -> AsyncGenerator[Any, None]:
        """The watch's items, after one `Registered` once the first member has it."""
        k = _key(key)
        end = prefix_range_end(k) if prefix else _key(range_end)
        wanted = tuple(filters)
        send, receive = trio.open_memory_channel[Any](math.inf)
        node = self.process.node
        receiver = await node.spawn(WatchReceiver, send, self.process.pid)
        next_start = start_revision
        registered = False
        try:
            while True:
                member, created = await self._create_watch(
                    k, end, receiver, next_start, prev_kv, wanted, progress_notify
                )
                node.send(receiver, watch_serve(member))
                if next_start == 0:
                    next_start = created.header.revision + 1
                if not registered:
                    registered = True
                    yield Registered(created.header.revision)
                while True:
                    message = await receive.receive()
                    if isinstance(message, MemberGone):
                        if message.member == member:
                            break  # resume elsewhere, right after what was delivered
                        continue
                    if message.watch_id != created.watch_id:
                        continue  # a watch of ours at a member we left
                    if isinstance(message, WatchCanceled):
                        if message.reason == "compacted":
                            raise Compacted(message.compact_revision)
                        break
                    if batched and message.events:
                        yield WatchBatch(message.revision, message.events)
                    else:
                        for event in message.events:
                            yield event
                    if message.revision >= next_start:
                        next_start = message.revision + 1
                    if not message.events and progress_notify:
                        yield WatchProgress(message.revision)
                    node.send(receiver, watch_ack(member, created.watch_id, message.revision))
                self._next += 1  # another member, if there is one
        finally:
            with trio.CancelScope(shield=True):
                node.kill(receiver)  # its members see it go and drop its watches
                send.close()

    async def _create_watch(
        self,
        key: bytes,
        end: bytes,
        receiver: ergo_py.PID,
        start: int,
        prev_kv: bool,
        filters: tuple[str, ...],
        progress: bool,
    ) -> tuple[ProcessID, WatchCreateResponse]:
        """Register the watch at some member (its own state serves it), retrying members
        until this client's timeout."""
        request = WatchCreateRequest(key, receiver, end, start, prev_kv, filters, progress)
        deadline = trio.current_time() + self.timeout
        backoff = 0.01
        while True:
            member = self.nodes[self._next % len(self.nodes)]
            try:
                created = await self.process.call(member, request, timeout=self.try_timeout)
                return member, created
            except _RETRYABLE:
                self._next += 1
                if trio.current_time() >= deadline:
                    raise Unavailable(f"no member registered the watch within {self.timeout} s") from None
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    # -- elections and semaphores ---------------------------------------------------------------
    def election(self, name: Key) -> Election:
        """etcd's v3election on `name`: campaign(value, lease_id), proclaim, leader, observe,
        resign (see `global_kv.client.Election`)."""
        return Election(self, name)

    def semaphore(self, name: Key, permits: int) -> Semaphore:
        """A counted lock of `permits` on `name` (see `global_kv.client.Semaphore`)."""
        return Semaphore(self, name, permits)

    # -- leases --------------------------------------------------------------------------------
    async def lease_grant(self, ttl: float, *, lease_id: int = 0, owner: Any = None) -> LeaseGrantResponse:
        """etcd's LeaseGrant: a lease of `ttl` seconds (id `lease_id`, or 0 for one chosen for
        you). With `owner` (an actor, or a PID), the lease also ends the moment that process
        dies, through the leader's monitor of it, as a lock does: keys put with it vanish
        with their process, without keep-alives (the TTL still bounds a partition)."""
        pid = None if owner is None else getattr(owner, "pid", owner)
        if pid is not None:
            await self._keep_links()  # a new leader must be able to monitor the owner
        return await self._write(lambda tag: LeaseGrantRequest(ttl, lease_id, pid, tag))  # type: ignore[no-any-return]

    async def lease_revoke(self, lease_id: int) -> LeaseRevokeResponse:
        """End the lease now: its keys are deleted in one revision (`LeaseNotFound` if gone)."""
        return await self._write(lambda tag: LeaseRevokeRequest(lease_id, tag))  # type: ignore[no-any-return]

    async def lease_keepalive(self, lease_id: int) -> LeaseKeepAliveResponse:
        """One keep-alive: the lease's TTL starts again (`LeaseNotFound` if it ended). Count
        the TTL from when you sent it: every member's deadline is later than that."""
        return await self._write(lambda tag: LeaseKeepAliveRequest(lease_id, tag))  # type: ignore[no-any-return]

    async def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseTimeToLiveResponse:
        """Seconds left on the leader's deadline (`ttl`, -1: no such lease), the TTL granted,
        and the lease's keys if asked."""
        return await self._request(LeaseTimeToLiveRequest(lease_id, keys))  # type: ignore[no-any-return]

    async def leases(self) -> LeaseLeasesResponse:
        """Every lease's id."""
        return await self._request(LeaseLeasesRequest())  # type: ignore[no-any-return]

    @asynccontextmanager
    async def lease(self, ttl: float, *, owner: Any = None) -> AsyncIterator[LeaseGrantResponse]:
        """A lease for the block, kept alive every ttl/3 while it runs and revoked on exit
        (also on exceptions and cancellation). If this process dies, the keep-alives stop
        and the lease expires within `ttl`, or at once if it is process-owned."""
        granted = await self.lease_grant(ttl, owner=owner)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.keep_lease_alive, granted.lease_id, ttl)
                try:
                    yield granted
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.lease_revoke(granted.lease_id)
                except GlobalKVError:
                    pass  # ended already (expired, or its owner's death revoked it)

    async def keep_lease_alive(self, lease_id: int, ttl: float) -> None:
        """Send a keep-alive every ttl/3 until cancelled (LeaseNotFound if the lease ended)."""
        while True:
            await trio.sleep(ttl / 3)
            await self.lease_keepalive(lease_id)

    # -- locks ---------------------------------------------------------------------------------
    async def lock(self, key: Key) -> LockHandle:
        """Wait (up to this client's timeout) for `key`; no TTL unless the server's default."""
        return await self.lock_with_timeout(key, 0.0, self.timeout)

    async def lock_with_ttl(self, key: Key, ttl: float) -> LockHandle:
        return await self.lock_with_timeout(key, ttl, self.timeout)

    async def try_lock(self, key: Key, ttl: float = 0.0) -> LockHandle:
        """Take `key` only if it is free now; raises LockHeld otherwise."""
        return await self.lock_with_timeout(key, ttl, 0.0)

    async def lock_with_timeout(self, key: Key, ttl: float, timeout: float) -> LockHandle:
        """Acquire `key` for this client's process, waiting in line up to `timeout` seconds.

        `ttl` (seconds, 0 = none) releases the lock if not refreshed in time. Raises
        LockHeld (timeout 0 and held), LockTimeout, TooManyWaiters or Unavailable.
        """
        k = _key(key)
        owner = self.process.pid
        deadline = trio.current_time() + timeout
        await self._keep_links()

        def make(tag: SessionTag) -> LockRequest:
            left = max(0.0, deadline - trio.current_time()) if timeout > 0 else 0.0
            return LockRequest(k, owner, float(ttl), left, tag)

        for attempt in range(1, 4):
            try:
                token = await self._write(make, extra_time=max(0.0, deadline - trio.current_time()))
            except LockNotHeld:
                # Granted, but the grant expired before its answer reached us (a retry answered
                # after a failover): it is not ours. A fresh request asks again, in line.
                if trio.current_time() >= deadline and attempt > 1:
                    break
                continue
            return LockHandle(k, token, float(ttl), self)
        raise LockTimeout(k, timeout)

    async def unlock(self, key: Key, token: int) -> None:
        k = _key(key)
        await self._write(lambda tag: UnlockRequest(k, token, tag))

    async def refresh(self, key: Key, token: int, ttl: float) -> None:
        k = _key(key)
        await self._write(lambda tag: RefreshRequest(k, token, float(ttl), tag))

    @asynccontextmanager
    async def locked(
        self, key: Key, *, ttl: float = 0.0, timeout: float | None = None, keep_alive: bool = False
    ) -> AsyncIterator[LockHandle]:
        """Hold `key` for the block; released on exit (also on exceptions and cancellation).

        The body never runs without the lock: acquiring raises instead. With
        `keep_alive` and a TTL, the lock is refreshed every ttl/3 while the block runs
        (and stops being refreshed when this process dies, so it then expires).
        """
        handle = await self.lock_with_timeout(key, ttl, self.timeout if timeout is None else timeout)
        try:
            if keep_alive and ttl > 0:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keep_alive, handle)
                    try:
                        yield handle
                    finally:
                        nursery.cancel_scope.cancel()
            else:
                yield handle
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await handle.unlock()
                except GlobalKVError:
                    pass  # lost already (expired or owner released): nothing to give back

    async def _keep_alive(self, handle: LockHandle) -> None:
        while True:
            await trio.sleep(handle.ttl / 3)
            await handle.refresh()

    async def with_lock(self, key: Key, fn: Any, *, ttl: float = 0.0, timeout: float | None = None) -> Any:
        """Run `await fn()` (or `fn()`) holding `key`; the seed's WithLock."""
        async with self.locked(key, ttl=ttl, timeout=timeout):
            result = fn()
            if hasattr(result, "__await__"):
                result = await result
            return result

    async def list_locks(self) -> list[LockInfo]:
        return await self._request(ListLocksRequest())  # type: ignore[no-any-return]

    async def status(self, node: ProcessID | str | None = None) -> StatusResponse:
        """The StatusResponse of one member (default: the first that answers)."""
        if node is not None:
            target = ProcessID("global", node) if isinstance(node, str) else node
            return await self.process.call(target, StatusRequest(), timeout=self.timeout)  # type: ignore[no-any-return]
        return await self._request(StatusRequest(), follow_leader=False)  # type: ignore[no-any-return]

    async def add_peer(self, node: str, *, timeout: float = 30.0) -> int:
        """Make the replica on `node` a member (the members must be able to dial it: it is
        in their BOOTSTRAP or ROUTES). The leader first checks that it runs a replica of
        this cluster. The log index of the change; `ConfChangeRejected` if it is a member
        already, cannot be reached, or another change is not committed yet."""
        return await self._to_leader(AddPeerRequest(ProcessID("global", node)), timeout)

    async def remove_peer(self, node: str, *, timeout: float = 30.0) -> int:
        """Remove the member on `node` (through the leader). The log index of the change."""
        return await self._to_leader(RemovePeerRequest(ProcessID("global", node)), timeout)

    async def _to_leader(self, request: Any, timeout: float) -> int:
        """A membership request to whichever member leads, within `timeout` (its check may
        take longer than one try of `_request`)."""
        deadline = trio.current_time() + timeout
        while True:
            leader = (await self.status()).leader
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise Unavailable(f"no leader took {type(request).__name__} within {timeout:g} s")
            if leader is not None:
                try:
                    return await self.process.call(leader, request, timeout=remaining)  # type: ignore[no-any-return]
                except NotLeader:
                    pass
            await trio.sleep(min(0.1, remaining))

    # -- internals ---------------------------------------------------------------------------
    async def _keep_links(self) -> None:
        """From the first lock on, keep this node linked to every member (see LinkKeeper): a
        new leader must be able to monitor this process even if this node has no listener."""
        if self._keeper_started:
            return
        self._keeper_started = True
        node = self.process.node
        await node.spawn(LinkKeeper, [m.node for m in self.nodes], self.process.pid)

    async def _write(self, make: Callable[[SessionTag], Any], extra_time: float = 0.0) -> Any:
        self._seq += 1
        seq = self._seq
        self._outstanding.add(seq)
        try:
            result = await self._request(make, seq=seq, extra_time=extra_time)
            self._session_open = True
            return result
        finally:
            self._outstanding.discard(seq)

    def _ack(self) -> int:
        return min(self._outstanding) if self._session_open else 1

    async def _go_direct(self, member: ProcessID, deadline: float) -> None:
        """`member` answered the last request, perhaps by forwarding it to the leader: ask it
        once who leads, and talk to the leader itself from now on if it is one of this
        client's members (a hop less each way for every request). Asked before the next
        request, not before returning the answer (which a cancelled caller would lose), and
        again only after the client moves on to another member. A leader this node could
        not reach directly is not tried again for a minute: the client keeps forwarding."""
        self._asked = member
        try:
            with trio.move_on_at(min(deadline, trio.current_time() + self.try_timeout)):
                status = await self.process.call(member, StatusRequest(), timeout=self.try_timeout)
                leader = getattr(status, "leader", None)
                blocked = self._no_direct
                if blocked is not None and blocked[1] <= trio.current_time():
                    blocked = self._no_direct = None
                if leader is not None and leader != member and leader in self.nodes:
                    if blocked is None or blocked[0] != leader:
                        self._leader = self._asked = self._redirected = leader
        except (GlobalKVError, ergo_py.ErgoError):
            return

    def _target(self) -> ProcessID:
        if self._leader is not None:
            return self._leader
        target = self.nodes[self._next % len(self.nodes)]
        return target

    def _rotate(self) -> None:
        self._leader = None
        self._next += 1

    async def _request(
        self, request: Any, *, follow_leader: bool = True, seq: int | None = None, extra_time: float = 0.0
    ) -> Any:
        """Send `request` (or, for writes, `request(tag)` rebuilt per attempt with this client's
        session tag for `seq` and the current ack) until answered."""
        deadline = trio.current_time() + self.timeout + extra_time
        if follow_leader and self._ask is not None:
            member, self._ask = self._ask, None
            if member == self._leader:
                await self._go_direct(member, deadline)
        backoff = 0.01
        last_error: BaseException | None = None
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise Unavailable(
                    f"{type(request).__name__} got no answer within {self.timeout} s (last error: {last_error!r})"
                )
            target = self._target()
            message = request(SessionTag(self.client_id, seq, self._ack())) if seq is not None else request
            per_try = self.try_timeout + (getattr(message, "timeout", 0.0) if seq is not None else 0.0)
            try:
                result = await self.process.call(target, message, timeout=min(remaining, per_try))
            except NotLeader as exc:
                last_error = exc
                hint = exc.leader_hint
                if follow_leader and isinstance(hint, ProcessID) and hint != target:
                    self._leader = hint
                    continue
                self._rotate()
            except _RETRYABLE as exc:
                last_error = exc
                if isinstance(exc, ergo_py.NoConnection) and target == self._redirected:
                    # Found by _go_direct, and out of this node's reach: forward for a while.
                    self._no_direct, self._redirected = (target, trio.current_time() + _NO_DIRECT_FOR), None
                self._rotate()
            except GlobalKVError:
                raise
            else:
                if follow_leader:
                    self._leader = target
                    if target != self._asked:
                        self._ask = target
                return result
            await trio.sleep(min(backoff, max(0.0, deadline - trio.current_time())))
            backoff = min(backoff * 2, 0.2)


class _ClientProcess(Actor):
    """The process a script's client acts for (owns its locks)."""

    async def handle_message(self, from_: Any, message: Any) -> None:
        return None


@asynccontextmanager
async def open_client(
    node: ergo_py.Node | str,
    nodes: Sequence[ProcessID | str] | None = None,
    *,
    cookie: str | None = None,
    **options: Any,
) -> AsyncIterator[GlobalClient]:
    """A GlobalClient for code that is not an actor, with its own process (stopped after).

    `open_client(node, ["n1@host", ...])` runs the client on a node you started;
    `open_client(BOOTSTRAP, cookie=COOKIE)` (the string `global-kv cluster` prints, or a
    node's BOOTSTRAP setting) starts a node of its own that only dials out, for as long
    as the block runs. The cookie defaults to $ERGO_COOKIE.
    """
    if isinstance(node, str):
        routes = parse_bootstrap(node)
        name = f"client-{secrets.token_hex(4)}@localhost"
        async with ergo_py.start_node(name, ergo_py.NodeOptions(cookie=cookie, routes=routes)) as own:
            async with open_client(own, list(routes) if nodes is None else nodes, **options) as client:
                yield client
        return
    if nodes is None:
        raise TypeError("open_client(node, nodes): name the members (or pass a BOOTSTRAP string instead of a node)")
    pid = await node.spawn(_ClientProcess)
    proc = node._local(pid)
    assert proc is not None
    try:
        yield GlobalClient(nodes, proc.actor, **options)
    finally:
        if node.is_alive(pid):
            await node.stop_process(pid, ergo_py.NORMAL)
