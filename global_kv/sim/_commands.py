"""How the simulated clients' operations become real `global_kv.state` commands, and back.

The replicas apply committed entries to the real `StateMachine`, so the workloads
propose what a `GlobalActor` would: CBOR commands carrying a client session tag
(client_id, seq, ack) for exactly-once retries. The KV workload's operations stay
tuples of `str` (what the checker's `kv_model` reads); this module maps them to
commands and maps state machine results back to the outputs a history records.

It must never apply anything or keep state.
"""

from __future__ import annotations

from typing import Any

from .._errors import RaftInvariantError
from ..state import (
    CAS,
    CASFailedResult,
    Command,
    Delete,
    Ok,
    Put,
    Result,
    SessionClose,
    SessionExpiredResult,
    encode_command,
    encode_value,
)

__all__ = ["SESSION_GONE", "barrier_command", "kv_command", "kv_output"]

# The output of a write whose session expired before it applied: the state machine did
# not apply it now and cannot say whether an earlier attempt did (an unknown outcome).
SESSION_GONE = object()

_BARRIER = encode_command(Command(None, 0, 0, SessionClose("sim-barrier")))


def kv_command(client_id: str, seq: int, op: tuple[Any, ...]) -> bytes:
    """Entry data for a KV workload write; every earlier request of the session was answered."""
    kind, key = op[0], op[1].encode()
    if kind == "put":
        body: Any = Put(key, encode_value(op[2].encode()))
    elif kind == "delete":
        body = Delete(key)
    elif kind == "cas":
        expected = None if op[2] is None else encode_value(op[2].encode())
        new = None if op[3] is None else encode_value(op[3].encode())
        body = CAS(key, expected, new)
    else:
        raise ValueError(f"not a KV write: {op!r}")
    return encode_command(Command(client_id, seq, seq, body))


def kv_output(op: tuple[Any, ...], result: Result) -> Any:
    """What the history records for `op` answered with `result` (SESSION_GONE: unknown)."""
    kind = op[0]
    if type(result) is Ok:
        return True if kind == "cas" else None
    if kind == "cas" and type(result) is CASFailedResult:
        return False
    if type(result) is SessionExpiredResult:
        return SESSION_GONE
    raise RaftInvariantError(f"{op!r} was answered with {result!r}, which no rule allows")


def barrier_command() -> bytes:
    """A command with no visible effect (closing a session nobody opened), for the drain."""
    return _BARRIER
