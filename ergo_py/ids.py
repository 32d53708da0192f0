"""Identifiers: who a message is for (public and trio-free).

`PID` names one process of one incarnation of a node; `ProcessID` names whatever
process is registered under a name on a node; `Ref` is a unique token (call
references, monitor references, timers). All three are immutable, hashable,
ordered and encodable on the wire, so they can be used as dict keys anywhere and
sent to other nodes.

This module imports nothing but the standard library (no trio, no network), so code
that only names processes (a client protocol, a pure state machine, a simulator) can
import it without the runtime.

`creation` is chosen when a node starts and differs between incarnations, so a PID
kept from before a node restart never matches a process of the new incarnation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PID", "ProcessID", "Ref", "validate_node_name"]

_NODE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+@[A-Za-z0-9_.\-:\[\]]+$")


def validate_node_name(name: str) -> str:
    """Return `name` if it is a valid `name@host`, else raise ValueError saying why."""
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise ValueError(
            f"invalid node name {name!r}: expected 'name@host' "
            "(letters, digits, '_', '-', '.' on both sides of one '@')"
        )
    return name


@dataclass(frozen=True, order=True, slots=True)
class PID:
    """A process of one incarnation (`creation`) of a node."""

    node: str
    id: int
    creation: int

    def __repr__(self) -> str:
        return f"<{self.node}.{self.id}.{self.creation}>"


@dataclass(frozen=True, order=True, slots=True)
class ProcessID:
    """A registered name on a node: resolves to whichever process holds the name."""

    name: str
    node: str

    def __repr__(self) -> str:
        return f"ProcessID({self.name!r}, {self.node!r})"


@dataclass(frozen=True, order=True, slots=True)
class Ref:
    """A reference unique within one incarnation of the node that made it."""

    node: str
    creation: int
    id: int

    def __repr__(self) -> str:
        return f"#Ref<{self.node}.{self.creation}.{self.id}>"
