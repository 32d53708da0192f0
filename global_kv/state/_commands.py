"""The state machine's commands and their compact CBOR form in NORMAL log entries.

A command is an envelope (`Command`: who sent it, its sequence number, what the
client has acknowledged) around one operation (a frozen dataclass below). On the log
it is one CBOR array: `[opcode, client_id, seq, ack, *operation fields]` with a PID as
`[node, id, creation]`, so an entry costs a few bytes beyond its keys and values.
Opcodes are part of the log format: never renumber one; add a new opcode instead.

Every constructor validates its fields, so an invalid command cannot be built, encoded
or decoded. `encode_command` (the proposer's side) also checks compressed values
deeply; `decode_command` (every replica) raises MalformedCommand for anything that
is not exactly a valid command. This module must never apply anything or touch storage.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import cbor2

from ergo_py.ids import PID

from .._errors import MalformedCommand
from ._keys import MAX_SEQ, check_client_id, check_user_key
from ._values import check_stored_value

__all__ = [
    "CAS",
    "CompactHistory",
    "DeleteRange",
    "KVPut",
    "OP_TYPES",
    "BatchDelete",
    "BatchPut",
    "Command",
    "Delete",
    "LockAcquire",
    "LockExpire",
    "LockRefresh",
    "LockRelease",
    "LockReleaseOwner",
    "Op",
    "Put",
    "SessionClose",
    "decode_command",
    "encode_command",
]

_MAX_TTL_MS = (1 << 63) - 1


def _check_int(value: object, what: str, low: int, high: int = MAX_SEQ) -> int:
    if type(value) is not int:  # bool is refused on purpose: True is not a token
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside {low}..{high}")
    return value


def _check_pid(value: object, what: str = "owner") -> PID:
    if type(value) is not PID:
        raise TypeError(f"{what} must be an ergo_py PID, got {type(value).__name__}")
    if type(value.node) is not str or not value.node:
        raise ValueError(f"{what} has no node name")
    _check_int(value.id, f"{what}.id", 0)
    _check_int(value.creation, f"{what}.creation", 0)
    return value


def _check_token(value: object) -> int:
    return _check_int(value, "token", 1)


def _check_ttl(value: object) -> int:
    return _check_int(value, "ttl_ms", 0, _MAX_TTL_MS)


@dataclass(frozen=True, slots=True)
class Put:
    """Set `key` to `value` (a stored value: see encode_value)."""

    key: bytes
    value: bytes

    def __post_init__(self) -> None:
        check_user_key(self.key)
        check_stored_value(self.value)


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove `key` (removing an absent key succeeds)."""

    key: bytes

    def __post_init__(self) -> None:
        check_user_key(self.key)


@dataclass(frozen=True, slots=True)
class CAS:
    """Set `key` to `new` (None: delete) only if its decoded value equals the decoded
    `expected` (None: the key must be absent). Both are stored values."""

    key: bytes
    expected: bytes | None
    new: bytes | None

    def __post_init__(self) -> None:
        check_user_key(self.key)
        if self.expected is not None:
            check_stored_value(self.expected, "expected")
        if self.new is not None:
            check_stored_value(self.new, "new")


@dataclass(frozen=True, slots=True)
class BatchPut:
    """Set every (key, stored value) in `items`, atomically; a later duplicate key wins.

    Accepts a mapping or any iterable of pairs; keeps them as a tuple of tuples.
    """

    items: tuple[tuple[bytes, bytes], ...]

    def __post_init__(self) -> None:
        source: Any = self.items
        if isinstance(source, Mapping):
            source = source.items()
        if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
            raise TypeError(f"items must be pairs of (key, value), got {type(source).__name__}")
        pairs: list[tuple[bytes, bytes]] = []
        for pair in source:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"each item must be a (key, value) pair, got {pair!r:.60}")
            pairs.append((check_user_key(pair[0]), check_stored_value(pair[1])))
        object.__setattr__(self, "items", tuple(pairs))


@dataclass(frozen=True, slots=True)
class BatchDelete:
    """Remove every key in `keys`, atomically."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        source: Any = self.keys
        if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
            raise TypeError(f"keys must be an iterable of bytes keys, got {type(source).__name__}")
        object.__setattr__(self, "keys", tuple(check_user_key(k) for k in source))


@dataclass(frozen=True, slots=True)
class LockAcquire:
    """Grant lock `key` to `owner` if it is free; the fencing token is this entry's index.

    `ttl_ms` 0 means no expiry; the leader times TTLs and proposes LockExpire.
    """

    key: bytes
    owner: PID
    ttl_ms: int = 0

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_pid(self.owner)
        _check_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class LockRelease:
    """Release lock `key`, only if `token` is the one holding it."""

    key: bytes
    token: int

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_token(self.token)


@dataclass(frozen=True, slots=True)
class LockRefresh:
    """Set a new `ttl_ms` on lock `key`, only if `token` is the one holding it."""

    key: bytes
    token: int
    ttl_ms: int

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_token(self.token)
        _check_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class LockReleaseOwner:
    """`owner` died (or its node was lost): release every lock it holds."""

    owner: PID

    def __post_init__(self) -> None:
        _check_pid(self.owner)


@dataclass(frozen=True, slots=True)
class LockExpire:
    """The leader's TTL timer for (`key`, `token`) fired: release only if that token
    still holds the lock (a new grant since then wins).

    `refreshed_index`, when not 0, is the lock's `refreshed_index` the timer was armed
    from: if a refresh was applied since, the lock is kept (LockHeldResult), so an
    expiry racing a refresh through the log never drops a freshly renewed hold.
    """

    key: bytes
    token: int
    refreshed_index: int = 0

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_token(self.token)
        _check_int(self.refreshed_index, "refreshed_index", 0)


@dataclass(frozen=True, slots=True)
class SessionClose:
    """Drop the session of `client_id` and its cached results."""

    client_id: str

    def __post_init__(self) -> None:
        check_client_id(self.client_id)


def _check_flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise TypeError(f"{what} must be a bool, got {type(value).__name__}")
    return value


def _check_range_end(value: object) -> bytes:
    """etcd's range_end: b"" (the key alone), b"\\x00" (every key from it on) or a key."""
    if type(value) is not bytes:
        raise TypeError(f"range_end must be bytes, got {type(value).__name__}")
    if value not in (b"", b"\x00"):
        check_user_key(value, "range_end")
    return value


@dataclass(frozen=True, slots=True)
class KVPut:
    """etcd's Put: set `key` to `value` (a stored value), answering with the revision, and
    the previous key-value if `prev_kv`. `ignore_value` keeps the current value (the key
    must exist), `ignore_lease` the current lease. `lease` must be 0 until leases exist."""

    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False

    def __post_init__(self) -> None:
        check_user_key(self.key)
        if self.ignore_value:
            if self.value != b"":
                raise ValueError("ignore_value takes no value")
        else:
            check_stored_value(self.value)
        _check_int(self.lease, "lease", 0, 0)
        for name in ("prev_kv", "ignore_value", "ignore_lease"):
            _check_flag(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class DeleteRange:
    """etcd's DeleteRange: delete every key in [key, range_end) (see `_check_range_end`), in
    one revision if any existed; with `prev_kv`, answer the deleted key-values."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_range_end(self.range_end)
        _check_flag(self.prev_kv, "prev_kv")


@dataclass(frozen=True, slots=True)
class CompactHistory:
    """Drop the history at or below `revision` (etcd's Compact): reads below it fail with
    Compacted from then on; each key keeps its latest change at or below it."""

    revision: int

    def __post_init__(self) -> None:
        _check_int(self.revision, "revision", 1)


Op: TypeAlias = (
    Put
    | Delete
    | CAS
    | BatchPut
    | BatchDelete
    | LockAcquire
    | LockRelease
    | LockRefresh
    | LockReleaseOwner
    | LockExpire
    | SessionClose
    | CompactHistory
    | KVPut
    | DeleteRange
)

OP_TYPES: tuple[type, ...] = (
    Put,
    Delete,
    CAS,
    BatchPut,
    BatchDelete,
    LockAcquire,
    LockRelease,
    LockRefresh,
    LockReleaseOwner,
    LockExpire,
    SessionClose,
    CompactHistory,
    KVPut,
    DeleteRange,
)


@dataclass(frozen=True, slots=True)
class Command:
    """One operation and its exactly-once envelope (Raft dissertation §6.3).

    `client_id` None: an internal command (TTL expiry, owner release), never
    deduplicated; `seq` and `ack` are then carried but unused. Otherwise `seq` (from 1)
    numbers the client's requests and `ack` says the client has received the result of
    every request below it (so 0 <= ack <= seq): results below `ack` are forgotten.
    """

    client_id: str | None
    seq: int
    ack: int
    op: Op

    def __post_init__(self) -> None:
        if self.client_id is not None:
            check_client_id(self.client_id)
            _check_int(self.seq, "seq", 1)
            _check_int(self.ack, "ack", 0, self.seq)
        else:
            _check_int(self.seq, "seq", 0)
            _check_int(self.ack, "ack", 0)
        if type(self.op) not in _OPCODES:
            names = ", ".join(t.__name__ for t in OP_TYPES)
            raise TypeError(f"op must be one of {names}, got {type(self.op).__name__}")


# Opcodes are log format: never renumber.
_PUT, _DELETE, _CAS, _BATCH_PUT, _BATCH_DELETE = 1, 2, 3, 4, 5
_LOCK_ACQUIRE, _LOCK_RELEASE, _LOCK_REFRESH, _LOCK_RELEASE_OWNER, _LOCK_EXPIRE = 6, 7, 8, 9, 10
_SESSION_CLOSE = 11
_COMPACT_HISTORY = 12
_KV_PUT, _DELETE_RANGE = 13, 14

_OPCODES: dict[type, int] = {
    Put: _PUT,
    Delete: _DELETE,
    CAS: _CAS,
    BatchPut: _BATCH_PUT,
    BatchDelete: _BATCH_DELETE,
    LockAcquire: _LOCK_ACQUIRE,
    LockRelease: _LOCK_RELEASE,
    LockRefresh: _LOCK_REFRESH,
    LockReleaseOwner: _LOCK_RELEASE_OWNER,
    LockExpire: _LOCK_EXPIRE,
    SessionClose: _SESSION_CLOSE,
    CompactHistory: _COMPACT_HISTORY,
    KVPut: _KV_PUT,
    DeleteRange: _DELETE_RANGE,
}


def _pid_fields(pid: PID) -> list[Any]:
    return [pid.node, pid.id, pid.creation]


def _op_fields(op: Op) -> list[Any]:
    if isinstance(op, Put):
        return [op.key, op.value]
    if isinstance(op, (Delete,)):
        return [op.key]
    if isinstance(op, CAS):
        return [op.key, op.expected, op.new]
    if isinstance(op, BatchPut):
        return [[list(pair) for pair in op.items]]
    if isinstance(op, BatchDelete):
        return [list(op.keys)]
    if isinstance(op, LockAcquire):
        return [op.key, _pid_fields(op.owner), op.ttl_ms]
    if isinstance(op, LockRelease):
        return [op.key, op.token]
    if isinstance(op, LockExpire):
        return [op.key, op.token, op.refreshed_index]
    if isinstance(op, LockRefresh):
        return [op.key, op.token, op.ttl_ms]
    if isinstance(op, LockReleaseOwner):
        return [_pid_fields(op.owner)]
    if isinstance(op, CompactHistory):
        return [op.revision]
    if isinstance(op, KVPut):
        return [op.key, op.value, op.lease, op.prev_kv, op.ignore_value, op.ignore_lease]
    if isinstance(op, DeleteRange):
        return [op.key, op.range_end, op.prev_kv]
    return [op.client_id]  # SessionClose


def encode_command(cmd: Command) -> bytes:
    """The entry data for `cmd`. The proposer's gate: compressed values are checked to
    decompress, so a damaged value never enters the log."""
    if type(cmd) is not Command:
        raise TypeError(f"encode_command takes a Command, got {type(cmd).__name__}")
    op = cmd.op
    for what, value in _values_of(op):
        check_stored_value(value, what, deep=True)
    return cbor2.dumps([_OPCODES[type(op)], cmd.client_id, cmd.seq, cmd.ack, *_op_fields(op)])


def _values_of(op: Op) -> list[tuple[str, bytes]]:
    if isinstance(op, Put) or isinstance(op, KVPut) and not op.ignore_value:
        return [("value", op.value)]
    if isinstance(op, CAS):
        return [(w, v) for w, v in (("expected", op.expected), ("new", op.new)) if v is not None]
    if isinstance(op, BatchPut):
        return [("value", v) for _, v in op.items]
    return []


def _pid(raw: Any) -> PID:
    if type(raw) is not list or len(raw) != 3:
        raise ValueError(f"a PID is [node, id, creation], got {raw!r:.60}")
    return PID(*raw)


def _build_op(code: Any, fields: list[Any]) -> Op:
    def arity(n: int) -> None:
        if len(fields) != n:
            raise ValueError(f"opcode {code} takes {n} fields, got {len(fields)}")

    if code == _PUT:
        arity(2)
        return Put(fields[0], fields[1])
    if code == _DELETE:
        arity(1)
        return Delete(fields[0])
    if code == _CAS:
        arity(3)
        return CAS(fields[0], fields[1], fields[2])
    if code == _BATCH_PUT:
        arity(1)
        if type(fields[0]) is not list:
            raise ValueError("batch put items must be an array")
        return BatchPut(tuple(tuple(p) if type(p) is list else p for p in fields[0]))
    if code == _BATCH_DELETE:
        arity(1)
        if type(fields[0]) is not list:
            raise ValueError("batch delete keys must be an array")
        return BatchDelete(tuple(fields[0]))
    if code == _LOCK_ACQUIRE:
        arity(3)
        return LockAcquire(fields[0], _pid(fields[1]), fields[2])
    if code == _LOCK_RELEASE:
        arity(2)
        return LockRelease(fields[0], fields[1])
    if code == _LOCK_REFRESH:
        arity(3)
        return LockRefresh(fields[0], fields[1], fields[2])
    if code == _LOCK_RELEASE_OWNER:
        arity(1)
        return LockReleaseOwner(_pid(fields[0]))
    if code == _LOCK_EXPIRE:
        arity(3)
        return LockExpire(fields[0], fields[1], fields[2])
    if code == _SESSION_CLOSE:
        arity(1)
        return SessionClose(fields[0])
    if code == _COMPACT_HISTORY:
        arity(1)
        return CompactHistory(fields[0])
    if code == _KV_PUT:
        arity(6)
        return KVPut(*fields)
    if code == _DELETE_RANGE:
        arity(3)
        return DeleteRange(*fields)
    raise ValueError(f"unknown opcode {code!r}")


def decode_command(data: bytes) -> Command:
    """The command in entry data; MalformedCommand if it is anything but exactly one."""
    if type(data) is not bytes:
        raise MalformedCommand(f"entry data must be bytes, got {type(data).__name__}")
    try:
        stream = io.BytesIO(data)
        raw = cbor2.CBORDecoder(stream).decode()
        trailing = len(data) - stream.tell()
    except Exception as exc:  # cbor2 raises several types (and RecursionError) on garbage
        raise MalformedCommand(f"not CBOR ({type(exc).__name__}: {exc})") from exc
    if trailing:
        raise MalformedCommand(f"{trailing} bytes of trailing data after the command")
    if type(raw) is not list or len(raw) < 4:
        raise MalformedCommand(f"expected [opcode, client_id, seq, ack, ...], got {raw!r:.80}")
    code, client_id, seq, ack, *fields = raw
    if type(code) is not int:
        raise MalformedCommand(f"opcode must be an int, got {code!r:.40}")
    try:
        return Command(client_id, seq, ack, _build_op(code, fields))
    except (TypeError, ValueError) as exc:
        raise MalformedCommand(f"invalid command (opcode {code}): {exc}") from exc
