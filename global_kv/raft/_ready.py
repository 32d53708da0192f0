"""What the core hands its caller: the `Ready` batch and the small values inside it.

The core never performs I/O; it collects everything the caller must do into a Ready
(etcd-io/raft's model). The caller handles one Ready in a fixed order:

1. send `messages` (allowed before or while persisting: only a leader produces them);
2. persist: `snapshot` (if any: replace the whole log with it and restore the state
   machine from its data), then `entries` (truncate the stored log from
   `entries[0].index`, then append them), then `hard_state` (if not None). These writes
   must be durable (fsynced), and a crash must never leave `hard_state` persisted
   without the `entries` of the same Ready: write them in one atomic batch, or entries
   first;
3. send `persisted_messages` (votes and acknowledgements that promise durability);
4. apply `committed_entries` in order; serve each of `read_states` once the state
   machine has applied up to its index (possibly in a later Ready);
5. call `advance()`.

Between `ready()` and `advance()` the caller may keep feeding the node (`step`,
`tick`, `propose`, ...), e.g. while a persist is in flight; `has_ready()` stays False
until `advance()`.

This module is pure data; it must never import I/O or a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._log_types import ConfState, Entry, HardState, SnapshotMeta
from ._messages import Message

__all__ = [
    "PeerStatus",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SoftState",
    "Status",
]


class Role(enum.Enum):
    """A replica's role (Raft §5.1, plus the PreVote phase)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the caller reacts to (leadership changes); never persisted."""

    role: Role
    leader: str | None
    term: int


@dataclass(frozen=True, slots=True)
class ReadState:
    """A `read_index(context)` result: reads at `context` are linearizable once applied >= index."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state machine snapshot covering the log up to `meta.index`, and its opaque data."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""


@dataclass(slots=True)
class Ready:
    """One batch of outputs; see the module docstring for the order of handling.

    Treat it as read-only. (Not frozen only because a frozen dataclass costs several
    times more to build, and one is built per Ready cycle on the hot path.)

    soft_state: the new role/leader/term if it changed since the previous Ready.
    hard_state: the new term/vote/commit to persist, or None if unchanged.
    entries: log entries to persist; they may overwrite a suffix of the stored log.
    messages: to send now (a leader's replication traffic: may precede the persist).
    persisted_messages: to send only after `entries`/`hard_state` are durable.
    committed_entries: to apply to the state machine, in order.
    snapshot: a snapshot received from the leader, to persist and restore, or None.
    read_states: ReadIndex results to serve once the state machine reaches them.
    """

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    persisted_messages: tuple[Message, ...]
    committed_entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    read_states: tuple[ReadState, ...]

    def must_sync(self) -> bool:
        """True when this Ready carries something that must be made durable."""
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one follower's replication (for status pages and metrics)."""

    match: int
    next: int
    state: str
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A point-in-time summary of one replica (for operations, not for decisions)."""

    id: str
    role: Role
    term: int
    leader: str | None
    vote: str | None
    commit: int
    applied: int
    last_index: int
    snapshot_index: int
    conf: ConfState
    transferee: str | None
    peers: dict[str, PeerStatus]
    quiesced: bool = False  # RaftConfig.quiesce: idle, no timer running
