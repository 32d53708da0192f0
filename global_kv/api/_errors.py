"""Our errors as etcd's gRPC errors: the codes and the exact messages of etcd's
`api/v3rpc/rpctypes`, because etcd clients match on them (clientv3 turns
"etcdserver: mvcc: required revision has been compacted" into ErrCompacted, and a
client retries on Unavailable but not on InvalidArgument)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import ergo_py

from .._errors import (
    Compacted,
    FutureRevision,
    GlobalKVError,
    InvalidRequest,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LockTimeout,
    NotLeader,
    RequestTooLarge,
    StorageFull,
    Unavailable,
)
from ..client import NotElected
from ._grpc import GrpcError, Status

__all__ = ["as_grpc_error", "etcd_call"]

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
LEASE_EXISTS = "etcdserver: lease already exists"
KEY_NOT_FOUND = "etcdserver: key not found"
EMPTY_KEY = "etcdserver: key is not provided"
TOO_LARGE = "etcdserver: request is too large"
DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
NO_SPACE = "etcdserver: mvcc: database space exceeded"
NO_LEADER = "etcdserver: no leader"
TIMEOUT = "etcdserver: request timed out"


def as_grpc_error(exc: BaseException) -> GrpcError:
    """The gRPC error a client of etcd expects for `exc` (ours or a timeout)."""
    if isinstance(exc, GrpcError):
        return exc
    if isinstance(exc, Compacted):
        return GrpcError(Status.OUT_OF_RANGE, COMPACTED)
    if isinstance(exc, FutureRevision):
        return GrpcError(Status.OUT_OF_RANGE, FUTURE_REV)
    if isinstance(exc, LeaseNotFound):
        return GrpcError(Status.NOT_FOUND, LEASE_NOT_FOUND)
    if isinstance(exc, LeaseExists):
        return GrpcError(Status.FAILED_PRECONDITION, LEASE_EXISTS)
    if isinstance(exc, KeyNotFound):
        return GrpcError(Status.INVALID_ARGUMENT, KEY_NOT_FOUND)
    if isinstance(exc, RequestTooLarge):
        if exc.about_the_reply:  # what a gRPC client sees when a reply passes its limit
            return GrpcError(Status.RESOURCE_EXHAUSTED, f"etcdserver: response is too large: {exc.reason}")
        return GrpcError(Status.INVALID_ARGUMENT, TOO_LARGE)
    if isinstance(exc, InvalidRequest):
        if exc.field == "key" and "empty" in exc.reason:
            return GrpcError(Status.INVALID_ARGUMENT, EMPTY_KEY)
        if "twice" in exc.reason:
            return GrpcError(Status.INVALID_ARGUMENT, DUPLICATE_KEY)
        return GrpcError(Status.INVALID_ARGUMENT, f"etcdserver: {exc}")
    if isinstance(exc, StorageFull):
        return GrpcError(Status.RESOURCE_EXHAUSTED, NO_SPACE)
    if isinstance(exc, NotLeader | Unavailable):
        return GrpcError(Status.UNAVAILABLE, NO_LEADER)
    if isinstance(exc, LockTimeout | TimeoutError | ergo_py.CallTimeout):
        return GrpcError(Status.UNAVAILABLE, TIMEOUT)  # etcd's ErrGRPCTimeout is Unavailable
    if isinstance(exc, ergo_py.ErgoError):  # the local replica is restarting, a link is down
        return GrpcError(Status.UNAVAILABLE, NO_LEADER)
    if isinstance(exc, GlobalKVError):
        return GrpcError(Status.UNKNOWN, f"etcdserver: {exc}")
    return GrpcError(Status.INTERNAL, "etcdserver: internal error")


async def etcd_call(make: Callable[[], Awaitable[Any]], *, not_elected: GrpcError | None = None) -> Any:
    """`await make()`, a call into the cluster, with our errors and the runtime's raised as
    etcd's; a recipe's NotElected as `not_elected` (what it means depends on the call)."""
    try:
        return await make()
    except NotElected:
        if not_elected is None:
            raise
        raise not_elected from None
    except (GlobalKVError, ergo_py.ErgoError) as exc:
        raise as_grpc_error(exc) from None
