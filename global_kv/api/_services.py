"""etcd's KV, Lease, Cluster and Maintenance services, answered by a `GlobalClient`.

The client is the node's own (its first member is this node's replica), so everything
an etcd client asks goes the way a Python caller's request goes: writes with a session
tag (a retry after a lost answer is applied once), linearizable reads through the
leader's read round, `serializable` reads from this member's state ("follower"), and a
failover retried on the next member. Each handler converts, calls, converts back; the
rules live in the replica and the state machine, not here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import fields
from functools import partial
from typing import Any

import trio
from google.protobuf.message import Message

import ergo_py

from ..app import GLOBAL_NAME
from ..client import GlobalClient
from ..protocol import KVRangeRequest, StatusResponse
from ..replica import MAX_LOCK_SECONDS
from ._convert import Headers, delete_from_pb, member_id, process_member_id, put_from_pb, range_from_pb, txn_from_pb
from ._errors import etcd_call
from ._grpc import Call, GrpcError, Method, Status
from ._pb import rpc_pb2

__all__ = ["ETCD_VERSION", "EtcdServices"]

# The etcd API version we answer as (Status, /version): the one whose .proto we serve.
ETCD_VERSION = "3.5.0"
_RANGE_FIELDS = [f.name for f in fields(KVRangeRequest)]


def kv_json(kv: Any) -> dict[str, Any]:
    """A key-value in the snapshot's lines: etcd's field names, bytes in base64."""
    return {
        "key": base64.b64encode(kv.key).decode(),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "value": base64.b64encode(kv.value).decode(),
        "lease": kv.lease,
    }


def _node_of_url(url: str) -> str:
    """A member's peer URL -> its node: `http://NODE:PORT` (a node name is name@host,
    which a URL reads as user and host; etcdctl wants http or https, and a port, which is
    ignored: the members dial the node where their BOOTSTRAP or ROUTES say)."""
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0]
    node = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
    if not sep or scheme not in ("http", "https") or "@" not in node:
        raise GrpcError(
            Status.INVALID_ARGUMENT,
            f"etcdserver: peer URL {url!r} names no node: use http://NODE:PORT (e.g. http://n4@host:15004)",
        )
    return node


def _unimplemented(what: str) -> Callable[..., Awaitable[Any]]:
    async def handler(*_: Any) -> Any:
        raise GrpcError(Status.UNIMPLEMENTED, f"etcdserver: {what} is not supported by global-kv")

    return handler


class EtcdServices:
    """The handlers, by gRPC path; `node_name` is this member's node."""

    def __init__(
        self,
        client: GlobalClient,
        local: GlobalClient,
        node_name: str,
        cluster_name: str,
        client_urls: tuple[str, ...],
        peer_ports: Mapping[str, int],
    ) -> None:
        self.client = client
        self.local = local  # this member only: serializable reads are its own, as etcd's
        self.node_name = node_name
        self.headers = Headers(member_id(cluster_name), process_member_id(ergo_py.ProcessID(GLOBAL_NAME, node_name)))
        self.client_urls = client_urls
        self.peer_ports = peer_ports  # node -> the port its peers dial (for the peer URLs shown)

    # -- KV -----------------------------------------------------------------------------------
    async def range(self, r: rpc_pb2.RangeRequest, call: Call | None = None) -> rpc_pb2.RangeResponse:
        request = range_from_pb(r)
        kwargs = {name: getattr(request, name) for name in _RANGE_FIELDS}  # range_kv's parameters
        client = self.local if r.serializable else self.client
        found = await etcd_call(lambda: client.range_kv(**kwargs))
        return self.headers.range(found)

    async def put(self, r: rpc_pb2.PutRequest, call: Call | None = None) -> rpc_pb2.PutResponse:
        p = put_from_pb(r)
        done = await etcd_call(
            lambda: self.client.put_kv(
                p.key,
                p.value,
                lease=p.lease,
                prev_kv=p.prev_kv,
                ignore_value=p.ignore_value,
                ignore_lease=p.ignore_lease,
            )
        )
        return self.headers.put(done)

    async def delete_range(self, r: rpc_pb2.DeleteRangeRequest, call: Call | None = None) -> Message:
        d = delete_from_pb(r)
        done = await etcd_call(lambda: self.client.delete_range(d.key, d.range_end, prev_kv=d.prev_kv))
        return self.headers.delete(done)

    async def txn(self, r: rpc_pb2.TxnRequest, call: Call | None = None) -> rpc_pb2.TxnResponse:
        t = txn_from_pb(r)
        done = await etcd_call(lambda: self.client.txn(t.compare, t.success, t.failure))
        return self.headers.txn(done)

    async def compact(self, r: rpc_pb2.CompactionRequest, call: Call | None = None) -> Message:
        done = await etcd_call(lambda: self.client.compact(r.revision))
        return rpc_pb2.CompactionResponse(header=self.headers.pb(done.header))

    # -- Lease --------------------------------------------------------------------------------
    async def lease_grant(self, r: rpc_pb2.LeaseGrantRequest, call: Call | None = None) -> Message:
        if r.TTL > MAX_LOCK_SECONDS:  # etcd allows 9e9 s; a lease (as a lock) lives at most a year here
            raise GrpcError(Status.OUT_OF_RANGE, "etcdserver: too large lease TTL")
        ttl = max(1, r.TTL)  # etcd grants at least its minimum TTL, never refuses a small one
        done = await etcd_call(lambda: self.client.lease_grant(ttl, lease_id=r.ID))
        return rpc_pb2.LeaseGrantResponse(header=self.headers.pb(done.header), ID=done.lease_id, TTL=int(done.ttl))

    async def lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest, call: Call | None = None) -> Message:
        done = await etcd_call(lambda: self.client.lease_revoke(r.ID))
        return rpc_pb2.LeaseRevokeResponse(header=self.headers.pb(done.header))

    async def lease_keepalive(
        self,
        requests: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
        send: Callable[[Message], Awaitable[None]],
        call: Call,
    ) -> None:
        """One answer per keep-alive, in order; a lease that is gone is answered TTL 0 (etcd's way)."""
        async for r in requests:
            try:
                done = await etcd_call(partial(self.client.lease_keepalive, r.ID))
            except GrpcError as error:
                if error.code != Status.NOT_FOUND:
                    raise
                await send(rpc_pb2.LeaseKeepAliveResponse(header=await self.header(), ID=r.ID, TTL=0))
                continue
            await send(
                rpc_pb2.LeaseKeepAliveResponse(header=self.headers.pb(done.header), ID=done.lease_id, TTL=int(done.ttl))
            )

    async def lease_time_to_live(self, r: rpc_pb2.LeaseTimeToLiveRequest, call: Call | None = None) -> Message:
        done = await etcd_call(lambda: self.client.lease_time_to_live(r.ID, keys=r.keys))
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=self.headers.pb(done.header),
            ID=r.ID,
            TTL=-1 if done.ttl < 0 else int(done.ttl),  # whole seconds left, truncated as etcd's
            grantedTTL=int(done.granted_ttl),
            keys=list(done.keys),
        )

    async def lease_leases(self, r: rpc_pb2.LeaseLeasesRequest, call: Call | None = None) -> Message:
        done = await etcd_call(self.client.leases)
        return rpc_pb2.LeaseLeasesResponse(
            header=self.headers.pb(done.header), leases=[rpc_pb2.LeaseStatus(ID=i) for i in done.leases]
        )

    async def header(self) -> rpc_pb2.ResponseHeader:
        """A header for an answer that has none of its own: this member's revision now."""
        found = await etcd_call(lambda: self.local.range_kv(b"\x00", count_only=True, consistency="follower"))
        return self.headers.pb(found.header)

    # -- Cluster and Maintenance ----------------------------------------------------------------
    async def _status(self) -> StatusResponse:
        return await etcd_call(lambda: self.client.status(self.node_name))  # type: ignore[no-any-return]

    def _member(self, peer: ergo_py.ProcessID, client_url: str = "") -> rpc_pb2.Member:
        mine = peer.node == self.node_name
        return rpc_pb2.Member(
            ID=process_member_id(peer),
            name=peer.node,
            peerURLs=[f"http://{peer.node}:{self.peer_ports.get(peer.node, 0)}"],
            clientURLs=list(self.client_urls) if mine else [client_url] if client_url else [],
        )

    async def _client_urls(self, peers: Sequence[ergo_py.ProcessID]) -> dict[str, str]:
        """Each member's etcd API, as its status says (asked together; one that does not
        answer within a second is listed without)."""
        urls: dict[str, str] = {}

        async def ask(peer: ergo_py.ProcessID) -> None:
            with trio.move_on_after(1.0):
                try:
                    urls[peer.node] = (await self.client.status(peer)).client_url
                except Exception:  # noqa: BLE001 - a member that cannot answer is listed without a URL
                    pass

        async with trio.open_nursery() as nursery:
            for peer in peers:
                if peer.node != self.node_name:
                    nursery.start_soon(ask, peer)
        return urls

    async def member_list(self, r: rpc_pb2.MemberListRequest, call: Call | None = None) -> Message:
        status = await self._status()
        header = await self.header()
        urls = await self._client_urls(status.peers)
        members = [self._member(p, urls.get(p.node, "")) for p in status.peers]
        return rpc_pb2.MemberListResponse(header=header, members=members)

    async def member_add(self, r: rpc_pb2.MemberAddRequest, call: Call | None = None) -> Message:
        """etcd's MemberAdd as `add-peer`: the peer URL names the node, `http://NODE:PORT` (what
        MemberList shows); the members must be able to dial it (BOOTSTRAP or ROUTES)."""
        if r.isLearner:
            raise GrpcError(Status.UNIMPLEMENTED, "etcdserver: learners are not supported by global-kv")
        nodes = [_node_of_url(url) for url in r.peerURLs]
        if len(nodes) != 1:
            raise GrpcError(
                Status.INVALID_ARGUMENT, "etcdserver: give one peer URL, http://NODE:PORT (e.g. http://n4@host:15004)"
            )
        node = nodes[0]
        if node in {p.node for p in (await self._status()).peers}:
            raise GrpcError(Status.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
        await etcd_call(lambda: self.client.add_peer(node))
        added = self._member(ergo_py.ProcessID(GLOBAL_NAME, node))
        members = await self._members_after(lambda peers: node in peers)
        return rpc_pb2.MemberAddResponse(header=await self.header(), member=added, members=members)

    async def member_remove(self, r: rpc_pb2.MemberRemoveRequest, call: Call | None = None) -> Message:
        """etcd's MemberRemove as `remove-peer`, by the member's id (MemberList's)."""
        peers = (await self._status()).peers
        found = [p for p in peers if process_member_id(p) == r.ID]
        if not found:
            raise GrpcError(Status.NOT_FOUND, "etcdserver: member not found")
        node = found[0].node
        await etcd_call(lambda: self.client.remove_peer(node))
        members = await self._members_after(lambda peers: node not in peers)
        return rpc_pb2.MemberRemoveResponse(header=await self.header(), members=members)

    async def _members_after(self, done: Callable[[set[str]], bool]) -> list[rpc_pb2.Member]:
        """The members once this member's view shows the change (for at most 10 s)."""
        status = await self._status()
        with trio.move_on_after(10):
            while not done({p.node for p in status.peers}):
                await trio.sleep(0.05)
                status = await self._status()
        return [self._member(p) for p in status.peers]

    async def _pages(self, revision: int) -> AsyncIterator[list[Any]]:
        """Every key-value live at `revision` on this member, in key order, 1,000 at a time."""
        start = b"\x00"
        while True:
            read = partial(self.local.range_kv, start, b"\x00", revision=revision, limit=1000, consistency="follower")
            page = await etcd_call(read)
            if page.kvs:
                yield list(page.kvs)
            if not page.more or not page.kvs:
                return
            start = page.kvs[-1].key + b"\x00"

    async def snapshot(
        self,
        requests: AsyncIterator[rpc_pb2.SnapshotRequest],
        send: Callable[[Message], Awaitable[None]],
        call: Call,
    ) -> None:
        """etcd's Snapshot stream, honestly: not etcd's bbolt file (etcdutl cannot restore
        it) but a consistent dump of every key-value at one revision, one JSON object a line
        (the first names the format and the revision), blank lines up to a multiple of 512
        bytes, then the SHA-256 of all that in the last 32 bytes, as etcd ends its snapshots."""
        async for _ in requests:
            break
        header = await self.header()
        digest = hashlib.sha256()
        head = {"format": "global-kv-snapshot", "version": 1, "revision": header.revision, "member": self.node_name}
        chunks: AsyncIterator[bytes] = self._snapshot_lines(header.revision, json.dumps(head).encode() + b"\n")
        size = 0
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            await send(rpc_pb2.SnapshotResponse(header=header, remaining_bytes=32, blob=chunk))
        # etcd's snapshot is pages of 512 bytes: etcdctl finds the checksum by that size.
        padding = b"\n" * (-size % 512)
        digest.update(padding)
        await send(rpc_pb2.SnapshotResponse(header=header, remaining_bytes=0, blob=padding + digest.digest()))

    async def _snapshot_lines(self, revision: int, first: bytes) -> AsyncIterator[bytes]:
        yield first
        async for page in self._pages(revision):
            lines = [json.dumps(kv_json(kv), separators=(",", ":")).encode() for kv in page]
            yield b"\n".join(lines) + b"\n"

    async def hash_kv(self, r: rpc_pb2.HashKVRequest, call: Call | None = None) -> Message:
        """An honest HashKV: CRC-32 of every key-value (key, revisions, version, lease,
        value) live at `revision` (0: now) on this member, read from its own state in key
        order. Members that agree at a revision give the same hash (etcdctl endpoint hashkv
        compares them); it is not etcd's byte-for-byte hash of its bbolt backend."""
        revision = r.revision
        if revision == 0:
            revision = (await self.header()).revision
        crc = 0
        async for page in self._pages(revision):
            for kv in page:
                record = b"%d:%d:%d:%d:" % (kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                crc = zlib.crc32(len(kv.key).to_bytes(4, "big") + kv.key + record + kv.value, crc)
        return rpc_pb2.HashKVResponse(header=self.headers.at(revision), hash=crc)

    async def status(self, r: rpc_pb2.StatusRequest, call: Call | None = None) -> Message:
        status = await self._status()
        header = await self.header()
        return rpc_pb2.StatusResponse(
            header=header,
            version=ETCD_VERSION,
            dbSize=status.storage_size,
            dbSizeInUse=status.storage_size,
            leader=process_member_id(status.leader) if status.leader is not None else 0,
            raftIndex=status.commit_index,
            raftTerm=status.term,
            raftAppliedIndex=status.last_applied,
            errors=[] if status.has_quorum else ["etcdserver: no leader"],
            isLearner=False,
        )

    async def alarm(self, r: rpc_pb2.AlarmRequest, call: Call | None = None) -> Message:
        if r.action != rpc_pb2.AlarmRequest.GET:
            raise GrpcError(Status.UNIMPLEMENTED, "etcdserver: alarms are raised by the nodes themselves")
        return rpc_pb2.AlarmResponse(header=await self.header(), alarms=[])

    # -- the table ------------------------------------------------------------------------------
    def methods(self) -> dict[str, Method]:
        kv, lease = "/etcdserverpb.KV/", "/etcdserverpb.Lease/"
        cluster, maint = "/etcdserverpb.Cluster/", "/etcdserverpb.Maintenance/"
        table = {
            kv + "Range": Method(rpc_pb2.RangeRequest, self.range),
            kv + "Put": Method(rpc_pb2.PutRequest, self.put),
            kv + "DeleteRange": Method(rpc_pb2.DeleteRangeRequest, self.delete_range),
            kv + "Txn": Method(rpc_pb2.TxnRequest, self.txn),
            kv + "Compact": Method(rpc_pb2.CompactionRequest, self.compact),
            lease + "LeaseGrant": Method(rpc_pb2.LeaseGrantRequest, self.lease_grant),
            lease + "LeaseRevoke": Method(rpc_pb2.LeaseRevokeRequest, self.lease_revoke),
            lease + "LeaseKeepAlive": Method(rpc_pb2.LeaseKeepAliveRequest, self.lease_keepalive, streaming=True),
            lease + "LeaseTimeToLive": Method(rpc_pb2.LeaseTimeToLiveRequest, self.lease_time_to_live),
            lease + "LeaseLeases": Method(rpc_pb2.LeaseLeasesRequest, self.lease_leases),
            cluster + "MemberList": Method(rpc_pb2.MemberListRequest, self.member_list),
            maint + "Status": Method(rpc_pb2.StatusRequest, self.status),
            maint + "HashKV": Method(rpc_pb2.HashKVRequest, self.hash_kv),
            maint + "Snapshot": Method(rpc_pb2.SnapshotRequest, self.snapshot, streaming=True),
            cluster + "MemberAdd": Method(rpc_pb2.MemberAddRequest, self.member_add),
            cluster + "MemberRemove": Method(rpc_pb2.MemberRemoveRequest, self.member_remove),
            maint + "Alarm": Method(rpc_pb2.AlarmRequest, self.alarm),
        }
        # Every other method of etcd's services is answered Unimplemented, with its name.
        for service in rpc_pb2.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/etcdserverpb.{service.name}/{m.name}"
                if path not in table:
                    request = getattr(rpc_pb2, m.input_type.name)
                    streaming = m.client_streaming or m.server_streaming
                    table[path] = Method(request, _unimplemented(f"{service.name}.{m.name}"), streaming)
        return table
