"""The exceptions of global_kv: one root, named outcomes that carry their data.

Every layer raises from here so that a caller can catch `GlobalKVError` and know
it came from us; foreign errors (plyvel, lmdb, OSError, cbor2) are mapped at the
boundary and chained with `from exc`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "GlobalKVError",
    "NotLeader",
    "RaftInvariantError",
    "StorageError",
    "StorageCorrupted",
    "StorageFull",
    "LeadershipTransferInProgress",
    "ConfChangeRejected",
    "TransferRejected",
    "CompactionRejected",
    "RaftConfigError",
]


class GlobalKVError(Exception):
    """Root of every error global_kv raises."""


class NotLeader(GlobalKVError):
    """This replica is not the leader; `leader_hint` names the one it believes is (or None)."""

    def __init__(self, leader_hint: Any = None, message: str | None = None) -> None:
        self.leader_hint = leader_hint
        super().__init__(
            message
            or (
                f"not the leader; try {leader_hint!r}"
                if leader_hint is not None
                else "not the leader, and no leader is known yet; retry shortly"
            )
        )


class RaftInvariantError(GlobalKVError):
    """A Raft safety invariant broke. Never caught and ignored: the replica must stop."""


class StorageError(GlobalKVError):
    """A storage operation failed (I/O error, full disk, closed engine). Nothing acknowledged is lost."""


class StorageCorrupted(StorageError):
    """A persisted record failed its checksum or is inconsistent; the replica must not start."""

    def __init__(self, path: str, index: int | None, detail: str) -> None:
        self.path = path
        self.index = index
        self.detail = detail
        where = f"{path}" + (f" at index {index}" if index is not None else "")
        super().__init__(
            f"storage corrupted in {where}: {detail}. The node will not start from this data; "
            "restore the data directory from a healthy replica or remove it to rejoin empty"
        )


class StorageFull(StorageError):
    """The disk (or the engine's map) is full: the write failed and changed nothing.

    Everything written before stays durable; free space (or compact) and retry.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"no space left for {path}: {detail}. The write was not applied and nothing "
            "acknowledged is lost; free disk space or compact, then retry"
        )


# --- Raft core outcomes (global_kv.raft) -------------------------------------------


class LeadershipTransferInProgress(NotLeader):
    """The leader is handing leadership to `leader_hint`; proposals are refused meanwhile.

    A subclass of `NotLeader` so a caller that retries on the hinted leader needs no
    special case: the transfer either completes within an election timeout (the hint is
    the new leader) or is abandoned and this node accepts proposals again.
    """

    def __init__(self, leader_hint: Any) -> None:
        super().__init__(
            leader_hint,
            f"leadership is being transferred to {leader_hint!r}; retry there shortly",
        )


class ConfChangeRejected(GlobalKVError):
    """A membership change was refused before anything was proposed; `reason` says why."""

    def __init__(self, change: Any, reason: str) -> None:
        self.change = change
        self.reason = reason
        super().__init__(f"configuration change {change!r} rejected: {reason}")


class TransferRejected(GlobalKVError):
    """A leadership transfer to `peer` cannot start; `reason` says why."""

    def __init__(self, peer: Any, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"cannot transfer leadership to {peer!r}: {reason}")


class CompactionRejected(GlobalKVError):
    """`compact(index, ...)` was refused (already compacted, or beyond what was applied)."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"cannot compact the raft log at index {index}: {reason}")


class RaftConfigError(GlobalKVError, ValueError):
    """A `RaftConfig` value is out of range; the message names the field and the bound."""
