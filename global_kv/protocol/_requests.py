"""The KV and lock requests a client `call`s a member's `global` process with.

Reads carry a consistency level ("" = the server's default); writes carry the client's
`SessionTag`. Replies are the value itself; a failure is raised in the caller as the
named exception (see `_outcomes`). These are plain wire records: they hold what the
client sent, unchecked, because a peer's CBOR can put anything in any field; the
replica's edge (`global_kv.replica.check_request`) checks them before anything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ergo_py.ids import PID

from ._session import NO_SESSION, SessionTag
from ._wire import wire_type


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range_end for every key that starts with `prefix` (b"\\x00": every key)."""
    end = prefix.rstrip(b"\xff")
    return end[:-1] + bytes((end[-1] + 1,)) if end else b"\x00"


__all__ = [
    "KV_WRITE_REQUESTS",
    "LOCK_REQUESTS",
    "READ_REQUESTS",
    "WRITE_REQUESTS",
    "Compare",
    "WATCH_FILTERS",
    "WatchAck",
    "WatchCancelRequest",
    "WatchCreateRequest",
    "LeaseGrantRequest",
    "LeaseKeepAliveRequest",
    "LeaseLeasesRequest",
    "LeaseRevokeRequest",
    "LeaseTimeToLiveRequest",
    "prefix_range_end",
    "DeleteRequest",
    "GetRequest",
    "CompactRequest",
    "KVDeleteRangeRequest",
    "KVPutRequest",
    "KVRangeRequest",
    "KVWriteRequest",
    "LockRequest",
    "PrefixRequest",
    "PutRequest",
    "RangeRequest",
    "RefreshRequest",
    "TxnRequest",
    "TxnRequestOp",
    "UnlockRequest",
]


# -- reads ---------------------------------------------------------------------------------
@wire_type
@dataclass(frozen=True, slots=True)
class GetRequest:
    key: bytes
    consistency: str = ""


@wire_type
@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Pairs with start <= key < end (None: unbounded), at most `limit` (0: no limit)."""

    start: bytes | None
    end: bytes | None
    limit: int = 0
    consistency: str = ""


@wire_type
@dataclass(frozen=True, slots=True)
class KVRangeRequest:
    """etcd's Range: keys in [key, range_end) (b"": `key` alone; b"\\x00": every key from
    it on) as they were at `revision` (0: now), at most `limit` (0: all); sorted ("none",
    "ascend", "descend" by "key", "version", "create", "mod", "value"), filtered by
    revisions (0: no bound) and trimmed (`keys_only`, `count_only`) as etcd does."""

    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    consistency: str = ""
    sort_order: str = "none"
    sort_target: str = "key"
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@wire_type
@dataclass(frozen=True, slots=True)
class PrefixRequest:
    prefix: bytes
    limit: int = 0
    consistency: str = ""


# -- KV writes ---------------------------------------------------------------------------------
@wire_type
@dataclass(frozen=True, slots=True)
class PutRequest:
    key: bytes
    value: bytes
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class DeleteRequest:
    key: bytes
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class KVPutRequest:
    """etcd's Put: answered with a `PutResponse` (the revision, and the previous key-value
    if `prev_kv`). `ignore_value` keeps the current value (send b""), `ignore_lease` the
    current lease; `lease` (0: none) attaches the key to a lease."""

    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class KVDeleteRangeRequest:
    """etcd's DeleteRange over [key, range_end) (as `KVRangeRequest`), in one revision."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class CompactRequest:
    """etcd's Compact: forget the history at or below `revision` (through the log)."""

    revision: int
    session: SessionTag = NO_SESSION


# -- leases ------------------------------------------------------------------------------------
@wire_type
@dataclass(frozen=True, slots=True)
class LeaseGrantRequest:
    """etcd's LeaseGrant: a lease of `ttl` seconds, id `lease_id` (0: one chosen for you);
    with an `owner` process, it also ends when that process dies."""

    ttl: float
    lease_id: int = 0
    owner: PID | None = None
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseRevokeRequest:
    """etcd's LeaseRevoke: end the lease now; its keys are deleted in one revision."""

    lease_id: int
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseKeepAliveRequest:
    """One keep-alive of etcd's LeaseKeepAlive: the lease's TTL starts again."""

    lease_id: int
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseTimeToLiveRequest:
    """etcd's LeaseTimeToLive, answered by the leader from its own deadline."""

    lease_id: int
    keys: bool = False


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseLeasesRequest:
    """etcd's LeaseLeases: every lease's id."""


# -- watches -----------------------------------------------------------------------------------
WATCH_FILTERS = ("noput", "nodelete")


@wire_type
@dataclass(frozen=True, slots=True)
class WatchCreateRequest:
    """etcd's watch create: the changes of [key, range_end) (as `KVRangeRequest`) after
    `start_revision` - 1 (0: from now), sent to `watcher` as `WatchEvents` messages in
    revision order; `filters` leave out "noput" or "nodelete" events; `prev_kv` adds each
    key's previous value; `progress_notify` sends an empty `WatchEvents` when idle. Any
    member serves it from its applied state; answered with a `WatchCreateResponse`."""

    key: bytes
    watcher: PID
    range_end: bytes = b""
    start_revision: int = 0
    prev_kv: bool = False
    filters: tuple[str, ...] = ()
    progress_notify: bool = False


@wire_type
@dataclass(frozen=True, slots=True)
class WatchCancelRequest:
    watch_id: int
    watcher: PID


@wire_type
@dataclass(frozen=True, slots=True)
class WatchAck:
    """Sent (not called) by a watcher: it has taken the events up to `revision`, so the
    member may send more (at most a few batches are ever unacknowledged)."""

    watch_id: int
    revision: int


# -- lock writes -------------------------------------------------------------------------------
@wire_type
@dataclass(frozen=True, slots=True)
class LockRequest:
    """Acquire `key` for `owner`; `ttl` and `timeout` in seconds (timeout 0: try once)."""

    key: bytes
    owner: PID
    ttl: float = 0.0
    timeout: float = 0.0
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class UnlockRequest:
    key: bytes
    token: int
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class RefreshRequest:
    key: bytes
    token: int
    ttl: float
    session: SessionTag = NO_SESSION


@wire_type
@dataclass(frozen=True, slots=True)
class Compare:
    """etcd's Compare: `target` ("version", "create", "mod", "value", "lease") of `key`
    (or of every key in [key, range_end)) `result` ("=", "!=", "<", ">") `value` (bytes
    for a value compare, else an int)."""

    key: bytes
    target: str
    result: str
    value: int | bytes
    range_end: bytes = b""


@wire_type
@dataclass(frozen=True, slots=True)
class TxnRequest:
    """etcd's Txn: if every `compare` holds, the `success`
    operations, else the `failure` ones, in one revision; each a KVRangeRequest,
    KVPutRequest, KVDeleteRangeRequest or a nested TxnRequest (their own sessions and
    consistency levels unused). Answered with a `TxnResponse`."""

    compare: tuple[Compare, ...] = ()
    success: tuple[KVRangeRequest | KVPutRequest | KVDeleteRangeRequest | TxnRequest, ...] = ()
    failure: tuple[KVRangeRequest | KVPutRequest | KVDeleteRangeRequest | TxnRequest, ...] = ()
    session: SessionTag = NO_SESSION


TxnRequestOp = KVRangeRequest | KVPutRequest | KVDeleteRangeRequest | TxnRequest

KVWriteRequest = (
    PutRequest
    | DeleteRequest
    | KVPutRequest
    | KVDeleteRangeRequest
    | CompactRequest
    | TxnRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
    | LeaseKeepAliveRequest
)

READ_REQUESTS = (GetRequest, RangeRequest, PrefixRequest, KVRangeRequest)
KV_WRITE_REQUESTS = (
    PutRequest,
    DeleteRequest,
    KVPutRequest,
    KVDeleteRangeRequest,
    CompactRequest,
    TxnRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    LeaseKeepAliveRequest,
)
LOCK_REQUESTS = (LockRequest, UnlockRequest, RefreshRequest)
WRITE_REQUESTS = KV_WRITE_REQUESTS + LOCK_REQUESTS


def health_read(consistency: str = "linearizable") -> KVRangeRequest:
    """The read a health check makes through a replica, as etcd's /health does (one key,
    keys only): it completes only if the replica can serve at `consistency`."""
    return KVRangeRequest(b"health", limit=1, consistency=consistency, keys_only=True)
