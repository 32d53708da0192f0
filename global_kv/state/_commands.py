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
from ._range import RangeOptions
from ._values import check_stored_value

__all__ = [
    "CAS",
    "COMPARE_RESULTS",
    "COMPARE_TARGETS",
    "Compare",
    "CompactHistory",
    "LeaseExpire",
    "LeaseGrant",
    "LeaseRefresh",
    "LeaseRevoke",
    "Txn",
    "TxnRange",
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
_MAX_LEASE_ID = (1 << 63) - 1  # etcd's lease ids are int64


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
    must exist), `ignore_lease` the current lease; `lease` (0: none) attaches the key to
    that lease, which must exist."""

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
        _check_int(self.lease, "lease", 0, _MAX_LEASE_ID)
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


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """Grant a lease of `ttl_ms` (etcd's LeaseGrant): id `lease_id`, or 0 for one chosen
    from this entry's index; with an `owner`, the lease also ends when that process dies
    (its monitor, as for locks)."""

    lease_id: int
    ttl_ms: int
    owner: PID | None = None

    def __post_init__(self) -> None:
        _check_int(self.lease_id, "lease_id", 0, _MAX_LEASE_ID)
        _check_int(self.ttl_ms, "ttl_ms", 1, _MAX_TTL_MS)
        if self.owner is not None:
            _check_pid(self.owner)


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    """End the lease now and delete its keys, in one revision (etcd's LeaseRevoke)."""

    lease_id: int

    def __post_init__(self) -> None:
        _check_int(self.lease_id, "lease_id", 1, _MAX_LEASE_ID)


@dataclass(frozen=True, slots=True)
class LeaseRefresh:
    """A keep-alive: the lease's TTL starts again from this entry (on every replica)."""

    lease_id: int

    def __post_init__(self) -> None:
        _check_int(self.lease_id, "lease_id", 1, _MAX_LEASE_ID)


@dataclass(frozen=True, slots=True)
class LeaseExpire:
    """The leader's deadline for the lease passed: revoke it, unless it was refreshed
    after `refreshed_index` (a keep-alive racing the expiry through the log wins)."""

    lease_id: int
    refreshed_index: int

    def __post_init__(self) -> None:
        _check_int(self.lease_id, "lease_id", 1, _MAX_LEASE_ID)
        _check_int(self.refreshed_index, "refreshed_index", 1)


COMPARE_TARGETS = ("version", "create", "mod", "value", "lease")
COMPARE_RESULTS = ("=", "!=", "<", ">")
MAX_TXN_DEPTH = 8  # nested transactions, the outermost one included


@dataclass(frozen=True, slots=True)
class Compare:
    """etcd's Compare: `target` of the key (or of every key in [key, range_end), see
    `_check_range_end`) `result` `value`; an int for version / create / mod / lease, a
    stored value (see encode_value) for value, compared decoded, as bytes (as etcd)."""

    key: bytes
    target: str
    result: str
    value: int | bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_range_end(self.range_end)
        if self.target not in COMPARE_TARGETS:
            raise ValueError(f"compare target must be one of {', '.join(COMPARE_TARGETS)}, got {self.target!r:.40}")
        if self.result not in COMPARE_RESULTS:
            raise ValueError(f"compare result must be one of {' '.join(COMPARE_RESULTS)}, got {self.result!r:.40}")
        if self.target == "value":
            if type(self.value) is not bytes:
                raise TypeError(f"a value compare takes a stored value, got {type(self.value).__name__}")
            check_stored_value(self.value, "compare value")
        else:
            _check_int(self.value, f"compare {self.target}", 0)


@dataclass(frozen=True, slots=True)
class TxnRange:
    """etcd's Range inside a transaction: it sees the transaction's earlier writes."""

    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    options: RangeOptions = RangeOptions()

    def __post_init__(self) -> None:
        check_user_key(self.key)
        _check_range_end(self.range_end)
        _check_int(self.revision, "revision", 0)
        _check_int(self.limit, "limit", 0)
        if type(self.options) is not RangeOptions:
            raise TypeError(f"options must be RangeOptions, got {type(self.options).__name__}")


@dataclass(frozen=True, slots=True)
class Txn:
    """etcd's Txn: if every compare holds, the `success` operations, else the `failure`
    ones (each a KVPut, DeleteRange, TxnRange or nested Txn), in one revision. Which
    keys a branch may write twice is decided when it is applied (`_txn.conflict`)."""

    compare: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()

    def __post_init__(self) -> None:
        for name in ("compare", "success", "failure"):
            items = getattr(self, name)
            if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
                raise TypeError(f"txn {name} must be a sequence, got {type(items).__name__}")
            object.__setattr__(self, name, tuple(items))
        for c in self.compare:
            if type(c) is not Compare:
                raise TypeError(f"txn compare takes Compare, got {type(c).__name__}")
        for op in self.success + self.failure:
            if type(op) not in _TXN_OPS:
                raise TypeError(f"a txn operation is a KVPut, DeleteRange, TxnRange or Txn, got {type(op).__name__}")
        if self.depth() > MAX_TXN_DEPTH:
            raise ValueError(f"transactions nest at most {MAX_TXN_DEPTH} deep")

    def depth(self) -> int:
        nested = [op.depth() for op in self.success + self.failure if type(op) is Txn]
        return 1 + max(nested, default=0)

    def size(self) -> int:
        """Compares and operations, nested ones included."""
        return len(self.compare) + sum(op.size() if type(op) is Txn else 1 for op in self.success + self.failure)


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
    | Txn
    | LeaseGrant
    | LeaseRevoke
    | LeaseRefresh
    | LeaseExpire
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
    Txn,
    LeaseGrant,
    LeaseRevoke,
    LeaseRefresh,
    LeaseExpire,
)
TxnOp: TypeAlias = "KVPut | DeleteRange | TxnRange | Txn"
_TXN_OPS = (KVPut, DeleteRange, TxnRange, Txn)


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
_TXN, _TXN_RANGE = 15, 16
_LEASE_GRANT, _LEASE_REVOKE, _LEASE_REFRESH, _LEASE_EXPIRE = 17, 18, 19, 20

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
    Txn: _TXN,
    LeaseGrant: _LEASE_GRANT,
    LeaseRevoke: _LEASE_REVOKE,
    LeaseRefresh: _LEASE_REFRESH,
    LeaseExpire: _LEASE_EXPIRE,
}
_TXN_OPCODES: dict[type, int] = {KVPut: _KV_PUT, DeleteRange: _DELETE_RANGE, TxnRange: _TXN_RANGE, Txn: _TXN}


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
    if isinstance(op, LeaseGrant):
        return [op.lease_id, op.ttl_ms, None if op.owner is None else _pid_fields(op.owner)]
    if isinstance(op, (LeaseRevoke, LeaseRefresh)):
        return [op.lease_id]
    if isinstance(op, LeaseExpire):
        return [op.lease_id, op.refreshed_index]
    if isinstance(op, Txn):
        return [
            [[c.key, c.range_end, c.target, c.result, c.value] for c in op.compare],
            [_txn_op_fields(o) for o in op.success],
            [_txn_op_fields(o) for o in op.failure],
        ]
    return [op.client_id]  # SessionClose


def _txn_op_fields(op: TxnOp) -> list[Any]:
    if isinstance(op, TxnRange):
        o = op.options
        bounds = [o.min_mod_revision, o.max_mod_revision, o.min_create_revision, o.max_create_revision]
        fields = [op.key, op.range_end, op.revision, op.limit, o.sort_order, o.sort_target, o.keys_only, o.count_only]
        return [_TXN_RANGE, *fields, *bounds]
    return [_TXN_OPCODES[type(op)], *_op_fields(op)]


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
    if isinstance(op, Txn):
        compares = [("compare value", c.value) for c in op.compare if type(c.value) is bytes]
        ops = [pair for o in op.success + op.failure if type(o) is not TxnRange for pair in _values_of(o)]  # type: ignore[arg-type]
        return compares + ops
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
    if code == _TXN:
        arity(3)
        return _build_txn(fields, 1)
    if code == _LEASE_GRANT:
        arity(3)
        return LeaseGrant(fields[0], fields[1], None if fields[2] is None else _pid(fields[2]))
    if code == _LEASE_REVOKE:
        arity(1)
        return LeaseRevoke(fields[0])
    if code == _LEASE_REFRESH:
        arity(1)
        return LeaseRefresh(fields[0])
    if code == _LEASE_EXPIRE:
        arity(2)
        return LeaseExpire(fields[0], fields[1])
    raise ValueError(f"unknown opcode {code!r}")


def _build_txn(fields: list[Any], depth: int) -> Txn:
    if depth > MAX_TXN_DEPTH:
        raise ValueError(f"transactions nest at most {MAX_TXN_DEPTH} deep")
    compares, success, failure = fields
    if not all(type(part) is list for part in fields):
        raise ValueError("a txn is [compares, success, failure] arrays")
    for c in compares:
        if type(c) is not list or len(c) != 5:
            raise ValueError("a compare is [key, range_end, target, result, value]")
    return Txn(
        tuple(Compare(c[0], c[2], c[3], c[4], c[1]) for c in compares),
        tuple(_build_txn_op(o, depth) for o in success),
        tuple(_build_txn_op(o, depth) for o in failure),
    )


def _build_txn_op(raw: Any, depth: int) -> TxnOp:
    if type(raw) is not list or not raw:
        raise ValueError("a txn operation is [opcode, *fields]")
    code, *fields = raw
    if code == _TXN_RANGE:
        if len(fields) != 12:
            raise ValueError(f"a txn range takes 12 fields, got {len(fields)}")
        key, range_end, revision, limit, *options = fields
        return TxnRange(key, range_end, revision, limit, RangeOptions(*options))
    if code == _TXN:
        if len(fields) != 3:
            raise ValueError(f"a txn takes 3 fields, got {len(fields)}")
        return _build_txn(fields, depth + 1)
    if code not in (_KV_PUT, _DELETE_RANGE):
        raise ValueError(f"opcode {code!r} is not a txn operation")
    op = _build_op(code, fields)
    assert isinstance(op, (KVPut, DeleteRange))
    return op


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
