"""How the simulated KV clients' operations become protocol requests, and answers outputs.

The simulator drives the production replica (`global_kv.replica.GlobalReplica`), so its
clients send what `GlobalClient` sends: protocol requests carrying a session tag
(client_id, seq, ack) for exactly-once retries. The workload's operations stay tuples
of `str` (what the checker's `kv_model` reads); this module maps them to requests and
maps the replica's answers back to the outputs a history records. It must never apply
anything or keep state.
"""

from __future__ import annotations

from typing import Any

from .._errors import CASFailed, RaftInvariantError, SessionExpired
from ..protocol import CASRequest, DeleteRequest, GetRequest, PutRequest, SessionTag
from ..state import Command, SessionClose, encode_command

__all__ = ["SESSION_GONE", "barrier_command", "kv_output", "kv_request"]

# The output of a write whose session expired before it applied: the state machine did
# not apply it now and cannot say whether an earlier attempt did (an unknown outcome).
SESSION_GONE = object()

_BARRIER = encode_command(Command(None, 0, 0, SessionClose("sim-barrier")))


def kv_request(client_id: str, seq: int, op: tuple[Any, ...], consistency: str = "") -> Any:
    """The request for a KV workload operation; every earlier request of the session was
    answered (ack = seq)."""
    kind, key = op[0], op[1].encode()
    if kind == "get":
        return GetRequest(key, consistency)
    session = SessionTag(client_id, seq, seq)
    if kind == "put":
        return PutRequest(key, op[2].encode(), session)
    if kind == "delete":
        return DeleteRequest(key, session)
    if kind == "cas":
        expected = None if op[2] is None else op[2].encode()
        new = None if op[3] is None else op[3].encode()
        return CASRequest(key, expected, new, session)
    raise ValueError(f"not a KV operation: {op!r}")


def kv_output(op: tuple[Any, ...], ok: bool, value: Any) -> Any:
    """What the history records for `op` answered with (`ok`, `value`) (SESSION_GONE:
    unknown). A NotLeader is not an outcome: the client retries."""
    kind = op[0]
    if ok:
        if kind == "get":
            return None if value is None else value.decode()
        return True if kind == "cas" else None
    if kind == "cas" and type(value) is CASFailed:
        return False
    if type(value) is SessionExpired:
        return SESSION_GONE
    raise RaftInvariantError(f"{op!r} was answered with {value!r}, which no rule allows")


def barrier_command() -> bytes:
    """A command with no visible effect (closing a session nobody opened), for the drain."""
    return _BARRIER
