"""etcd's protobuf messages to and from global_kv's protocol records: one place for each
field's mapping, used by the gRPC services and the JSON gateway alike.

etcd names members and clusters by uint64 ids; ours are names. `member_id` is a stable
64-bit hash of a name (the same on every node), so a member keeps its id across
restarts, and `MemberList`, `Status` and every response header agree on it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..protocol import (
    Compare,
    DeleteRangeResponse,
    KeyValue,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    PutResponse,
    RangeResponse,
    ResponseHeader,
    TxnRequest,
    TxnRequestOp,
    TxnResponse,
    WatchEvent,
)
from ..state import MAX_TXN_DEPTH  # deeper is refused before the conversion recurses further
from ._grpc import GrpcError, Status
from ._pb import kv_pb2, rpc_pb2

__all__ = [
    "Headers",
    "compare_from_pb",
    "event_to_pb",
    "kv_to_pb",
    "member_id",
    "process_member_id",
    "range_from_pb",
    "txn_from_pb",
]

# etcd's --max-txn-ops default: compares, and operations of each branch, per transaction.
MAX_TXN_OPS = 128
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
_SORT_ORDER = {0: "none", 1: "ascend", 2: "descend"}
_SORT_TARGET = {0: "key", 1: "version", 2: "create", 3: "mod", 4: "value"}
_COMPARE_RESULT = {0: "=", 1: ">", 2: "<", 3: "!="}
_COMPARE_TARGET = {0: "version", 1: "create", 2: "mod", 3: "value", 4: "lease"}
_TARGET_FIELD = {0: "version", 1: "create_revision", 2: "mod_revision", 3: "value", 4: "lease"}


def member_id(name: str) -> int:
    """A member's (or cluster's) etcd id: 64 bits of SHA-256 of its name, never 0. A
    member's name is its Raft id, "global@node" (what every response header names)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") or 1


def process_member_id(process: Any) -> int:
    """The etcd id of the member whose replica is `process` (a ProcessID)."""
    return member_id(f"{process.name}@{process.node}")


class Headers:
    """Builds etcd's ResponseHeader from ours (cluster id fixed per server)."""

    def __init__(self, cluster_id: int, member_id: int) -> None:
        self.cluster_id = cluster_id
        self.member_id = member_id

    def at(self, revision: int, raft_term: int = 0) -> rpc_pb2.ResponseHeader:
        """A header for what this member sends on its own (a watch's events)."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=revision, raft_term=raft_term
        )

    def pb(self, header: ResponseHeader) -> rpc_pb2.ResponseHeader:
        """As etcd: the member the client talks to names itself, also for an answer the
        leader gave (a forwarded write); the revision and term are the answer's."""
        return self.at(header.revision, header.raft_term)

    def range(self, r: RangeResponse) -> rpc_pb2.RangeResponse:
        return rpc_pb2.RangeResponse(
            header=self.pb(r.header), kvs=[kv_to_pb(kv) for kv in r.kvs], more=r.more, count=r.count
        )

    def put(self, r: PutResponse) -> rpc_pb2.PutResponse:
        out = rpc_pb2.PutResponse(header=self.pb(r.header))
        if r.prev_kv is not None:
            out.prev_kv.CopyFrom(kv_to_pb(r.prev_kv))
        return out

    def delete(self, r: DeleteRangeResponse) -> rpc_pb2.DeleteRangeResponse:
        return rpc_pb2.DeleteRangeResponse(
            header=self.pb(r.header), deleted=r.deleted, prev_kvs=[kv_to_pb(kv) for kv in r.prev_kvs]
        )

    def txn(self, r: TxnResponse) -> rpc_pb2.TxnResponse:
        out = rpc_pb2.TxnResponse(header=self.pb(r.header), succeeded=r.succeeded)
        for response in r.responses:
            op = out.responses.add()
            if isinstance(response, RangeResponse):
                op.response_range.CopyFrom(self.range(response))
            elif isinstance(response, PutResponse):
                op.response_put.CopyFrom(self.put(response))
            elif isinstance(response, DeleteRangeResponse):
                op.response_delete_range.CopyFrom(self.delete(response))
            else:
                op.response_txn.CopyFrom(self.txn(response))
        return out


def kv_to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def event_to_pb(event: WatchEvent, prev_kv: bool) -> kv_pb2.Event:
    out = kv_pb2.Event(type=kv_pb2.Event.PUT if event.type == "put" else kv_pb2.Event.DELETE, kv=kv_to_pb(event.kv))
    if prev_kv and event.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_to_pb(event.prev_kv))
    return out


def _enum(table: dict[int, str], value: int, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise GrpcError(Status.INVALID_ARGUMENT, f"etcdserver: unknown {what} {value}") from None


def range_from_pb(r: rpc_pb2.RangeRequest) -> KVRangeRequest:
    # As etcd's store: a limit at or below 0 is none, a revision at or below 0 is now.
    return KVRangeRequest(
        r.key,
        r.range_end,
        max(0, r.revision),
        max(0, r.limit),
        "follower" if r.serializable else "linearizable",
        _enum(_SORT_ORDER, r.sort_order, "sort order"),
        _enum(_SORT_TARGET, r.sort_target, "sort target"),
        r.keys_only,
        r.count_only,
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    )


def put_from_pb(r: rpc_pb2.PutRequest) -> KVPutRequest:
    return KVPutRequest(r.key, r.value, r.lease, r.prev_kv, r.ignore_value, r.ignore_lease)


def delete_from_pb(r: rpc_pb2.DeleteRangeRequest) -> KVDeleteRangeRequest:
    return KVDeleteRangeRequest(r.key, r.range_end, r.prev_kv)


def compare_from_pb(c: rpc_pb2.Compare) -> Compare:
    target = _enum(_COMPARE_TARGET, c.target, "compare target")
    result = _enum(_COMPARE_RESULT, c.result, "compare result")
    value: Any = getattr(c, _TARGET_FIELD[c.target])
    return Compare(c.key, target, result, value, c.range_end)


def txn_from_pb(r: rpc_pb2.TxnRequest, depth: int = 1) -> TxnRequest:
    if depth > MAX_TXN_DEPTH:
        raise GrpcError(Status.INVALID_ARGUMENT, f"etcdserver: transactions nest at most {MAX_TXN_DEPTH} deep")
    if max(len(r.compare), len(r.success), len(r.failure)) > MAX_TXN_OPS:
        raise GrpcError(Status.INVALID_ARGUMENT, TOO_MANY_OPS)
    return TxnRequest(
        tuple(compare_from_pb(c) for c in r.compare),
        tuple(_op_from_pb(op, depth) for op in r.success),
        tuple(_op_from_pb(op, depth) for op in r.failure),
    )


def _op_from_pb(op: rpc_pb2.RequestOp, depth: int) -> TxnRequestOp:
    which = op.WhichOneof("request")
    if which == "request_range":
        return range_from_pb(op.request_range)
    if which == "request_put":
        return put_from_pb(op.request_put)
    if which == "request_delete_range":
        return delete_from_pb(op.request_delete_range)
    if which == "request_txn":
        return txn_from_pb(op.request_txn, depth + 1)
    raise GrpcError(Status.INVALID_ARGUMENT, "etcdserver: a txn operation names no request")
