"""etcd-shaped answers: a header naming the revision they were served at, and the keys.

Writes are answered with their own revision (`PutResponse`, `DeleteRangeResponse`;
`CompactResponse` with the store's revision when the compaction applied). A
`RangeResponse` answers a `KVRangeRequest`: the member's applied revision when it
served the read (`header.revision`; a linearizable or read_index read waited until it
had applied everything committed before it), the Raft term and the member, then the
key-values with their revisions and versions, `more` if the range held more than the
limit, and `count`, how many keys the whole range held.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..state import KeyValue, WatchEvent
from ._outcomes import WIRE_ERRORS as _REGISTERED  # KeyValue crosses the wire from here on
from ._wire import wire_type

__all__ = [
    "CompactResponse",
    "DeleteRangeResponse",
    "KeyValue",
    "LeaseGrantResponse",
    "LeaseKeepAliveResponse",
    "LeaseLeasesResponse",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveResponse",
    "PutResponse",
    "RangeResponse",
    "ResponseHeader",
    "TxnResponse",
    "WatchCanceled",
    "WatchCreateResponse",
    "WatchEvent",
    "WatchEvents",
]

assert _REGISTERED
wire_type(WatchEvent)


@wire_type
@dataclass(frozen=True, slots=True)
class ResponseHeader:
    revision: int
    raft_term: int
    member_id: str


@wire_type
@dataclass(frozen=True, slots=True)
class RangeResponse:
    header: ResponseHeader
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@wire_type
@dataclass(frozen=True, slots=True)
class PutResponse:
    """`header.revision` is the put's own revision (also when a retry is answered again)."""

    header: ResponseHeader
    prev_kv: KeyValue | None = None


@wire_type
@dataclass(frozen=True, slots=True)
class DeleteRangeResponse:
    header: ResponseHeader
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


@wire_type
@dataclass(frozen=True, slots=True)
class CompactResponse:
    header: ResponseHeader


@wire_type
@dataclass(frozen=True, slots=True)
class TxnResponse:
    """`header.revision` is the transaction's own revision (the store's, if it changed
    nothing); `succeeded` whether the compares held; one response per operation of the
    branch that ran (the nested ones with the same header)."""

    header: ResponseHeader
    succeeded: bool
    responses: tuple[RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse, ...]


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    header: ResponseHeader
    lease_id: int
    ttl: float


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    """`header.revision` is the revision that deleted the lease's keys (the store's, if none)."""

    header: ResponseHeader


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseKeepAliveResponse:
    header: ResponseHeader
    lease_id: int
    ttl: float


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseTimeToLiveResponse:
    """`ttl`: the seconds left on the leader's clock (-1: no such lease, as etcd says);
    `granted_ttl` the TTL it was granted with; `keys` if asked."""

    header: ResponseHeader
    lease_id: int
    ttl: float
    granted_ttl: float
    keys: tuple[bytes, ...] = ()


@wire_type
@dataclass(frozen=True, slots=True)
class LeaseLeasesResponse:
    header: ResponseHeader
    leases: tuple[int, ...]


@wire_type
@dataclass(frozen=True, slots=True)
class WatchCreateResponse:
    """The watch is registered at the member named in `header`, from `header.revision`'s
    point of view; its events come as `WatchEvents` messages."""

    header: ResponseHeader
    watch_id: int


@wire_type
@dataclass(frozen=True, slots=True)
class WatchEvents:
    """Sent to the watcher: the events of every revision up to `revision` that it has not
    had (whole revisions: one transaction's events arrive together). Empty: a progress
    notification, no event at or below `revision` is still to come."""

    watch_id: int
    revision: int
    events: tuple[WatchEvent, ...]
    member_id: str = ""


@wire_type
@dataclass(frozen=True, slots=True)
class WatchCanceled:
    """The member ended the watch: `reason` says why ("compacted": the history it needed
    is gone, at or below `compact_revision`)."""

    watch_id: int
    reason: str
    compact_revision: int = 0
