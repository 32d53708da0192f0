"""What a range returns of the keys it found: etcd's RangeRequest options, as etcd applies them.

`select` takes the keys of a range in key order (as the store finds them at the asked
revision) and applies, in etcd's order (`etcdserver/apply.go`, `Range`):

1. the revision filters (`min/max_mod_revision`, `min/max_create_revision`; 0: none),
   after which `count` is still the number of keys in the range, as etcd reports it;
2. the sort (by key, version, create, mod or value; a target other than the key with
   no order sorts ascending, as etcd does), ties broken by key;
3. the limit (`more` if keys were left out), then `keys_only` / `count_only`.

Pure: no engine, no clock. The byte budget counts only what is returned.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import RequestTooLarge
from ._mvcc import KeyValue, RangeResult

__all__ = ["SORT_ORDERS", "SORT_TARGETS", "RangeOptions", "key_order", "select", "too_large"]

SORT_ORDERS = ("none", "ascend", "descend")
SORT_TARGETS = ("key", "version", "create", "mod", "value")

_TARGET: dict[str, Callable[[KeyValue], Any]] = {
    "key": lambda kv: kv.key,
    "version": lambda kv: (kv.version, kv.key),
    "create": lambda kv: (kv.create_revision, kv.key),
    "mod": lambda kv: (kv.mod_revision, kv.key),
    "value": lambda kv: (kv.value, kv.key),
}


@dataclass(frozen=True, slots=True)
class RangeOptions:
    """etcd's RangeRequest options beyond the range, revision and limit."""

    sort_order: str = "none"
    sort_target: str = "key"
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0

    def __post_init__(self) -> None:
        if self.sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_order must be one of {SORT_ORDERS}, got {self.sort_order!r}")
        if self.sort_target not in SORT_TARGETS:
            raise ValueError(f"sort_target must be one of {SORT_TARGETS}, got {self.sort_target!r}")
        for name in ("keys_only", "count_only"):
            if type(getattr(self, name)) is not bool:
                raise ValueError(f"{name} must be a bool")
        for name in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    def keeps_all(self) -> bool:
        """No revision filter: every key in range is kept."""
        return not (
            self.min_mod_revision or self.max_mod_revision or self.min_create_revision or self.max_create_revision
        )

    def keeps(self, kv: KeyValue) -> bool:
        return not (
            (self.min_mod_revision and kv.mod_revision < self.min_mod_revision)
            or (self.max_mod_revision and kv.mod_revision > self.max_mod_revision)
            or (self.min_create_revision and kv.create_revision < self.min_create_revision)
            or (self.max_create_revision and kv.create_revision > self.max_create_revision)
        )


PLAIN = RangeOptions()


def select(found: Iterable[KeyValue], options: RangeOptions, limit: int, max_bytes: int | None) -> RangeResult:
    """The answer of a range that found `found` (in key order); see the module docstring."""
    order = options.sort_order
    if order == "none" and options.sort_target != "key":
        order = "ascend"
    if order == "ascend" and options.sort_target == "key":
        order = "none"  # already in key order
    count = 0
    kept: list[KeyValue] = []
    if order == "none":
        left = max_bytes
        for kv in found:
            count += 1
            if options.count_only or (limit and len(kept) > limit) or not options.keeps(kv):
                continue
            if left is not None and not (limit and len(kept) == limit):
                left -= len(kv.key) + (0 if options.keys_only else len(kv.value))
                if left < 0:
                    raise too_large(max_bytes)  # early: a range over everything is never held
            kept.append(kv)  # one past the limit, to know whether there were more
    else:
        key = _TARGET[options.sort_target]
        matching = []
        for kv in found:
            count += 1
            if not options.count_only and options.keeps(kv):
                matching.append(kv)
        if limit:
            pick = heapq.nsmallest if order == "ascend" else heapq.nlargest
            more = len(matching) > limit
            kept = pick(limit + 1 if more else limit, matching, key=key)
        else:
            kept = sorted(matching, key=key, reverse=order == "descend")
    more = bool(limit) and len(kept) > limit
    kvs = kept[:limit] if limit else kept
    if options.keys_only:
        kvs = [KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease) for kv in kvs]
    if max_bytes is not None and sum(len(kv.key) + len(kv.value) for kv in kvs) > max_bytes:
        raise too_large(max_bytes)
    return RangeResult(tuple(kvs), more, count)


def key_order(options: RangeOptions) -> str | None:
    """ "ascend" or "descend" when `select` returns the keys in key order, unfiltered: then
    its answer is the range's first (or last) `limit` keys, `more` when the range holds
    more, and `count` the keys it holds, so it needs no other key than those. None when
    the revision filters or a sort by another target decide which keys come back."""
    if options.sort_target != "key" or not options.keeps_all():
        return None
    return "descend" if options.sort_order == "descend" else "ascend"


def too_large(max_bytes: int | None) -> RequestTooLarge:
    """The error of a range whose keys and values returned pass `max_bytes`."""
    return RequestTooLarge(
        "limit",
        f"the result is over the {max_bytes:,}-byte reply limit (max_response_bytes); "
        "ask for fewer keys with a limit and continue after the last key you got",
    )
