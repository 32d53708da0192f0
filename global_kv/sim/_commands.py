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

from .._errors import RaftInvariantError, SessionExpired
from ..protocol import (
    Compare,
    DeleteRequest,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    PutRequest,
    SessionTag,
    TxnRequest,
    TxnResponse,
)
from ..state import Command, SessionClose, encode_command

__all__ = ["SESSION_GONE", "barrier_command", "kv_output", "kv_request"]

# The output of a write whose session expired before it applied: the state machine did
# not apply it now and cannot say whether an earlier attempt did (an unknown outcome).
SESSION_GONE = object()

_BARRIER = encode_command(Command(None, 0, 0, SessionClose("sim-barrier")))


def kv_request(client_id: str, seq: int, op: tuple[Any, ...], consistency: str = "") -> Any:
    """The request for a KV workload operation; every earlier request of the session was
    answered (ack = seq)."""
    kind = op[0]
    if kind == "get":
        return GetRequest(op[1].encode(), consistency)
    session = SessionTag(client_id, seq, seq)
    if kind == "put":
        return PutRequest(op[1].encode(), op[2].encode(), session)
    if kind == "delete":
        return DeleteRequest(op[1].encode(), session)
    if kind == "cas":  # as GlobalClient.cas: a transaction
        change = ("delete", op[1]) if op[3] is None else ("put", op[1], op[3])
        return _txn((((op[1], op[2]),), (change,), (("get", op[1]),)), session)
    if kind == "txn":
        return _txn(op[2:], session)
    raise ValueError(f"not a KV operation: {op!r}")


def _txn(parts: tuple[Any, ...], session: SessionTag) -> TxnRequest:
    """The request for a workload transaction (compares, success, failure): a compare is
    (key, expected value), None meaning absent (etcd: version 0)."""
    compares, success, failure = parts
    return TxnRequest(
        tuple(
            Compare(k.encode(), "version", "=", 0) if v is None else Compare(k.encode(), "value", "=", v.encode())
            for k, v in compares
        ),
        tuple(_txn_op(o) for o in success),
        tuple(_txn_op(o) for o in failure),
        session,
    )


def _txn_op(op: tuple[Any, ...]) -> Any:
    key = op[1].encode()
    if op[0] == "put":
        return KVPutRequest(key, op[2].encode())
    if op[0] == "delete":
        return KVDeleteRangeRequest(key)
    return KVRangeRequest(key)


def kv_output(op: tuple[Any, ...], ok: bool, value: Any) -> Any:
    """What the history records for `op` answered with (`ok`, `value`) (SESSION_GONE:
    unknown). A NotLeader is not an outcome: the client retries."""
    kind = op[0]
    if ok:
        if kind == "get":
            return None if value is None else value.decode()
        if kind in ("cas", "txn") and type(value) is TxnResponse:
            if kind == "cas":
                return value.succeeded
            reads = tuple(r.kvs[0].value.decode() if r.kvs else None for r in value.responses if hasattr(r, "kvs"))
            return value.succeeded, reads
        if kind in ("put", "delete") and value is None:
            return None
    if type(value) is SessionExpired:
        return SESSION_GONE
    raise RaftInvariantError(f"{op!r} was answered with {value!r}, which no rule allows")


def barrier_command() -> bytes:
    """A command with no visible effect (closing a session nobody opened), for the drain."""
    return _BARRIER
