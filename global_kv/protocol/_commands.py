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
    CAS,
    BatchDelete,
    BatchPut,
    Command,
    CompactHistory,
    Delete,
    DeleteRange,
    KVPut,
    LockAcquire,
    LockRefresh,
    LockRelease,
    Op,
    Put,
    encode_value,
)
from ._requests import (
    BatchDeleteRequest,
    BatchPutRequest,
    CASRequest,
    CompactRequest,
    DeleteRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVWriteRequest,
    LockRequest,
    PutRequest,
    RefreshRequest,
    UnlockRequest,
)
from ._session import SessionTag

__all__ = ["command_for", "lock_command_for", "tagged_command", "ttl_ms"]


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
    elif isinstance(request, CASRequest):
        # `old` is stored-encoded too: the state machine compares decoded values.
        old = None if request.old is None else encode_value(request.old, compress, threshold)
        new = None if request.new is None else encode_value(request.new, compress, threshold)
        op = CAS(request.key, old, new)
    elif isinstance(request, BatchPutRequest):
        op = BatchPut(tuple((k, encode_value(v, compress, threshold)) for k, v in request.items))
    elif isinstance(request, BatchDeleteRequest):
        op = BatchDelete(tuple(request.keys))
    elif isinstance(request, KVPutRequest):
        value = b"" if request.ignore_value else encode_value(request.value, compress, threshold)
        op = KVPut(request.key, value, request.lease, request.prev_kv, request.ignore_value, request.ignore_lease)
    elif isinstance(request, KVDeleteRangeRequest):
        op = DeleteRange(request.key, request.range_end, request.prev_kv)
    elif isinstance(request, CompactRequest):
        op = CompactHistory(request.revision)
    else:
        raise TypeError(f"command_for takes a KV write request, got {type(request).__name__}")
    return tagged_command(request.session, op)


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
