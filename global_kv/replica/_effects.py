"""What a replica asks its driver to do, in the order it asks.

A replica never does I/O: each input (a Raft message, a client request, a tick, a
persisted Ready, an owner's DOWN) appends effects to its outbox, and the driver (the
actor shell, or the simulator) takes them with `take_effects()` and carries them out in
order. Raft's own messages and what to persist are not effects: they travel in the
`Ready` the driver takes with `ready()`, because their order against the fsync is the
Ready contract (send `messages`, persist, send `persisted_messages`, then `persisted`).

Callers and refs are opaque here: a PID and a call Ref in the shell, a simulated client
and a request number in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..raft import Entry, Role, SoftState
from ..state import Applied, Op

__all__ = [
    "AppliedEntries",
    "Demonitor",
    "Effect",
    "Forward",
    "MembershipChanged",
    "Monitor",
    "Notify",
    "UnwatchWatcher",
    "WatchWatcher",
    "Proposing",
    "Reply",
    "RoleChanged",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the call `ref` of `caller`: `value` if `ok`, else the error `value`."""

    caller: Any
    ref: Any
    ok: bool
    value: Any


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the request to the leader `leader_id` (a Raft id), which answers `caller` itself.

    The driver answers `NotLeader(None)` instead if it has no link to that leader: the
    request would be lost, and the client is better off retrying elsewhere now."""

    caller: Any
    ref: Any
    request: Any
    hops: int
    leader_id: str


@dataclass(frozen=True, slots=True)
class Monitor:
    """Watch lock owner `owner`; report its DOWN with `owner_down`."""

    owner: Any


@dataclass(frozen=True, slots=True)
class Demonitor:
    owner: Any


@dataclass(frozen=True, slots=True)
class Notify:
    """Send `message` to the process `to` (one way: a watch's events)."""

    to: Any
    message: Any


@dataclass(frozen=True, slots=True)
class WatchWatcher:
    """Watch the watch client `watcher`; report its DOWN with `watcher_down`."""

    watcher: Any


@dataclass(frozen=True, slots=True)
class UnwatchWatcher:
    watcher: Any


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The core's role, leader or term changed (after the Ready that reported it)."""

    soft: SoftState
    was: Role
    previous_leader: str | None


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """A committed configuration change added (`joined`) or removed another member."""

    peer_id: str
    joined: bool


@dataclass(frozen=True, slots=True)
class AppliedEntries:
    """Apply done: `entries` were applied; `results` are the state machine's, by index."""

    entries: tuple[Entry, ...]
    results: tuple[Applied, ...]


@dataclass(frozen=True, slots=True)
class Proposing:
    """The leader's own command (a TTL expiry, an owner's release) is about to be proposed.

    No driver needs to act on it; it is there so that an observer (the simulator's lock
    monitor) can judge each decision when it is made."""

    op: Op
    term: int


Effect = (
    Reply
    | Forward
    | Monitor
    | Demonitor
    | Notify
    | WatchWatcher
    | UnwatchWatcher
    | RoleChanged
    | MembershipChanged
    | AppliedEntries
    | Proposing
)
