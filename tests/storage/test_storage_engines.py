"""The storage engine conformance suite, run against every engine (memory, leveldb, lmdb, hybrid).

Each test states one behaviour of the `StorageEngine` contract; `engines` is a factory
parametrised over all engines, so a new engine only has to be added to ENGINE_NAMES.
"""

from __future__ import annotations

import random

import pytest

from global_kv._errors import RaftInvariantError, StorageCorrupted, StorageError
from global_kv.storage import ENGINE_NAMES, MAX_KEY_SIZE, open_engine

# Keys whose bytewise order differs from naive expectations (NUL, 0xff, prefixes).
ODD_KEYS = [
    b"\x00",
    b"\x00\x00",
    b"\x00\xff",
    b"\x01",
    b"a",
    b"a\x00",
    b"a\xff",
    b"a\xff\x00",
    b"ab",
    b"b",
    b"\x7f",
    b"\x80",
    b"\xfe\xff",
    b"\xff",
    b"\xff\x00",
    b"\xff" * MAX_KEY_SIZE,
]


def test_get_put_overwrite_delete(engines):
    e = engines.open()
    assert e.get(b"k") is None
    e.put(b"k", b"v1")
    assert e.get(b"k") == b"v1"
    e.put(b"k", b"v2")
    assert e.get(b"k") == b"v2"
    e.delete(b"k")
    assert e.get(b"k") is None
    e.delete(b"k")  # deleting an absent key is fine
    assert e.get(b"k") is None


def test_empty_value_is_not_absence(engines):
    e = engines.open()
    e.put(b"empty", b"")
    assert e.get(b"empty") == b""
    assert list(e.range()) == [(b"empty", b"")]


def test_large_values(engines):
    e = engines.open()
    big = random.Random(1).randbytes(3 << 20)
    e.put(b"big", big)
    e.put(b"small", b"s")
    assert e.get(b"big") == big
    assert [k for k, _ in e.range()] == [b"big", b"small"]


def test_binary_keys_and_key_limits(engines):
    e = engines.open()
    for i, k in enumerate(ODD_KEYS):
        e.put(k, bytes([i]))
    for i, k in enumerate(ODD_KEYS):
        assert e.get(k) == bytes([i])
    with pytest.raises(ValueError):
        e.put(b"", b"x")
    with pytest.raises(ValueError):
        e.put(b"x" * (MAX_KEY_SIZE + 1), b"x")
    with pytest.raises(TypeError):
        e.put("str-key", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        e.put(b"k", "str-value")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        e.get(bytearray(b"k"))  # type: ignore[arg-type]


def test_range_is_bytewise_ordered_and_half_open(engines):
    e = engines.open()
    shuffled = ODD_KEYS[:]
    random.Random(7).shuffle(shuffled)
    e.batch_put({k: k for k in shuffled})
    ordered = sorted(ODD_KEYS)
    assert [k for k, _ in e.range()] == ordered
    assert [k for k, _ in e.range(b"a", b"b")] == [k for k in ordered if b"a" <= k < b"b"]
    assert [k for k, _ in e.range(b"a\xff")] == [k for k in ordered if k >= b"a\xff"]
    assert [k for k, _ in e.range(None, b"\x01")] == [k for k in ordered if k < b"\x01"]
    assert [k for k, _ in e.range(b"ab", b"ab")] == []
    assert [k for k, _ in e.range(b"b", b"a")] == []
    assert all(k == v for k, v in e.range())


def test_range_bounds_longer_than_any_key(engines):
    e = engines.open()
    top = b"\xff" * MAX_KEY_SIZE
    e.batch_put({top: b"top", b"\xfe": b"below"})
    assert [k for k, _ in e.range(top + b"\x00")] == []
    assert [k for k, _ in e.range(b"\xfe" + b"\x00" * 600)] == [top]
    assert [k for k, _ in e.prefix_scan(top + b"\xff")] == []


def test_range_limit(engines):
    e = engines.open()
    e.batch_put({b"k%03d" % i: b"v" for i in range(50)})
    assert [k for k, _ in e.range(b"k010", limit=3)] == [b"k010", b"k011", b"k012"]
    assert list(e.range(limit=0)) == []
    assert len(list(e.range(limit=1000))) == 50
    with pytest.raises(ValueError):
        e.range(limit=-1)


def test_prefix_scan(engines):
    e = engines.open()
    e.batch_put({k: b"" for k in ODD_KEYS})
    e.batch_put({b"user/1": b"a", b"user/2": b"b", b"user0": b"c", b"usea": b"d"})
    assert [k for k, _ in e.prefix_scan(b"user/")] == [b"user/1", b"user/2"]
    assert [k for k, _ in e.prefix_scan(b"a\xff")] == [b"a\xff", b"a\xff\x00"]
    assert [k for k, _ in e.prefix_scan(b"\xff")] == [k for k in sorted(ODD_KEYS) if k.startswith(b"\xff")]
    assert [k for k, _ in e.prefix_scan(b"user", limit=2)] == [b"user/1", b"user/2"]
    assert len(list(e.prefix_scan(b""))) == len(ODD_KEYS) + 4


def test_iterators_are_point_in_time(engines):
    e = engines.open()
    e.batch_put({b"a": b"1", b"b": b"2", b"c": b"3"})
    it = e.range()
    assert next(it) == (b"a", b"1")
    e.put(b"b", b"changed")
    e.delete(b"c")
    e.put(b"d", b"new")
    assert list(it) == [(b"b", b"2"), (b"c", b"3")]
    assert list(e.range()) == [(b"a", b"1"), (b"b", b"changed"), (b"d", b"new")]


def test_iterator_close_and_context_manager(engines):
    e = engines.open()
    e.batch_put({b"a": b"1", b"b": b"2"})
    with e.range() as it:
        assert next(it) == (b"a", b"1")
    with pytest.raises(StopIteration):
        next(it)
    it2 = e.prefix_scan(b"a")
    it2.close()
    it2.close()
    assert list(it2) == []


def test_open_iterator_fails_loudly_when_engine_closes(engines):
    e = engines.open()
    e.batch_put({b"a": b"1", b"b": b"2"})
    it = e.range()
    next(it)
    e.close()
    with pytest.raises(StorageError, match="invalidated"):
        next(it)
    with pytest.raises(StorageError, match="closed"):
        e.get(b"a")
    with pytest.raises(StorageError, match="closed"):
        e.put(b"a", b"x")


def test_batch_put_and_delete(engines):
    e = engines.open()
    e.batch_put({b"k%d" % i: b"v%d" % i for i in range(100)})
    assert len(list(e.range())) == 100
    e.batch_delete([b"k%d" % i for i in range(0, 100, 2)] + [b"absent"])
    assert [k for k, _ in e.range()] == sorted(b"k%d" % i for i in range(1, 100, 2))


def test_batch_is_all_or_nothing_on_invalid_input(engines):
    e = engines.open()
    e.put(b"keep", b"1")
    bad = {b"a": b"1", b"b": b"2", b"": b"3"}
    with pytest.raises(ValueError):
        e.batch_put(bad)
    with pytest.raises(TypeError):
        e.write_batch(puts={b"a": b"1"}, deletes=[b"keep", "str"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="both put and deleted"):
        e.write_batch(puts={b"a": b"1"}, deletes=[b"a"])
    assert list(e.range()) == [(b"keep", b"1")]


def test_batch_is_seen_whole_by_readers(engines):
    e = engines.open()
    before = e.range()
    e.write_batch(puts={b"x%d" % i: b"v" for i in range(20)}, deletes=[b"nothing"])
    after = e.range()
    assert list(before) == []
    assert len(list(after)) == 20


def test_applied_index_is_written_with_the_batch(engines):
    e = engines.open()
    assert e.applied_index() == 0
    e.write_batch(puts={b"a": b"1"}, applied_index=5)
    assert e.applied_index() == 5
    e.write_batch(applied_index=6)  # a no-op entry still advances it
    assert e.applied_index() == 6
    e.put(b"b", b"2")  # writes without an index leave it alone
    assert e.applied_index() == 6
    with pytest.raises(RaftInvariantError):
        e.write_batch(puts={b"c": b"3"}, applied_index=6)
    assert e.get(b"c") is None
    with pytest.raises(ValueError):
        e.write_batch(applied_index=-1)


def test_cas(engines):
    e = engines.open()
    assert e.cas(b"k", None, b"v1") is True  # must be absent: it is
    assert e.cas(b"k", None, b"v2") is False  # must be absent: it is not
    assert e.get(b"k") == b"v1"
    assert e.cas(b"k", b"wrong", b"v2") is False
    assert e.get(b"k") == b"v1"
    assert e.cas(b"k", b"v1", b"v2") is True
    assert e.get(b"k") == b"v2"
    assert e.cas(b"k", b"v2", None) is True  # swap to absent = delete
    assert e.get(b"k") is None
    assert e.cas(b"k", None, None) is True  # absent stays absent
    assert e.cas(b"k", b"", b"x") is False  # empty value is not absence
    e.put(b"k", b"")
    assert e.cas(b"k", b"", b"x") is True
    assert e.get(b"k") == b"x"


def test_cas_records_applied_index_even_when_it_fails(engines):
    e = engines.open()
    assert e.cas(b"k", b"nope", b"v", applied_index=3) is False
    assert e.applied_index() == 3
    assert e.get(b"k") is None
    assert e.cas(b"k", None, b"v", applied_index=4) is True
    assert e.applied_index() == 4


def _fill(e, rng: random.Random, n: int = 200) -> dict[bytes, bytes]:
    data = {rng.randbytes(rng.randint(1, 40)): rng.randbytes(rng.randint(0, 300)) for _ in range(n)}
    data[b"\x00"] = b""
    data[b"\xff" * MAX_KEY_SIZE] = rng.randbytes(70_000)
    e.write_batch(puts=data, applied_index=42)
    return data


@pytest.mark.parametrize("dst_name", ENGINE_NAMES)
def test_snapshot_restores_into_every_engine(engines, make_engine, dst_name):
    src = engines.open()
    data = _fill(src, random.Random(3))
    blob, index = src.snapshot()
    assert index == 42
    dst = make_engine(dst_name)
    dst.write_batch(puts={b"stale": b"gone after restore"}, applied_index=99)
    dst.restore(blob, index)
    assert list(dst.range()) == sorted(data.items())
    assert dst.applied_index() == 42
    assert dst.get(b"stale") is None
    assert dst.snapshot() == (
        blob,
        42,
    )  # the format is engine-independent, byte for byte


def test_snapshot_chunks_stream_in_any_chunking(engines, make_engine):
    src = engines.open()
    data = _fill(src, random.Random(4), n=50)
    blob, _ = src.snapshot()
    assert b"".join(src.snapshot_chunks()) == blob
    with src.snapshot_chunks(chunk_size=1000) as stream:
        chunks = list(stream)
    assert stream.last_index == 42
    assert len(chunks) > 5 and max(map(len, chunks)) < 80_000  # streamed, not one blob
    for stream_chunks in (chunks, [blob[i : i + 7] for i in range(0, len(blob), 7)]):
        dst = make_engine("memory")
        dst.restore_chunks(iter(stream_chunks), 42)
        assert list(dst.range()) == sorted(data.items())


def test_snapshot_stream_is_point_in_time(engines):
    e = engines.open()
    e.write_batch(puts={b"a": b"1", b"b": b"2"}, applied_index=1)
    stream = e.snapshot_chunks()
    e.write_batch(puts={b"c": b"3"}, deletes=[b"a"], applied_index=2)
    blob = b"".join(stream)
    assert stream.last_index == 1
    m = open_engine("memory")
    m.restore(blob, 1)
    assert list(m.range()) == [(b"a", b"1"), (b"b", b"2")]


def test_restore_of_damaged_snapshot_changes_nothing(engines, make_engine):
    src = make_engine("memory")
    src.write_batch(puts={b"k%d" % i: b"v" * 50 for i in range(100)}, applied_index=7)
    blob, index = src.snapshot()
    e = engines.open()
    e.write_batch(puts={b"mine": b"1"}, applied_index=3)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    for bad in (bytes(flipped), blob[:-5], blob[: len(blob) // 2]):
        with pytest.raises(StorageCorrupted):
            e.restore(bad, index)
        assert list(e.range()) == [(b"mine", b"1")]
        assert e.applied_index() == 3
    with pytest.raises(StorageCorrupted, match="covers index 7"):
        e.restore(blob, 8)
    e.restore(blob, index)
    assert len(list(e.range())) == 100


def test_restore_invalidates_open_iterators(engines):
    e = engines.open()
    e.batch_put({b"a": b"1", b"b": b"2"})
    it = e.range()
    next(it)
    e.restore(open_engine("memory").snapshot()[0], 0)
    with pytest.raises(StorageError, match="invalidated"):
        next(it)
    assert list(e.range()) == []


def test_reopen_keeps_everything(durable_engines):
    engines = durable_engines
    rng = random.Random(5)
    e = engines.open()
    model: dict[bytes, bytes] = {}
    for i in range(1, 400):  # enough to cross hybrid checkpoints and grow the LMDB map
        puts = {b"k%04d" % rng.randrange(300): rng.randbytes(rng.randint(0, 2000))}
        dels = [b"k%04d" % rng.randrange(300)] if i % 3 == 0 else []
        dels = [d for d in dels if d not in puts]
        e.write_batch(puts=puts, deletes=dels, applied_index=i)
        model.update(puts)
        for d in dels:
            model.pop(d, None)
    e.close()
    e = engines.open()
    assert list(e.range()) == sorted(model.items())
    assert e.applied_index() == 399
    e.compact()
    assert list(e.range()) == sorted(model.items())
    e.close()
    e = engines.open()
    assert list(e.range()) == sorted(model.items())
    assert e.applied_index() == 399


def test_second_open_of_same_directory_is_refused(durable_engines):
    durable_engines.open()
    with pytest.raises(StorageError, match="already open"):
        durable_engines.open()


def test_size_grows_with_data_and_compact_keeps_data(engines):
    e = engines.open()
    e.sync()
    empty = e.size()
    e.batch_put({b"k%d" % i: b"x" * 1000 for i in range(300)})
    e.sync()
    assert e.size() > empty + 100_000 or engines.name == "lmdb" and e.size() >= empty
    e.batch_delete([b"k%d" % i for i in range(300)])
    e.compact()
    assert list(e.range()) == []


def test_random_operations_match_a_model(engines):
    rng = random.Random(11)
    e = engines.open()
    model: dict[bytes, bytes] = {}
    keys = [rng.randbytes(rng.randint(1, 3)) for _ in range(60)]
    for step in range(1500):
        op = rng.random()
        k = rng.choice(keys)
        if op < 0.35:
            v = rng.randbytes(rng.randint(0, 20))
            e.put(k, v)
            model[k] = v
        elif op < 0.5:
            e.delete(k)
            model.pop(k, None)
        elif op < 0.65:
            old = model.get(k) if rng.random() < 0.7 else b"?"
            new = None if rng.random() < 0.3 else rng.randbytes(3)
            swapped = e.cas(k, old, new)
            assert swapped == (model.get(k) == old)
            if swapped:
                if new is None:
                    model.pop(k, None)
                else:
                    model[k] = new
        elif op < 0.75:
            puts = {rng.choice(keys): rng.randbytes(2) for _ in range(rng.randint(0, 5))}
            dels = [x for x in (rng.choice(keys) for _ in range(rng.randint(0, 5))) if x not in puts]
            e.write_batch(puts=puts, deletes=dels)
            for d in dels:
                model.pop(d, None)
            model.update(puts)
        elif op < 0.9:
            assert e.get(k) == model.get(k), step
        else:
            a, b = sorted((rng.choice(keys), rng.choice(keys)))
            limit = rng.choice([None, 1, 5])
            want = [(x, model[x]) for x in sorted(model) if a <= x < b][:limit]
            assert list(e.range(a, b, limit)) == want, step
    assert list(e.range()) == sorted(model.items())


def test_open_engine_by_name(tmp_path):
    with pytest.raises(ValueError, match="unknown storage engine"):
        open_engine("badger", tmp_path)
    with pytest.raises(ValueError, match="needs a data directory"):
        open_engine("leveldb")
    e = open_engine("leveldb", tmp_path)
    assert type(e).__name__ == "LevelDBStorage"
    assert (tmp_path / "kv-leveldb").is_dir()
    e.close()
    assert open_engine("memory").durable is False
