"""The edge of a replica: every client request is checked here before it reaches the core.

A request arrives as whatever a peer's CBOR decoded to: a registered request type,
but with fields of any type and size. `check_request` refuses anything the replica
could not serve (a key that is not 1..510 bytes, a negative limit, an unknown
consistency level, a malformed session tag, a TTL that is not a finite number, a
write over `max_request_bytes`, ...) with `InvalidRequest(field, reason)`, so that
nothing malformed is proposed, queued for a read round, or handed to the state
machine. It is pure: no I/O, no clock, no replica state.

It must never accept what the state machine or the storage engines would refuse
later: a request it passes can only fail with a named outcome (NotLeader,
CASFailed, LockHeld, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ergo_py.ids import PID, ProcessID, Ref

from .._errors import InvalidRequest, RequestTooLarge
from ..protocol import (
    WATCH_FILTERS,
    AddPeerRequest,
    CompactRequest,
    Compare,
    DeleteRequest,
    Forwarded,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
    ListLocksRequest,
    LockRequest,
    MetricsRequest,
    PrefixRequest,
    PutRequest,
    RangeRequest,
    RefreshRequest,
    RemovePeerRequest,
    SessionTag,
    SnapshotRequest,
    StatusRequest,
    TxnRequest,
    UnlockRequest,
    WatchCancelRequest,
    WatchCreateRequest,
)
from ..state import (
    COMPARE_RESULTS,
    COMPARE_TARGETS,
    MAX_CLIENT_ID_BYTES,
    MAX_LEASE_ID,
    MAX_SEQ,
    MAX_TXN_DEPTH,
    MAX_USER_KEY,
    SORT_ORDERS,
    SORT_TARGETS,
    DeleteRange,
    KVPut,
    Txn,
    TxnOp,
    TxnRange,
    txn_conflict,
)

__all__ = ["READ_CONSISTENCIES", "Limits", "check_request", "check_forwarded"]

READ_CONSISTENCIES = ("linearizable", "read_index", "follower", "lease")

# Seconds a lock may be asked to live or wait for: a year. Longer is a mistake, not a plan.
MAX_LOCK_SECONDS = 365 * 24 * 3600.0
# A forwarded request crosses at most this many followers (GlobalActor forwards once).
MAX_HOPS = 4
_ANY = 1 << 62  # values: any length here; the request's total is checked against the limit


@dataclass(frozen=True, slots=True)
class Limits:
    """The sizes a replica accepts (GlobalConfig's `max_*` fields)."""

    max_request_bytes: int
    max_batch_items: int


def _bytes(value: Any, field: str, *, low: int = 1, high: int = MAX_USER_KEY) -> int:
    if type(value) is not bytes:
        raise InvalidRequest(field, f"must be bytes, got {type(value).__name__}")
    if not low <= len(value) <= high:
        if low == 1 and not value:
            raise InvalidRequest(field, f"is empty; it must be {low}..{high} bytes")
        raise InvalidRequest(field, f"is {len(value):,} bytes; it must be {low}..{high:,} bytes")
    return len(value)


def _int(value: Any, field: str, low: int, high: int = MAX_SEQ) -> int:
    if type(value) is not int:  # bool refused on purpose
        raise InvalidRequest(field, f"must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidRequest(field, f"is {value}; it must be {low}..{high}")
    return value


def _seconds(value: Any, field: str) -> float:
    if type(value) not in (int, float):
        raise InvalidRequest(field, f"must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or not 0 <= value <= MAX_LOCK_SECONDS:
        raise InvalidRequest(field, f"is {value!r}; it must be 0..{MAX_LOCK_SECONDS:.0f} seconds")
    return float(value)


def _consistency(value: Any) -> None:
    if type(value) is not str or (value and value not in READ_CONSISTENCIES):
        raise InvalidRequest("consistency", f"is {value!r}; it must be one of {', '.join(READ_CONSISTENCIES)}")


def _session(request: Any) -> None:
    """The write's SessionTag: no client_id (no session), or 0 <= ack <= seq, seq >= 1."""
    tag = request.session
    if type(tag) is not SessionTag:
        raise InvalidRequest("session", f"must be a SessionTag, got {type(tag).__name__}")
    client_id = tag.client_id
    if client_id is None:
        return
    if type(client_id) is not str:
        raise InvalidRequest("session.client_id", f"must be a str or None, got {type(client_id).__name__}")
    size = len(client_id.encode("utf-8", "surrogatepass"))
    if not 0 < size <= MAX_CLIENT_ID_BYTES:
        raise InvalidRequest("session.client_id", f"is {size} bytes in UTF-8; it must be 1..{MAX_CLIENT_ID_BYTES}")
    seq = _int(tag.seq, "session.seq", 1)
    _int(tag.ack, "session.ack", 0, seq)


def _size(field: str, size: int, limits: Limits) -> None:
    if size > limits.max_request_bytes:
        raise RequestTooLarge(
            field,
            f"the request carries {size:,} bytes, over the {limits.max_request_bytes:,}-byte limit "
            "(GlobalConfig.max_request_bytes); store large objects elsewhere and keep a reference here",
        )


def _check_put(r: PutRequest, limits: Limits) -> None:
    size = _bytes(r.key, "key") + _bytes(r.value, "value", low=0, high=_ANY)
    _size("value", size, limits)
    _session(r)


def _check_range(r: RangeRequest, limits: Limits) -> None:
    if r.start is not None:
        _bytes(r.start, "start", low=0)
    if r.end is not None:
        _bytes(r.end, "end")
    _int(r.limit, "limit", 0)
    _consistency(r.consistency)


def _check_kv_range(r: KVRangeRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _range_end(r.range_end)
    _int(r.revision, "revision", 0)
    _int(r.limit, "limit", 0)
    _consistency(r.consistency)
    _choice(r.sort_order, "sort_order", SORT_ORDERS)
    _choice(r.sort_target, "sort_target", SORT_TARGETS)
    _flag(r.keys_only, "keys_only")
    _flag(r.count_only, "count_only")
    for name in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
        _int(getattr(r, name), name, 0)


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> None:
    if type(value) is not str or value not in choices:
        raise InvalidRequest(field, f"must be one of {', '.join(choices)}; got {value!r:.40}")


def _flag(value: Any, field: str) -> None:
    if type(value) is not bool:
        raise InvalidRequest(field, f"must be a bool, got {type(value).__name__}")


def _range_end(value: Any) -> None:
    if value not in (b"", b"\x00"):
        _bytes(value, "range_end")


def _check_kv_put(r: KVPutRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    size = _bytes(r.value, "value", low=0, high=_ANY)
    for name in ("prev_kv", "ignore_value", "ignore_lease"):
        _flag(getattr(r, name), name)
    if r.ignore_value and size:
        raise InvalidRequest("value", "must be empty with ignore_value (the current value is kept)")
    _int(r.lease, "lease", 0, MAX_LEASE_ID)
    _size("value", len(r.key) + size, limits)
    _session(r)


def _check_kv_delete_range(r: KVDeleteRangeRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _range_end(r.range_end)
    _flag(r.prev_kv, "prev_kv")
    _session(r)


def _check_txn(r: TxnRequest, limits: Limits) -> None:
    """Each part as a request of its own (nested sessions and consistency levels unused),
    at most `MAX_TXN_DEPTH` deep and `max_batch_items` compares and operations in all, the
    keys and values within `max_request_bytes`, and no key written twice by one branch."""
    parts = [0]
    size = _txn_size(r, limits, 1, parts)
    if parts[0] > limits.max_batch_items:
        raise RequestTooLarge(
            "txn", f"has {parts[0]:,} compares and operations; a transaction takes at most {limits.max_batch_items:,}"
        )
    _size("txn", size, limits)
    reason = txn_conflict(_txn_shape(r))
    if reason is not None:
        raise InvalidRequest(reason.split(":", 1)[0], reason)
    _session(r)


def _check_compare(c: Any) -> int:
    """The compare's size in bytes."""
    if type(c) is not Compare:
        raise InvalidRequest("compare", f"takes Compare, got {type(c).__name__}")
    size = _bytes(c.key, "compare.key")
    _range_end(c.range_end)
    _choice(c.target, "compare.target", COMPARE_TARGETS)
    _choice(c.result, "compare.result", COMPARE_RESULTS)
    if c.target == "value":
        return size + _bytes(c.value, "compare.value", low=0, high=_ANY)
    _int(c.value, "compare.value", 0)
    return size


def _txn_size(r: TxnRequest, limits: Limits, depth: int, parts: list[int]) -> int:
    if depth > MAX_TXN_DEPTH:
        raise InvalidRequest("txn", f"transactions nest at most {MAX_TXN_DEPTH} deep")
    size = 0
    for field in ("compare", "success", "failure"):
        items = getattr(r, field)
        if type(items) not in (tuple, list):
            raise InvalidRequest(field, f"must be a sequence, got {type(items).__name__}")
        parts[0] += len(items)
    for c in r.compare:
        size += _check_compare(c)
    for op in (*r.success, *r.failure):
        check = _TXN_CHECKS.get(type(op))
        if check is None:
            names = "KVRangeRequest, KVPutRequest, KVDeleteRangeRequest or TxnRequest"
            raise InvalidRequest("success", f"an operation is a {names}, got {type(op).__name__}")
        if isinstance(op, TxnRequest):
            size += _txn_size(op, limits, depth + 1, parts)
            continue
        check(op, limits)
        size += len(op.key) + len(getattr(op, "value", b""))
    return size


def _txn_shape(r: TxnRequest) -> Txn:
    """The writes of `r` as the state machine sees them (values left out): for the
    duplicate-key rule, which is the state machine's own."""

    def shape(op: Any) -> TxnOp:
        if type(op) is KVPutRequest:
            return KVPut(op.key, b"", ignore_value=True)
        if type(op) is KVDeleteRangeRequest:
            return DeleteRange(op.key, op.range_end)
        if type(op) is TxnRequest:
            return _txn_shape(op)
        return TxnRange(op.key, op.range_end)

    return Txn((), tuple(shape(op) for op in r.success), tuple(shape(op) for op in r.failure))


def _check_lease_grant(r: LeaseGrantRequest, limits: Limits) -> None:
    _seconds(r.ttl, "ttl")
    if r.ttl <= 0:
        raise InvalidRequest("ttl", f"is {r.ttl!r}; a lease lives 0 < ttl <= {MAX_LOCK_SECONDS:.0f} seconds")
    _int(r.lease_id, "lease_id", 0, MAX_LEASE_ID)
    if r.owner is not None:
        _owner_pid(r.owner, "owner")
    _session(r)


def _check_lease_id(r: LeaseRevokeRequest | LeaseKeepAliveRequest | LeaseTimeToLiveRequest, limits: Limits) -> None:
    _int(r.lease_id, "lease_id", 1, MAX_LEASE_ID)
    if isinstance(r, LeaseTimeToLiveRequest):
        _flag(r.keys, "keys")
    else:
        _session(r)


def _owner_pid(owner: Any, field: str) -> None:
    if type(owner) is not PID or type(owner.node) is not str or not owner.node:
        raise InvalidRequest(field, f"must be the PID of the owning process, got {owner!r}")
    _int(owner.id, f"{field}.id", 0)
    _int(owner.creation, f"{field}.creation", 0)


def _check_watch_create(r: WatchCreateRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _range_end(r.range_end)
    _owner_pid(r.watcher, "watcher")
    _int(r.start_revision, "start_revision", 0)
    _flag(r.prev_kv, "prev_kv")
    _flag(r.progress_notify, "progress_notify")
    if type(r.filters) not in (tuple, list) or any(f not in WATCH_FILTERS for f in r.filters):
        raise InvalidRequest("filters", f"must be a sequence of {', '.join(WATCH_FILTERS)}; got {r.filters!r:.60}")


def _check_watch_cancel(r: WatchCancelRequest, limits: Limits) -> None:
    _int(r.watch_id, "watch_id", 1)
    _owner_pid(r.watcher, "watcher")


def _check_compact(r: CompactRequest, limits: Limits) -> None:
    _int(r.revision, "revision", 1)
    _session(r)


def _check_prefix(r: PrefixRequest, limits: Limits) -> None:
    _bytes(r.prefix, "prefix", low=0)
    _int(r.limit, "limit", 0)
    _consistency(r.consistency)


def _check_get(r: GetRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _consistency(r.consistency)


def _check_lock(r: LockRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _owner_pid(r.owner, "owner")
    _seconds(r.ttl, "ttl")
    _seconds(r.timeout, "timeout")
    _session(r)


def _check_unlock(r: UnlockRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _int(r.token, "token", 1)
    _session(r)


def _check_refresh(r: RefreshRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _int(r.token, "token", 1)
    _seconds(r.ttl, "ttl")
    _session(r)


def _check_delete(r: DeleteRequest, limits: Limits) -> None:
    _bytes(r.key, "key")
    _session(r)


def _check_peer(r: AddPeerRequest | RemovePeerRequest, limits: Limits) -> None:
    if type(r.peer) is not ProcessID or type(r.peer.node) is not str or type(r.peer.name) is not str:
        raise InvalidRequest("peer", f"must be a ProcessID('global', 'name@host'), got {r.peer!r}")


def _nothing(r: Any, limits: Limits) -> None:
    return None


_CHECKS: dict[type, Any] = {
    GetRequest: _check_get,
    RangeRequest: _check_range,
    PrefixRequest: _check_prefix,
    KVRangeRequest: _check_kv_range,
    KVPutRequest: _check_kv_put,
    KVDeleteRangeRequest: _check_kv_delete_range,
    CompactRequest: _check_compact,
    TxnRequest: _check_txn,
    LeaseGrantRequest: _check_lease_grant,
    LeaseRevokeRequest: _check_lease_id,
    LeaseKeepAliveRequest: _check_lease_id,
    LeaseTimeToLiveRequest: _check_lease_id,
    LeaseLeasesRequest: _nothing,
    WatchCreateRequest: _check_watch_create,
    WatchCancelRequest: _check_watch_cancel,
    PutRequest: _check_put,
    DeleteRequest: _check_delete,
    LockRequest: _check_lock,
    UnlockRequest: _check_unlock,
    RefreshRequest: _check_refresh,
    AddPeerRequest: _check_peer,
    RemovePeerRequest: _check_peer,
    StatusRequest: _nothing,
    SnapshotRequest: _nothing,
    ListLocksRequest: _nothing,
    MetricsRequest: _nothing,
}


_TXN_CHECKS: dict[type, Any] = {
    KVRangeRequest: _check_kv_range,
    KVPutRequest: _check_kv_put,
    KVDeleteRangeRequest: _check_kv_delete_range,
    TxnRequest: _check_txn,
}


def check_request(request: Any, limits: Limits) -> None:
    """Raise InvalidRequest unless `request` is a client request this replica can serve."""
    check = _CHECKS.get(type(request))
    if check is None:
        raise InvalidRequest("request", f"unknown request type {type(request).__name__}")
    check(request, limits)


def check_forwarded(message: Forwarded) -> None:
    """A follower's envelope: the caller and ref it answers to, and a bounded hop count."""
    if type(message.caller) is not PID or type(message.ref) is not Ref:
        raise InvalidRequest("caller", "a forwarded request needs the caller's PID and call ref")
    _int(message.hops, "hops", 1, MAX_HOPS)
