"""The client protocol of the Global application (the seed's messages), registered for the wire.

A client `call`s any member's `global` process with one of the requests below. Writes
carry the client's session tag (client_id, seq, ack) for exactly-once application;
reads carry a consistency level ("" = the server's default). Replies are the value
itself; failures are raised in the caller as the named exceptions registered here
(NotLeader, CASFailed, LockHeld, ...), so they cross nodes as themselves.

A follower forwards a request to the leader as `Forwarded(caller, ref, request,
hops)`, and the leader answers the caller directly (no double hop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ergo_py import PID, ProcessID, Ref
from ergo_py.net import register_type

from .. import _errors
from ..state import RESULT_TYPES

__all__ = [
    "RequestGet",
    "RequestRange",
    "RequestPrefix",
    "RequestPut",
    "RequestDelete",
    "RequestCAS",
    "RequestBatchPut",
    "RequestBatchDelete",
    "LockRequest",
    "UnlockRequest",
    "RefreshRequest",
    "Forwarded",
    "Relayed",
    "RequestStatus",
    "StatusResponse",
    "CmdAddPeer",
    "CmdRemovePeer",
    "CmdSnapshot",
    "CmdListLocks",
    "CmdMetrics",
    "LockInfo",
    "READ_REQUESTS",
    "WRITE_REQUESTS",
]


def _wire(name: str) -> Any:
    return register_type(name=f"global_kv.{name}")


# -- reads ---------------------------------------------------------------------------------
@_wire("RequestGet")
@dataclass(frozen=True, slots=True)
class RequestGet:
    key: bytes
    consistency: str = ""


@_wire("RequestRange")
@dataclass(frozen=True, slots=True)
class RequestRange:
    start: bytes | None
    end: bytes | None
    limit: int = 0
    consistency: str = ""


@_wire("RequestPrefix")
@dataclass(frozen=True, slots=True)
class RequestPrefix:
    prefix: bytes
    limit: int = 0
    consistency: str = ""


# -- writes (all carry a session tag) -----------------------------------------------------------
@_wire("RequestPut")
@dataclass(frozen=True, slots=True)
class RequestPut:
    key: bytes
    value: bytes
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("RequestDelete")
@dataclass(frozen=True, slots=True)
class RequestDelete:
    key: bytes
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("RequestCAS")
@dataclass(frozen=True, slots=True)
class RequestCAS:
    key: bytes
    old: bytes | None
    new: bytes | None
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("RequestBatchPut")
@dataclass(frozen=True, slots=True)
class RequestBatchPut:
    items: tuple[tuple[bytes, bytes], ...]
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("RequestBatchDelete")
@dataclass(frozen=True, slots=True)
class RequestBatchDelete:
    keys: tuple[bytes, ...]
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("LockRequest")
@dataclass(frozen=True, slots=True)
class LockRequest:
    """Acquire `key` for `owner`; `ttl` and `timeout` in seconds (timeout 0: try once)."""

    key: bytes
    owner: PID
    ttl: float = 0.0
    timeout: float = 0.0
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("UnlockRequest")
@dataclass(frozen=True, slots=True)
class UnlockRequest:
    key: bytes
    token: int
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("RefreshRequest")
@dataclass(frozen=True, slots=True)
class RefreshRequest:
    key: bytes
    token: int
    ttl: float
    client_id: str | None = None
    seq: int = 0
    ack: int = 0


@_wire("Forwarded")
@dataclass(frozen=True, slots=True)
class Forwarded:
    caller: PID
    ref: Ref
    request: Any
    hops: int = 1


@_wire("Relayed")
@dataclass(frozen=True, slots=True)
class Relayed:
    """The leader's answer to a forwarded request whose caller it cannot reach (a client
    node without a listener): the follower that forwarded it passes it on."""

    caller: PID
    ref: Ref
    ok: bool
    value: Any


# -- operations ------------------------------------------------------------------------------
@_wire("RequestStatus")
@dataclass(frozen=True, slots=True)
class RequestStatus:
    pass


@_wire("StatusResponse")
@dataclass(frozen=True, slots=True)
class StatusResponse:
    node_id: PID
    is_leader: bool
    leader: ProcessID | None
    term: int
    commit_index: int
    last_applied: int
    peers: tuple[ProcessID, ...]
    lock_count: int
    storage_size: int
    has_quorum: bool
    commit_lag: int
    storage_ok: bool


@_wire("CmdAddPeer")
@dataclass(frozen=True, slots=True)
class CmdAddPeer:
    peer: ProcessID


@_wire("CmdRemovePeer")
@dataclass(frozen=True, slots=True)
class CmdRemovePeer:
    peer: ProcessID


@_wire("CmdSnapshot")
@dataclass(frozen=True, slots=True)
class CmdSnapshot:
    pass


@_wire("CmdListLocks")
@dataclass(frozen=True, slots=True)
class CmdListLocks:
    pass


@_wire("CmdMetrics")
@dataclass(frozen=True, slots=True)
class CmdMetrics:
    """Call request: this member's counters and gauges, as a dict (the seed's metric names)."""


@_wire("LockInfo")
@dataclass(frozen=True, slots=True)
class LockInfo:
    key: bytes
    owner: PID
    token: int
    held_for: float
    ttl: float
    waiters: int


READ_REQUESTS = (RequestGet, RequestRange, RequestPrefix)
WRITE_REQUESTS = (
    RequestPut,
    RequestDelete,
    RequestCAS,
    RequestBatchPut,
    RequestBatchDelete,
    LockRequest,
    UnlockRequest,
    RefreshRequest,
)

# Errors that cross to clients as themselves: the attributes are the constructor's arguments.
register_type(_errors.NotLeader, name="global_kv.NotLeader", fields=("leader_hint",))
register_type(_errors.CASFailed, name="global_kv.CASFailed", fields=("key", "current"))
register_type(_errors.LockHeld, name="global_kv.LockHeld", fields=("key", "holder", "token"))
register_type(_errors.LockNotHeld, name="global_kv.LockNotHeld", fields=("key",))
register_type(_errors.StaleToken, name="global_kv.StaleToken", fields=("key", "token", "current_token"))
register_type(_errors.SessionExpired, name="global_kv.SessionExpired", fields=("client_id", "seq"))
register_type(_errors.StorageFull, name="global_kv.StorageFull", fields=("path", "detail"))
for _cls in RESULT_TYPES:
    register_type(_cls, name=f"global_kv.state.{_cls.__name__}")
register_type(_errors.LockTimeout, name="global_kv.LockTimeout", fields=("key", "timeout"))
register_type(_errors.TooManyWaiters, name="global_kv.TooManyWaiters", fields=("key", "limit"))
register_type(_errors.ConfChangeRejected, name="global_kv.ConfChangeRejected", fields=("change", "reason"))
register_type(_errors.TransferRejected, name="global_kv.TransferRejected", fields=("peer", "reason"))
register_type(_errors.InvalidRequest, name="global_kv.InvalidRequest", fields=("field", "reason"))
register_type(_errors.RequestTooLarge, name="global_kv.RequestTooLarge", fields=("field", "reason"))
register_type(_errors.RequestFailed, name="global_kv.RequestFailed", fields=("detail",))
