"""Current reads of a range: point reads where the key index holds few keys there, an
engine scan where it holds many, and the same answer either way. Point reads are there
because an LSM engine's scan steps over every version of a key it has not compacted
yet: a lock's or an election's key, put and deleted all day, made each read of its
range O(its history)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from global_kv.state import (
    CompactHistory,
    Compare,
    Delete,
    DeleteRange,
    KVPut,
    Put,
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
