"""The operator's requests to one member (status, membership, snapshots, locks, metrics).

They are not replicated writes: `StatusRequest`, `SnapshotRequest` and `MetricsRequest`
are answered by the member called; `AddPeerRequest` and `RemovePeerRequest` are checked
and proposed by the leader; `ListLocksRequest` is answered by the leader, the only
replica that knows the waiters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ergo_py.ids import PID, ProcessID

from ._wire import wire_type

__all__ = [
    "AddPeerRequest",
    "ListLocksRequest",
    "LockInfo",
    "MetricsRequest",
    "RemovePeerRequest",
    "SnapshotRequest",
    "StatusRequest",
    "StatusResponse",
]


@wire_type
@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Call request: this member's `StatusResponse`."""


@wire_type
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
    client_url: str = ""  # the member's etcd API ("": it serves none)


@wire_type
@dataclass(frozen=True, slots=True)
class AddPeerRequest:
    peer: ProcessID


@wire_type
@dataclass(frozen=True, slots=True)
class RemovePeerRequest:
    peer: ProcessID


@wire_type
@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Call request: snapshot and compact the log at this member's applied index now."""


@wire_type
@dataclass(frozen=True, slots=True)
class ListLocksRequest:
    """Call request: the leader's `LockInfo` for every held lock."""


@wire_type
@dataclass(frozen=True, slots=True)
class MetricsRequest:
    """Call request: this member's counters and gauges, as a dict (the seed's metric names)."""


@wire_type
@dataclass(frozen=True, slots=True)
class LockInfo:
    key: bytes
    owner: PID
    token: int
    held_for: float
    ttl: float
    waiters: int
