"""etcd's range options (sort, filters by revision, keys_only, count_only, limit with
`more` and the full `count`), now and at past revisions, against a plain model of what
etcd's `Range` does with them."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from global_kv._errors import RequestTooLarge
from global_kv.state import SORT_ORDERS, SORT_TARGETS, Delete, KeyValue, Put, RangeOptions, StateMachine
from global_kv.storage import MemoryStorage
from tests.state.state_support import Log, v

_FIELD = {"key": "key", "version": "version", "create": "create_revision", "mod": "mod_revision", "value": "value"}


def _etcd(state: list[KeyValue], options: RangeOptions, limit: int) -> tuple[list[KeyValue], bool, int]:
    """What etcd's apply.go Range returns for the keys `state` (in key order)."""
    kvs = [
        kv
        for kv in state
        if not (options.min_mod_revision and kv.mod_revision < options.min_mod_revision)
        and not (options.max_mod_revision and kv.mod_revision > options.max_mod_revision)
        and not (options.min_create_revision and kv.create_revision < options.min_create_revision)
        and not (options.max_create_revision and kv.create_revision > options.max_create_revision)
    ]
    order = options.sort_order
    if order == "none" and options.sort_target != "key":
        order = "ascend"
    if order != "none":
        field = _FIELD[options.sort_target]
        kvs.sort(key=lambda kv: (getattr(kv, field), kv.key), reverse=order == "descend")
    more = bool(limit) and len(kvs) > limit
    if limit:
        kvs = kvs[:limit]
    if options.count_only:
        kvs, more = [], False
    if options.keys_only:
        kvs = [replace(kv, value=b"") for kv in kvs]
    return kvs, more, len(state)


def _store(seed: int) -> tuple[StateMachine, dict[int, list[KeyValue]]]:
    """A store after random puts and deletes, and the model of every revision."""
    rng = random.Random(seed)
    sm, log = StateMachine(MemoryStorage()), Log()
    at: dict[int, list[KeyValue]] = {}
    for _ in range(40):
        key = b"k%d" % rng.randrange(8)
        if rng.random() < 0.8:
            sm.apply([log.cmd(Put(key, v(b"%03d" % rng.randrange(5))))])
        else:
            sm.apply([log.cmd(Delete(key))])
        at[sm.revision] = list(sm.range_kv(b"\x00", b"\x00").kvs)
    return sm, at


def _options(rng: random.Random, top: int) -> RangeOptions:
    bound = lambda: rng.choice([0, 0, rng.randint(1, top)])  # noqa: E731
    return RangeOptions(
        rng.choice(SORT_ORDERS),
        rng.choice(SORT_TARGETS),
        rng.random() < 0.2,
        rng.random() < 0.1,
        bound(),
        bound(),
        bound(),
        bound(),
    )


@pytest.mark.parametrize("seed", range(4))
def test_every_option_does_what_etcds_range_does_now_and_in_the_past(seed: int) -> None:
    sm, at = _store(seed)
    rng = random.Random(100 + seed)
    for _ in range(300):
        revision = rng.choice(sorted(at))
        options, limit = _options(rng, sm.revision), rng.choice([0, 0, 1, 2, 5])
        got = sm.range_kv(b"\x00", b"\x00", revision=revision, limit=limit, options=options)
        kvs, more, count = _etcd(at[revision], options, limit)
        assert (list(got.kvs), got.more, got.count) == (kvs, more, count), (revision, options, limit)


def test_sorting_by_a_target_without_an_order_is_ascending_and_descending_reverses() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    for key, value in ((b"a", b"3"), (b"b", b"1"), (b"c", b"2")):
        sm.apply([log.cmd(Put(key, v(value)))])
    sm.apply([log.cmd(Put(b"a", v(b"0")))])  # now a: version 2, the newest mod

    def keys(**options: object) -> list[bytes]:
        return [kv.key for kv in sm.range_kv(b"\x00", b"\x00", options=RangeOptions(**options)).kvs]  # type: ignore[arg-type]

    assert keys(sort_target="value") == [b"a", b"b", b"c"]
    assert keys(sort_target="mod") == [b"b", b"c", b"a"]
    assert keys(sort_target="create", sort_order="descend") == [b"c", b"b", b"a"]
    assert keys(sort_order="descend") == [b"c", b"b", b"a"]
    assert keys(sort_target="version", sort_order="descend")[0] == b"a"
    assert keys(min_mod_revision=4) == [b"a", b"c"] and keys(max_create_revision=3) == [b"a", b"b"]
    only = sm.range_kv(b"\x00", b"\x00", limit=1, options=RangeOptions(count_only=True))
    assert only.kvs == () and only.count == 3 and not only.more
    first = sm.range_kv(b"\x00", b"\x00", limit=1, options=RangeOptions(keys_only=True, sort_order="descend"))
    assert first.kvs == (KeyValue(b"c", 4, 4, 1, b""),) and first.more and first.count == 3


def test_bad_options_are_refused_and_the_byte_budget_counts_what_is_returned() -> None:
    for bad in ({"sort_order": "up"}, {"sort_target": "size"}, {"keys_only": 1}, {"min_mod_revision": -1}):
        with pytest.raises(ValueError):
            RangeOptions(**bad)  # type: ignore[arg-type]
    sm, log = StateMachine(MemoryStorage()), Log()
    sm.apply([log.cmd(Put(b"k%d" % i, v(b"x" * 100))) for i in range(10)])
    with pytest.raises(RequestTooLarge):
        sm.range_kv(b"\x00", b"\x00", max_bytes=500)
    with pytest.raises(RequestTooLarge):
        sm.range_kv(b"\x00", b"\x00", max_bytes=500, options=RangeOptions(sort_order="descend"))
    assert len(sm.range_kv(b"\x00", b"\x00", max_bytes=500, options=RangeOptions(keys_only=True)).kvs) == 10
    assert len(sm.range_kv(b"\x00", b"\x00", limit=4, max_bytes=500, options=RangeOptions(sort_target="mod")).kvs) == 4
