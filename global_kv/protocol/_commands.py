"""The one place a client's write request becomes a state-machine `Command`.

The replica's shell (and any other driver of the state machine: a pure replica, the
simulator) calls `command_for` for a KV write and `lock_command_for` for a lock
request, so the mapping from wire request to log command, with its session tag and
value compression, is written once. The builders return the `Command` value and
never encode it (`global_kv.state.encode_command` does that) nor look at replica
state. They trust the request: the replica's edge checks it first, and a `Command`
refuses an invalid field when it is built.
"""

from __future__ import annotations

import math

from ..state import (
    Command,
    CompactHistory,
    Delete,
    DeleteRange,
    KVPut,
    LeaseGrant,
    LeaseRefresh,
    LeaseRevoke,
    LockAcquire,
    LockRefresh,
    LockRelease,
    Op,
    Put,
    RangeOptions,
    Txn,
    TxnOp,
    TxnRange,
    encode_value,
)
from ..state import Compare as StateCompare
from ._requests import (
    CompactRequest,
    DeleteRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    KVWriteRequest,
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseRevokeRequest,
    LockRequest,
    PutRequest,
    RefreshRequest,
    TxnRequest,
    TxnRequestOp,
    UnlockRequest,
)
from ._session import SessionTag

__all__ = ["command_for", "lock_command_for", "range_options", "tagged_command", "ttl_ms", "txn_op_for"]


def tagged_command(session: SessionTag, op: Op) -> Command:
    """`op` in the envelope of the session that asked for it."""
    return Command(session.client_id, session.seq, session.ack, op)


def ttl_ms(seconds: float) -> int:
    """A lock TTL on the log: whole milliseconds, rounded up (a TTL never shortens)."""
    return max(0, math.ceil(seconds * 1000))


def command_for(request: KVWriteRequest, *, compress: bool, threshold: int) -> Command:
    """The command that applies a KV write request: values stored in their encoded form
    (zlib-compressed if `compress` and at least `threshold` bytes, see encode_value)."""
    op: Op
    if isinstance(request, PutRequest):
        op = Put(request.key, encode_value(request.value, compress, threshold))
    elif isinstance(request, DeleteRequest):
        op = Delete(request.key)
    elif isinstance(request, (KVPutRequest, KVDeleteRangeRequest, TxnRequest)):
        op = txn_op_for(request, compress=compress, threshold=threshold)  # type: ignore[assignment]
    elif isinstance(request, CompactRequest):
        op = CompactHistory(request.revision)
    elif isinstance(request, LeaseGrantRequest):
        op = LeaseGrant(request.lease_id, max(1, ttl_ms(request.ttl)), request.owner)
    elif isinstance(request, LeaseRevokeRequest):
        op = LeaseRevoke(request.lease_id)
    elif isinstance(request, LeaseKeepAliveRequest):
        op = LeaseRefresh(request.lease_id)
    else:
        raise TypeError(f"command_for takes a KV write request, got {type(request).__name__}")
    return tagged_command(request.session, op)


def txn_op_for(request: TxnRequestOp, *, compress: bool, threshold: int) -> TxnOp:
    """The state-machine operation of etcd's Put, DeleteRange, Range or Txn (the last
    two only inside a transaction), values encoded as `command_for` encodes them."""
    if isinstance(request, KVPutRequest):
        value = b"" if request.ignore_value else encode_value(request.value, compress, threshold)
        return KVPut(request.key, value, request.lease, request.prev_kv, request.ignore_value, request.ignore_lease)
    if isinstance(request, KVDeleteRangeRequest):
        return DeleteRange(request.key, request.range_end, request.prev_kv)
    if isinstance(request, KVRangeRequest):
        return TxnRange(request.key, request.range_end, request.revision, request.limit, range_options(request))
    if isinstance(request, TxnRequest):
        compares = (
            StateCompare(
                c.key,
                c.target,
                c.result,
                encode_value(c.value, compress, threshold) if type(c.value) is bytes else c.value,
                c.range_end,
            )
            for c in request.compare
        )
        return Txn(
            tuple(compares),
            tuple(txn_op_for(op, compress=compress, threshold=threshold) for op in request.success),
            tuple(txn_op_for(op, compress=compress, threshold=threshold) for op in request.failure),
        )
    raise TypeError(f"not a transaction operation: {type(request).__name__}")


def range_options(r: KVRangeRequest) -> RangeOptions:
    """The state machine's options for etcd's Range (checked at the edge before)."""
    return RangeOptions(
        r.sort_order,
        r.sort_target,
        r.keys_only,
        r.count_only,
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    )


def lock_command_for(request: LockRequest | UnlockRequest | RefreshRequest, *, default_ttl: float) -> Command:
    """The command that applies a lock request; an acquire without a TTL gets `default_ttl`
    seconds (0: the lock lives until released or its owner dies)."""
    op: Op
    if isinstance(request, LockRequest):
        op = LockAcquire(request.key, request.owner, ttl_ms(request.ttl if request.ttl > 0 else default_ttl))
    elif isinstance(request, UnlockRequest):
        op = LockRelease(request.key, request.token)
    elif isinstance(request, RefreshRequest):
        op = LockRefresh(request.key, request.token, ttl_ms(request.ttl))
    else:
        raise TypeError(f"lock_command_for takes a lock request, got {type(request).__name__}")
    return tagged_command(request.session, op)
