"""Current reads of a range: decided on the key index (count, order, filters), reading
only the records returned, with the same answer as a read of the same state at a past
revision (which reads every key in range). The index is there because an LSM engine's
scan steps over every version of a key it has not compacted yet (a lock's or an
election's key, put and deleted all day, made each read of its range O(its history)),
and because counting a range by reading it made a `limit=1` read of many keys cost
what reading all of them does."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from global_kv._errors import RequestTooLarge
from global_kv.state import (
    CompactHistory,
    Compare,
    Delete,
    DeleteRange,
    KVPut,
    Put,
    RangeOptions,
    RangeResult,
    StateMachine,
    Txn,
    TxnRange,
)
from global_kv.storage import StorageEngine
from tests.state.state_support import Log, apply1, v


def _end(rng: random.Random, keys: list[bytes], low: bytes) -> bytes:
    """A range end after `low`: none (the key alone), near it (a few keys), far (hundreds)
    or every key on."""
    roll = rng.random()
    if roll < 0.15:
        return b""
    if roll < 0.25:
        return b"\x00"
    after = [k for k in keys if k > low]
    if not after:
        return b"\x00"
    reach = rng.choice([1, 3, 40, 70, 150, len(after)])
    return after[min(reach, len(after)) - 1]


def _inside(live: list[bytes], low: bytes, end: bytes) -> list[bytes]:
    """The model's keys in etcd's range [low, end)."""
    if end == b"":
        return [low] if low in live else []
    return [k for k in live if low <= k and (end == b"\x00" or k < end)]


def _stop(low: bytes, end: bytes) -> bytes | None:
    """`StateMachine.range`'s end for etcd's range [low, end)."""
    return low + b"\x00" if end == b"" else None if end == b"\x00" else end


@pytest.mark.parametrize("name", ["memory", "leveldb"])
@pytest.mark.parametrize("seed", range(3))
def test_every_current_read_agrees_with_a_model_whatever_the_range_holds(
    engines: Callable[..., StorageEngine], tmp_path: Path, name: str, seed: int
) -> None:
    rng = random.Random(seed)
    where = tmp_path / "db"
    engine = engines(name, where) if name != "memory" else engines(name)
    sm, log = StateMachine(engine), Log()
    keys = [b"k%03d" % i for i in range(220)]
    model: dict[bytes, bytes] = {}
    for step in range(900):
        roll = rng.random()
        if roll < 0.55:
            key = rng.choice(keys)
            model[key] = b"%d" % step
            sm.apply([log.cmd(Put(key, v(model[key])))])
        elif roll < 0.85:  # dead keys with history stay in the index
            key = rng.choice(keys)
            model.pop(key, None)
            sm.apply([log.cmd(Delete(key))])
        elif roll < 0.88:  # forgets fully deleted keys from the index
            sm.apply([log.cmd(CompactHistory(sm.revision))])
        if name != "memory" and step == 450:  # the index is rebuilt from the records
            engine.close()
            engine = engines(name, where)
            sm = StateMachine(engine)
    live = sorted(model)
    for _ in range(120):
        low = rng.choice(keys[:-1])
        end = _end(rng, keys, low)
        inside = _inside(live, low, end)
        limit = rng.choice([0, 1, 5, 100])
        found = sm.range_kv(low, end, limit=limit)
        shown = inside[:limit] if limit else inside
        assert [kv.key for kv in found.kvs] == shown and found.count == len(inside), (low, end, limit)
        assert [kv.value for kv in found.kvs] == [model[k] for k in shown]
        assert sm.range(low, _stop(low, end), limit or None) == [(k, model[k]) for k in shown]
        prefix = low[:3]
        assert sm.prefix_scan(prefix) == [(k, model[k]) for k in live if k.startswith(prefix)]
        # A transaction's compare and range see the same; a delete of the range deletes them.
        txn = Txn(
            (Compare(low, "create", ">", 0, end),),
            (TxnRange(low, end),),
            (TxnRange(low, end, limit=1),),
        )
        answer: Any = apply1(sm, log.cmd(txn))
        assert answer.succeeded == bool(inside)
        assert [kv.key for kv in answer.responses[0].kvs] == (inside if inside else [])
    low = rng.choice(keys[:-1])
    end = _end(rng, keys, low)
    inside = _inside(live, low, end)
    deleted: Any = apply1(sm, log.cmd(DeleteRange(low, end, prev_kv=True)))
    assert [kv.key for kv in deleted.prev_kvs] == inside and deleted.deleted == len(inside)
    assert sm.range_kv(low, end) == RangeResult((), False, 0)


def test_reads_of_a_key_put_and_deleted_many_times_do_not_scan_the_engine(
    engines: Callable[..., StorageEngine],
) -> None:
    engine = engines("leveldb")
    sm, log = StateMachine(engine), Log()
    sm.apply([log.cmd(Put(b"other/%d" % i, v(b"x"))) for i in range(100)])
    lock = b"lock/1/"
    key = lock + b"694d8e"
    for _ in range(300):  # a lock taken and released: each pair two more versions in the LSM
        sm.apply([log.cmd(KVPut(key, v(b""))), log.cmd(DeleteRange(key))])
    sm.apply([log.cmd(KVPut(key, v(b"held")))])

    def scanned(*args: object, **kwargs: object) -> object:
        raise AssertionError("a read of a small range scanned the engine")

    engine.range = scanned  # type: ignore[method-assign]
    assert [kv.key for kv in sm.range_kv(lock, b"lock/10").kvs] == [key]
    assert sm.prefix_scan(lock) == [(key, b"held")]
    first = TxnRange(lock, b"lock/10", limit=1)
    answer: Any = apply1(sm, log.cmd(Txn((Compare(key, "create", "=", 0),), (), (first,))))
    assert not answer.succeeded and answer.responses[0].kvs[0].key == key
    gone: Any = apply1(sm, log.cmd(DeleteRange(key)))
    assert gone.deleted == 1 and sm.range_kv(lock, b"lock/10").count == 0


def _read(sm: StateMachine, low: bytes, end: bytes, revision: int, asked: dict[str, Any]) -> Any:
    """The range's answer, or RequestTooLarge."""
    try:
        return sm.range_kv(low, end, revision=revision, **asked)
    except RequestTooLarge:
        return RequestTooLarge


@pytest.mark.parametrize("name", ["memory", "leveldb"])
@pytest.mark.parametrize("seed", range(3))
def test_a_current_read_answers_as_a_read_of_the_same_state_at_a_past_revision(
    engines: Callable[..., StorageEngine], name: str, seed: int
) -> None:
    """Every option (sorts, filters, keys_only, count_only, limits, the byte budget), in a
    range and in a transaction: the index's answer now equals the history's answer."""
    rng = random.Random(seed)
    sm, log = StateMachine(engines(name)), Log()
    keys = [b"k%03d" % i for i in range(150)]
    for _ in range(700):
        key = rng.choice(keys)
        if rng.random() < 0.7:
            sm.apply([log.cmd(KVPut(key, v(b"%d" % rng.randrange(50))))])
        else:
            sm.apply([log.cmd(DeleteRange(key))])
    past = sm.revision
    sm.apply([log.cmd(KVPut(b"~later", v(b"x")))])  # outside every range read below: now > past
    for _ in range(300):
        low = rng.choice(keys)
        end = rng.choice([b"", b"", b"k\xff", rng.choice(keys)])
        if end and end <= low:
            end = b""
        bound = [0, 0, 0, rng.randrange(1, past + 1)]
        options = RangeOptions(
            rng.choice(["none", "ascend", "descend"]),
            rng.choice(["key", "key", "version", "create", "mod", "value"]),
            rng.random() < 0.3,
            rng.random() < 0.1,
            rng.choice(bound),
            rng.choice(bound),
            rng.choice(bound),
            rng.choice(bound),
        )
        limit = rng.choice([0, 1, 3, 1000])
        max_bytes = rng.choice([None, None, 200])
        asked = {"limit": limit, "options": options, "max_bytes": max_bytes}
        now = _read(sm, low, end, 0, asked)
        assert now == _read(sm, low, end, past, asked), (low, end, asked)
        answer: Any = apply1(sm, log.cmd(Txn((), (TxnRange(low, end, 0, limit, options),), ())))
        if now is not RequestTooLarge:
            assert answer.responses[0] == now
