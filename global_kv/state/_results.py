"""What applying a command produced: small frozen values with plain fields.

Results cross the wire (the leader answers the client with one) and are cached in
client sessions, so their fields are plain data (bytes, int, str, tuples, PID) that
any CBOR codec can carry; `RESULT_TYPES` lists them for registration with the
network codec. A failure is a value, not an exception: the state machine must go on
applying; the shell (or client) turns it into the matching GlobalKVError with
`to_exception()` / `raise_for_result()`.

This module must never decide anything: it only describes outcomes and stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import cbor2

from ergo_py.ids import PID

from .._errors import (
    CASFailed,
    Compacted,
    FutureRevision,
    GlobalKVError,
    InvalidRequest,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LockHeld,
    LockNotHeld,
    RequestTooLarge,
    SessionExpired,
    StaleToken,
    StorageCorrupted,
)
from ._mvcc import KeyValue, RangeResult

__all__ = [
    "RESULT_TYPES",
    "Applied",
    "CASFailedResult",
    "Granted",
    "LockHeldResult",
    "LockNotHeldResult",
    "Ok",
    "Released",
    "Result",
    "SessionExpiredResult",
    "StaleTokenResult",
    "CompactedResult",
    "FutureRevisionResult",
    "PutResult",
    "DeleteResult",
    "KeyNotFoundResult",
    "LeaseExistsResult",
    "LeaseGrantedResult",
    "LeaseNotFoundResult",
    "LeaseRevokedResult",
    "TxnRefusedResult",
    "TxnResult",
    "decode_result",
    "encode_result",
    "raise_for_result",
]


@dataclass(frozen=True, slots=True)
class Ok:
    """The write took effect (put, delete, CAS, batches, session close)."""

    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Granted:
    """Lock `key` is held with fencing `token` (acquire), or its TTL was renewed (refresh)."""

    key: bytes
    token: int
    ttl_ms: int
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Released:
    """These (key, token) holds ended: release, expiry, or owner release (maybe none).

    The leader grants each key to its next waiter.
    """

    locks: tuple[tuple[bytes, int], ...]
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class CASFailedResult:
    """CAS found `current` (decoded; None: absent), not the expected value."""

    key: bytes
    current: bytes | None
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return CASFailed(self.key, self.current)


@dataclass(frozen=True, slots=True)
class LockHeldResult:
    """Acquire found the lock held by `holder` with `token` (the owner itself included:
    locks are not re-entrant)."""

    key: bytes
    holder: PID
    token: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return LockHeld(self.key, self.holder, self.token)


@dataclass(frozen=True, slots=True)
class LockNotHeldResult:
    """Release / refresh / expire of a lock nobody holds."""

    key: bytes
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return LockNotHeld(self.key)


@dataclass(frozen=True, slots=True)
class StaleTokenResult:
    """Release / refresh / expire with `token`, but `current_token` holds the lock."""

    key: bytes
    token: int
    current_token: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return StaleToken(self.key, self.token, self.current_token)


@dataclass(frozen=True, slots=True)
class SessionExpiredResult:
    """The session of `client_id` is gone (or `seq` was acknowledged and forgotten):
    the request was not applied now and its earlier effect, if any, is unknown."""

    client_id: str
    seq: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return SessionExpired(self.client_id, self.seq)


@dataclass(frozen=True, slots=True)
class PutResult:
    """A KVPut applied at `revision`; `prev_kv` the key before it, if asked and it existed."""

    revision: int
    prev_kv: KeyValue | None = None
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A DeleteRange: `deleted` keys, at `revision` (the store's, if none); `prev_kvs` them, if asked."""

    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class KeyNotFoundResult:
    """A KVPut with ignore_value of a key that does not exist."""

    key: bytes
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return KeyNotFound(self.key)


@dataclass(frozen=True, slots=True)
class CompactedResult:
    """The revision asked for is at or below the compacted one (`compact_revision`)."""

    compact_revision: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return Compacted(self.compact_revision)


@dataclass(frozen=True, slots=True)
class FutureRevisionResult:
    """The revision asked for is above the store's (`current_revision`)."""

    revision: int
    current_revision: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return FutureRevision(self.revision, self.current_revision)


@dataclass(frozen=True, slots=True)
class TxnResult:
    """A Txn applied at `revision` (the store's, if it changed nothing): whether every
    compare held, and one response per operation of the branch that ran (RangeResult,
    PutResult, DeleteResult or a nested TxnResult), in order."""

    revision: int
    succeeded: bool
    responses: tuple[TxnOpResult, ...]
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class TxnRefusedResult:
    """A Txn refused whole, nothing applied: a branch writes a key twice (etcd's
    "duplicate key given in txn request"), or its ranges and prev_kvs would answer more
    than `MAX_RESULT_BYTES` (`too_large`); also a DeleteRange whose prev_kvs would (field
    "prev_kv"). `field` is the part at fault."""

    field: str
    reason: str
    too_large: bool = False
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return (RequestTooLarge if self.too_large else InvalidRequest)(self.field, self.reason)


@dataclass(frozen=True, slots=True)
class LeaseGrantedResult:
    """Lease `lease_id` lives with `ttl_ms` from this entry (a grant or a keep-alive)."""

    lease_id: int
    ttl_ms: int
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class LeaseRevokedResult:
    """The lease ended (revoked, expired, or its owner died), its `deleted` keys deleted at
    `revision` (the store's, if it had none)."""

    lease_id: int
    revision: int
    deleted: int
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class LeaseNotFoundResult:
    lease_id: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return LeaseNotFound(self.lease_id)


@dataclass(frozen=True, slots=True)
class LeaseExistsResult:
    lease_id: int
    ok: ClassVar[bool] = False

    def to_exception(self) -> GlobalKVError:
        return LeaseExists(self.lease_id)


TxnOpResult: TypeAlias = "RangeResult | PutResult | DeleteResult | TxnResult"


Result: TypeAlias = (
    Ok
    | Granted
    | Released
    | CASFailedResult
    | LockHeldResult
    | LockNotHeldResult
    | StaleTokenResult
    | SessionExpiredResult
    | CompactedResult
    | FutureRevisionResult
    | PutResult
    | DeleteResult
    | KeyNotFoundResult
    | TxnResult
    | TxnRefusedResult
    | LeaseGrantedResult
    | LeaseRevokedResult
    | LeaseNotFoundResult
    | LeaseExistsResult
)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of the NORMAL entry at `index`, for the request (`client_id`, `seq`)."""

    index: int
    client_id: str | None
    seq: int
    result: Result


RESULT_TYPES: tuple[type, ...] = (
    KeyValue,  # first: the results below carry it
    RangeResult,
    Ok,
    Granted,
    Released,
    CASFailedResult,
    LockHeldResult,
    LockNotHeldResult,
    StaleTokenResult,
    SessionExpiredResult,
    CompactedResult,
    FutureRevisionResult,
    PutResult,
    DeleteResult,
    KeyNotFoundResult,
    TxnResult,
    TxnRefusedResult,
    LeaseGrantedResult,
    LeaseRevokedResult,
    LeaseNotFoundResult,
    LeaseExistsResult,
    Applied,
)


def raise_for_result(result: Result) -> Result:
    """`result` if it is a success, else raise the GlobalKVError it describes."""
    if result.ok:
        return result
    raise result.to_exception()  # type: ignore[union-attr]


# Stored form (cached results in sessions): [code, *fields], PID as [node, id, creation].
# Codes are storage format: never renumber.
_CODES: dict[type, int] = {
    Ok: 0,
    Granted: 1,
    Released: 2,
    CASFailedResult: 3,
    LockHeldResult: 4,
    LockNotHeldResult: 5,
    StaleTokenResult: 6,
    SessionExpiredResult: 7,
    CompactedResult: 8,
    FutureRevisionResult: 9,
    PutResult: 10,
    DeleteResult: 11,
    KeyNotFoundResult: 12,
    TxnResult: 13,
    TxnRefusedResult: 14,
    LeaseGrantedResult: 16,
    LeaseRevokedResult: 17,
    LeaseNotFoundResult: 18,
    LeaseExistsResult: 19,
}
_RANGE = 15  # a RangeResult, inside a TxnResult only


def _kv_fields(kv: KeyValue | None) -> list[Any] | None:
    if kv is None:
        return None
    return [kv.key, kv.create_revision, kv.mod_revision, kv.version, kv.value, kv.lease]


def _kv(fields: list[Any] | None) -> KeyValue | None:
    return None if fields is None else KeyValue(*fields)


def encode_result(result: Result) -> bytes:
    """The stored form of `result` (compact CBOR)."""
    return cbor2.dumps(_result_fields(result))


def _result_fields(result: Result | RangeResult) -> list[Any]:
    if isinstance(result, RangeResult):
        return [_RANGE, [_kv_fields(kv) for kv in result.kvs], result.more, result.count]
    code = _CODES[type(result)]
    if isinstance(result, Ok):
        fields: list[Any] = []
    elif isinstance(result, Granted):
        fields = [result.key, result.token, result.ttl_ms]
    elif isinstance(result, Released):
        fields = [[list(pair) for pair in result.locks]]
    elif isinstance(result, CASFailedResult):
        fields = [result.key, result.current]
    elif isinstance(result, LockHeldResult):
        h = result.holder
        fields = [result.key, [h.node, h.id, h.creation], result.token]
    elif isinstance(result, LockNotHeldResult):
        fields = [result.key]
    elif isinstance(result, StaleTokenResult):
        fields = [result.key, result.token, result.current_token]
    elif isinstance(result, CompactedResult):
        fields = [result.compact_revision]
    elif isinstance(result, FutureRevisionResult):
        fields = [result.revision, result.current_revision]
    elif isinstance(result, PutResult):
        fields = [result.revision, _kv_fields(result.prev_kv)]
    elif isinstance(result, DeleteResult):
        fields = [result.revision, result.deleted, [_kv_fields(kv) for kv in result.prev_kvs]]
    elif isinstance(result, KeyNotFoundResult):
        fields = [result.key]
    elif isinstance(result, TxnResult):
        fields = [result.revision, result.succeeded, [_result_fields(r) for r in result.responses]]
    elif isinstance(result, TxnRefusedResult):
        fields = [result.field, result.reason, result.too_large]
    elif isinstance(result, LeaseGrantedResult):
        fields = [result.lease_id, result.ttl_ms]
    elif isinstance(result, LeaseRevokedResult):
        fields = [result.lease_id, result.revision, result.deleted]
    elif isinstance(result, (LeaseNotFoundResult, LeaseExistsResult)):
        fields = [result.lease_id]
    else:
        fields = [result.client_id, result.seq]
    return [code, *fields]


def decode_result(data: bytes) -> Result:
    """The result in a stored form; StorageCorrupted if it is not one."""
    try:
        result = _decoded(cbor2.loads(data))
        if isinstance(result, RangeResult):
            raise ValueError("a range result outside a txn result")
    except Exception as exc:
        raise StorageCorrupted("state session", None, f"undecodable cached result: {exc}") from exc
    return result


def _decoded(raw: Any) -> Any:
    code, *f = raw
    result: Any
    if code == 0 and not f:
        result = Ok()
    elif code == 1:
        result = Granted(*f)
    elif code == 2:
        (pairs,) = f
        result = Released(tuple((k, t) for k, t in pairs))
    elif code == 3:
        result = CASFailedResult(*f)
    elif code == 4:
        key, (node, pid_id, creation), token = f
        result = LockHeldResult(key, PID(node, pid_id, creation), token)
    elif code == 5:
        result = LockNotHeldResult(*f)
    elif code == 6:
        result = StaleTokenResult(*f)
    elif code == 7:
        result = SessionExpiredResult(*f)
    elif code == 8:
        result = CompactedResult(*f)
    elif code == 9:
        result = FutureRevisionResult(*f)
    elif code == 10:
        revision, prev = f
        result = PutResult(revision, _kv(prev))
    elif code == 11:
        revision, deleted, prevs = f
        result = DeleteResult(revision, deleted, tuple(_kv(kv) for kv in prevs))  # type: ignore[misc]
    elif code == 12:
        result = KeyNotFoundResult(*f)
    elif code == 13:
        revision, succeeded, responses = f
        result = TxnResult(revision, succeeded, tuple(_decoded(r) for r in responses))
    elif code == 14:
        result = TxnRefusedResult(*f)
    elif code == 16:
        result = LeaseGrantedResult(*f)
    elif code == 17:
        result = LeaseRevokedResult(*f)
    elif code == 18:
        result = LeaseNotFoundResult(*f)
    elif code == 19:
        result = LeaseExistsResult(*f)
    elif code == _RANGE:
        kvs, more, count = f
        result = RangeResult(tuple(_kv(kv) for kv in kvs), more, count)  # type: ignore[misc]
    else:
        raise ValueError(f"unknown result code {code!r}")
    return result
