"""Building etcd transactions: compares and operations for `GlobalClient.txn`.

    from global_kv.client import ops
    await client.txn(
        compare=[ops.value("cfg/mode") == b"a", ops.version("cfg/lock") == 0],
        success=[ops.put("cfg/mode", b"b"), ops.get("cfg/", prefix=True)],
        failure=[ops.get("cfg/mode")],
    )

A target (`value`, `version`, `create`, `mod`, `lease`) compared with ==, !=, < or >
is a `Compare`; over a range (`range_end=`, or `prefix=True`) every key in it must
satisfy it, and over no key a value compare fails while the others compare with 0, as
etcd has it. Keys are str (UTF-8) or bytes.
"""

from __future__ import annotations

from typing import Any

from ..protocol import Compare, KVDeleteRangeRequest, KVPutRequest, KVRangeRequest, TxnRequest, prefix_range_end
from ._keys import as_key as _key

__all__ = ["Target", "create", "delete", "get", "lease", "mod", "put", "txn", "value", "version"]


def _end(key: bytes, range_end: str | bytes, prefix: bool) -> bytes:
    if prefix:
        if range_end:
            raise ValueError("give range_end or prefix=True, not both")
        return prefix_range_end(key)
    return _key(range_end)


class Target:
    """What of a key (or of every key in a range) a compare looks at."""

    __slots__ = ("_end", "_key", "_target")

    def __init__(self, target: str, key: str | bytes, range_end: str | bytes = b"", prefix: bool = False) -> None:
        self._target = target
        self._key = _key(key)
        self._end = _end(self._key, range_end, prefix)

    def _compare(self, result: str, other: Any) -> Compare:
        if self._target == "value":
            other = _key(other) if isinstance(other, str) else other
        return Compare(self._key, self._target, result, other, self._end)

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("=", other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: object) -> Compare:
        return self._compare("<", other)

    def __gt__(self, other: object) -> Compare:
        return self._compare(">", other)

    __hash__ = None  # type: ignore[assignment]


def value(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False) -> Target:
    return Target("value", key, range_end, prefix)


def version(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False) -> Target:
    return Target("version", key, range_end, prefix)


def create(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False) -> Target:
    return Target("create", key, range_end, prefix)


def mod(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False) -> Target:
    return Target("mod", key, range_end, prefix)


def lease(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False) -> Target:
    return Target("lease", key, range_end, prefix)


def put(
    key: str | bytes, data: bytes, *, lease: int = 0, prev_kv: bool = False, ignore_value: bool = False
) -> KVPutRequest:
    """etcd's Put inside a transaction (answered by a PutResponse in its place)."""
    if type(data) is not bytes:
        raise TypeError(f"values are bytes, got {type(data).__name__}")
    return KVPutRequest(_key(key), data, lease, prev_kv, ignore_value, False)


def delete(
    key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False, prev_kv: bool = False
) -> KVDeleteRangeRequest:
    k = _key(key)
    return KVDeleteRangeRequest(k, _end(k, range_end, prefix), prev_kv)


def get(key: str | bytes, range_end: str | bytes = b"", *, prefix: bool = False, **options: Any) -> KVRangeRequest:
    """etcd's Range inside a transaction; `options` as `GlobalClient.range_kv` takes them
    (revision, limit, sort_order, sort_target, keys_only, count_only, min/max_*_revision)."""
    k = _key(key)
    return KVRangeRequest(k, _end(k, range_end, prefix), **options)


def txn(compare: Any = (), success: Any = (), failure: Any = ()) -> TxnRequest:
    """A nested transaction."""
    return TxnRequest(tuple(compare), tuple(success), tuple(failure))
