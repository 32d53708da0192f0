"""Values the Raft core shares with storage: log entries, hard state, snapshot metadata.

These are the records that must survive a crash. They live apart from the core's
messages so that `global_kv.storage` can persist them without importing the core.
Pure data: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ConfState", "Entry", "EntryType", "HardState", "SnapshotMeta"]

NodeId = str


class EntryType(enum.IntEnum):
    """What an entry carries. Stored as an int, so values never change meaning."""

    NORMAL = 0  # application data (a state-machine command), opaque bytes
    NOOP = 1  # appended by a new leader (Raft §8); applies as nothing
    CONF_CHANGE = 2  # membership change; `data` is the encoded change


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `index` is 1-based; index 0 / term 0 is the empty log."""

    index: int
    term: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """Raft's persistent per-server state (Figure 2) plus the commit index."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership as of some log index."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: everything up to and including `index` (of `term`)."""

    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)
