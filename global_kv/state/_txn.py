"""The rules of etcd's transactions that need no store: which branches write a key twice,
and whether a compare holds for the keys it found.

One revision holds at most one change per key, so a branch that puts a key twice, or
puts a key a delete-range of it also covers, is refused whole before anything is applied
(etcd's "duplicate key given in txn request"). Nested transactions count with their
parent; the two branches of one nested transaction exclude each other, so they may
write the same key. Deleting a key twice is allowed (the second finds nothing), as in
etcd. The edge checks the same rule so that a client hears it before its request is
proposed; the state machine checks it again so that no log can make it change a key
twice.

Pure: no engine, no clock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from ._commands import Compare, DeleteRange, KVPut, Txn, TxnOp
from ._mvcc import KeyValue
from ._values import decode_value

__all__ = ["compare_holds", "covers", "txn_conflict"]


def covers(key: bytes, range_end: bytes, point: bytes) -> bool:
    """`point` is in etcd's range [key, range_end) (b"": `key` alone, b"\\x00": from `key` on)."""
    if range_end == b"":
        return point == key
    if range_end == b"\x00":
        return point >= key
    return key <= point < range_end


def txn_conflict(txn: Txn) -> str | None:
    """Why `txn` cannot be applied in one revision ("success: ..."), or None."""
    for name, ops in (("success", txn.success), ("failure", txn.failure)):
        key = _written_twice(ops)
        if key is not None:
            return f"{name}: duplicate key given in txn request: {key!r:.80} is written twice"
    return None


# Where a write sits: the nested transactions above it, as (index in its list, branch).
_Path = tuple[tuple[int, bool], ...]


def _written_twice(ops: Sequence[TxnOp]) -> bytes | None:
    """A key that two writes of `ops` that can both run would change, or None."""
    puts: dict[bytes, list[_Path]] = {}
    deletes: list[tuple[bytes, bytes, _Path]] = []

    def walk(ops: Sequence[TxnOp], path: _Path) -> bytes | None:
        for i, op in enumerate(ops):
            if type(op) is KVPut:
                seen = puts.setdefault(op.key, [])
                if any(not _exclusive(path, other) for other in seen):
                    return op.key
                seen.append(path)
            elif type(op) is DeleteRange:
                deletes.append((op.key, op.range_end, path))
            elif type(op) is Txn:
                found = walk(op.success, (*path, (i, True))) or walk(op.failure, (*path, (i, False)))
                if found is not None:
                    return found
        return None

    found = walk(ops, ())
    if found is not None or not deletes or not puts:
        return found
    keys = sorted(puts)
    for low, end, path in deletes:
        first = bisect_left(keys, low)
        last = first + 1 if end == b"" else len(keys) if end == b"\x00" else bisect_left(keys, end)
        for key in keys[first:last]:
            if covers(low, end, key) and any(not _exclusive(path, other) for other in puts[key]):
                return key
    return None


def _exclusive(a: _Path, b: _Path) -> bool:
    """The two writes sit in different branches of one nested transaction."""
    for (index_a, branch_a), (index_b, branch_b) in zip(a, b, strict=False):
        if index_a != index_b:
            return False
        if branch_a != branch_b:
            return True
    return False


def compare_holds(compare: Compare, found: Sequence[KeyValue]) -> bool:
    """etcd's compare over the keys `found` in its range: every one must satisfy it; with
    none, a value compare fails and any other compares the zero key (version 0, ...)."""
    if not found:
        if compare.target == "value":
            return False
        return _holds(compare, KeyValue(compare.key, 0, 0, 0, b"", 0))
    return all(_holds(compare, kv) for kv in found)


def _holds(compare: Compare, kv: KeyValue) -> bool:
    target = compare.target
    have: int | bytes
    if target == "value":
        have = kv.value
    elif target == "version":
        have = kv.version
    elif target == "create":
        have = kv.create_revision
    elif target == "mod":
        have = kv.mod_revision
    else:
        have = kv.lease
    want = decode_value(compare.value) if type(compare.value) is bytes else compare.value
    result = compare.result
    if result == "=":
        return have == want
    if result == "!=":
        return have != want
    if result == "<":
        return have < want  # type: ignore[operator]
    return have > want  # type: ignore[operator]
