"""How a request travels between members on its caller's behalf.

A follower forwards a request to the leader as `Forwarded(caller, ref, request, hops)`,
and the leader answers the caller directly (no double hop). When the leader cannot
reach the caller (a client node without a listener), it sends the answer back as
`Relayed` to the follower that forwarded it, which passes it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ergo_py.ids import PID, Ref

from ._wire import wire_type

__all__ = ["Forwarded", "Relayed"]


@wire_type
@dataclass(frozen=True, slots=True)
class Forwarded:
    caller: PID
    ref: Ref
    request: Any
    hops: int = 1


@wire_type
@dataclass(frozen=True, slots=True)
class Relayed:
    """The leader's answer to a forwarded request whose caller it cannot reach."""

    caller: PID
    ref: Ref
    ok: bool
    value: Any
