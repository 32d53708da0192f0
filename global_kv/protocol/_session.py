"""The session tag every write carries, defined once (Raft dissertation §6.3).

A client numbers its writes (`seq`, from 1) and says which it no longer waits for
(`ack`: every write below it has been answered); the state machine remembers each
session's answers, so a write retried after a timeout or a leader change is applied at
most once and returns its first result. A write without a `client_id` has no session
and is applied every time it commits. The replica's edge checks a tag's bounds; this
module only gives it one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._wire import wire_type

__all__ = ["NO_SESSION", "SessionTag"]


@wire_type
@dataclass(frozen=True, slots=True)
class SessionTag:
    """Who sent a write (`client_id`, None: no session), its number, and the client's ack."""

    client_id: str | None = None
    seq: int = 0
    ack: int = 0


NO_SESSION = SessionTag()
