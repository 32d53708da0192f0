"""System messages and termination reasons.

Reasons are plain values so they can cross the wire: the strings `NORMAL`,
`SHUTDOWN`, `KILL`, `NOPROC`, `NOCONNECTION`, or a `Panic` carrying the text of the
exception that ended a process. A process may also stop with any other encodable
value of its own choosing; anything but `NORMAL` (and `SHUTDOWN` for links, as in
Erlang's supervisors) is abnormal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .ids import PID, ProcessID

__all__ = [
    "NORMAL",
    "SHUTDOWN",
    "KILL",
    "NOPROC",
    "NOCONNECTION",
    "Panic",
    "is_normal",
    "MessageDownPID",
    "MessageDownProcessID",
    "MessageDownNode",
    "MessageExitPID",
]

NORMAL = "normal"
SHUTDOWN = "shutdown"
KILL = "kill"
NOPROC = "noproc"
NOCONNECTION = "noconnection"


@dataclass(frozen=True, slots=True)
class Panic:
    """The reason of a process that raised: the exception's type and text, and its traceback."""

    error: str
    traceback: str = ""

    def __repr__(self) -> str:
        return f"Panic({self.error})"


def is_normal(reason: Any) -> bool:
    """True for reasons that do not kill linked processes (Erlang: `normal`)."""
    return reason == NORMAL


@dataclass(frozen=True, slots=True)
class MessageDownPID:
    """A monitored process ended (or never existed: reason NOPROC)."""

    pid: PID
    reason: Any


@dataclass(frozen=True, slots=True)
class MessageDownProcessID:
    """The process registered under a monitored name ended, or the name was free."""

    process_id: ProcessID
    reason: Any


@dataclass(frozen=True, slots=True)
class MessageDownNode:
    """The link to a monitored node was lost (or could not be made)."""

    name: str


@dataclass(frozen=True, slots=True)
class MessageExitPID:
    """A linked process ended; delivered instead of dying when `trap_exit` is set."""

    pid: PID
    reason: Any
