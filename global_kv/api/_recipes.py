"""etcd's v3lock (Lock, Unlock) and v3election (Campaign, Proclaim, Leader, Observe,
Resign) services, on the client's `Election` recipe: etcd's server-side versions of its
`concurrency` package, with the same keys (`<name>/<lease id in hex>`), so a lock taken
here and one taken by a Go program with `concurrency.Mutex` exclude each other.

A waiter (Lock or Campaign) whose call is cancelled or times out takes its key back,
as etcd's do: the next in line is not kept waiting for a caller that left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from google.protobuf.message import Message

import ergo_py

from .._errors import GlobalKVError
from ..client import Election, GlobalClient
from ._convert import Headers, kv_to_pb
from ._errors import LEASE_NOT_FOUND, as_grpc_error, etcd_call
from ._grpc import Call, GrpcError, Method, Status
from ._pb import rpc_pb2, v3election_pb2, v3lock_pb2

__all__ = ["RecipeServices"]

NOT_LEADER = "etcdserver: election: not leader"
_SESSION_TTL = 60  # seconds: etcd's default session TTL, for a Lock or Campaign without a lease
NO_LEADER = "etcdserver: election: no leader"


class RecipeServices:
    def __init__(self, client: GlobalClient, headers: Headers, header: Callable[[], Awaitable[Any]]) -> None:
        self.client = client
        self.headers = headers
        self._header = header  # this member's header now

    async def _campaign(self, name: bytes, lease: int, value: bytes) -> tuple[Any, int, rpc_pb2.ResponseHeader]:
        """Wait to be first in line under `name` (its key, and the lease it is under); our
        key goes if we stop waiting. Without a lease, as etcd's server does, one of 60 s is
        granted for this call and never kept alive. The header is that of the answer that
        made it first in line, as etcd's Mutex keeps it (no read more)."""
        if not name:
            raise GrpcError(Status.INVALID_ARGUMENT, "etcdserver: key is not provided")
        if lease == 0:
            lease = (await etcd_call(lambda: self.client.lease_grant(_SESSION_TTL))).lease_id
        election = Election(self.client, name)
        try:
            # NotElected: its lease ended while it waited.
            not_found = GrpcError(Status.NOT_FOUND, LEASE_NOT_FOUND)
            kv = await etcd_call(lambda: election.campaign(value, lease), not_elected=not_found)
            assert election.header is not None  # set by a campaign that returns
            return kv, lease, self.headers.pb(election.header)
        except BaseException:
            # By key, as etcd's Mutex does: the txn that put it may not have answered yet.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.client.delete_range(election.prefix + b"%x" % lease)
            raise

    # -- v3lock --------------------------------------------------------------------------------
    async def lock(self, r: v3lock_pb2.LockRequest, call: Call | None = None) -> Message:
        kv, _, header = await self._campaign(r.name, r.lease, b"")
        return v3lock_pb2.LockResponse(header=header, key=kv.key)

    async def unlock(self, r: v3lock_pb2.UnlockRequest, call: Call | None = None) -> Message:
        done = await etcd_call(lambda: self.client.delete_range(r.key))
        return v3lock_pb2.UnlockResponse(header=self.headers.pb(done.header))

    # -- v3election ----------------------------------------------------------------------------
    async def campaign(self, r: v3election_pb2.CampaignRequest, call: Call | None = None) -> Message:
        kv, lease, header = await self._campaign(r.name, r.lease, r.value)
        leader = v3election_pb2.LeaderKey(name=r.name, key=kv.key, rev=kv.create_revision, lease=lease)
        return v3election_pb2.CampaignResponse(header=header, leader=leader)

    def _held(self, leader: v3election_pb2.LeaderKey) -> Election:
        if not leader.key or not leader.name:  # no leadership named: nothing this caller holds
            raise GrpcError(Status.FAILED_PRECONDITION, NOT_LEADER)
        election = Election(self.client, leader.name)
        election.key, election.revision = leader.key, leader.rev
        return election

    async def proclaim(self, r: v3election_pb2.ProclaimRequest, call: Call | None = None) -> Message:
        election = self._held(r.leader)
        not_leader = GrpcError(Status.FAILED_PRECONDITION, NOT_LEADER)
        await etcd_call(lambda: election.proclaim(r.value, r.leader.lease), not_elected=not_leader)
        return v3election_pb2.ProclaimResponse(header=await self._header())

    async def leader(self, r: v3election_pb2.LeaderRequest, call: Call | None = None) -> Message:
        kv = await etcd_call(Election(self.client, r.name).leader)
        if kv is None:
            raise GrpcError(Status.UNAVAILABLE, NO_LEADER)
        return v3election_pb2.LeaderResponse(header=await self._header(), kv=kv_to_pb(kv))

    async def observe(
        self,
        requests: AsyncIterator[v3election_pb2.LeaderRequest],
        send: Callable[[Message], Awaitable[None]],
        call: Call,
    ) -> None:
        """Server-streaming: the leader now, then each change, until the client leaves."""
        async for r in requests:
            try:
                async for kv in Election(self.client, r.name).observe():
                    if kv is not None:
                        await send(v3election_pb2.LeaderResponse(header=await self._header(), kv=kv_to_pb(kv)))
            except (GlobalKVError, ergo_py.ErgoError) as exc:
                raise as_grpc_error(exc) from None
            return

    async def resign(self, r: v3election_pb2.ResignRequest, call: Call | None = None) -> Message:
        await etcd_call(self._held(r.leader).resign)
        return v3election_pb2.ResignResponse(header=await self._header())

    def methods(self) -> dict[str, Method]:
        lock, election = "/v3lockpb.Lock/", "/v3electionpb.Election/"
        return {
            lock + "Lock": Method(v3lock_pb2.LockRequest, self.lock),
            lock + "Unlock": Method(v3lock_pb2.UnlockRequest, self.unlock),
            election + "Campaign": Method(v3election_pb2.CampaignRequest, self.campaign),
            election + "Proclaim": Method(v3election_pb2.ProclaimRequest, self.proclaim),
            election + "Leader": Method(v3election_pb2.LeaderRequest, self.leader),
            election + "Observe": Method(v3election_pb2.LeaderRequest, self.observe, streaming=True),
            election + "Resign": Method(v3election_pb2.ResignRequest, self.resign),
        }
