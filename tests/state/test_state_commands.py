"""Commands and values: round trips, compactness, and refusal of anything malformed."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import cbor2
import pytest

from ergo_py.ids import PID
from global_kv._errors import MalformedCommand, RaftInvariantError, StorageCorrupted
from global_kv.state import (
    CAS,
    MAX_USER_KEY,
    OP_TYPES,
    BatchDelete,
    BatchPut,
    Command,
    CompactHistory,
    Compare,
    Delete,
    DeleteRange,
    KVPut,
    LeaseExpire,
    LeaseGrant,
    LeaseRefresh,
    LeaseRevoke,
    LockAcquire,
    LockExpire,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Op,
    Put,
    RangeOptions,
    SessionClose,
    Txn,
    TxnRange,
    decode_command,
    decode_value,
    encode_command,
    encode_value,
)
from global_kv.storage import MAX_KEY_SIZE
from tests.state.state_support import A, B, v

ALL_OPS: list[Op] = [
    Put(b"k", v(b"value")),
    Put(b"\x00\xff" * 10, v(b"x" * 5000, compress=True)),
    Delete(b"k"),
    CAS(b"k", None, v(b"new")),
    CAS(b"k", v(b"old"), None),
    CAS(b"k", v(b"old", compress=True), v(b"new")),
    BatchPut(((b"a", v(b"1")), (b"b", v(b"2")))),
    BatchPut(()),
    BatchDelete((b"a", b"b", b"c")),
    LockAcquire(b"lock", A, 0),
    LockAcquire(b"lock", PID("n@h", 2**40, 2**31), 30_000),
    LockRelease(b"lock", 17),
    LockRefresh(b"lock", 17, 5_000),
    LockReleaseOwner(B),
    LockExpire(b"lock", 17),
    LockExpire(b"lock", 17, 19),
    SessionClose("client-1"),
    CompactHistory(1),
    CompactHistory(2**63),
    KVPut(b"k", v(b"value")),
    KVPut(b"k", b"", 0, True, True, True),
    DeleteRange(b"a"),
    DeleteRange(b"a", b"\x00", True),
    DeleteRange(b"a", b"m"),
    Txn(),
    LeaseGrant(0, 5000),
    LeaseGrant(7, 1, A),
    LeaseRevoke(7),
    LeaseRefresh(7),
    LeaseExpire(7, 12),
    KVPut(b"k", v(b"x"), 7),
    Txn(
        (Compare(b"k", "value", "=", v(b"x")), Compare(b"a", "mod", "<", 7, b"\x00")),
        (KVPut(b"k", v(b"y")), TxnRange(b"a", b"z", 3, 2, RangeOptions("descend", "mod", True)), DeleteRange(b"q")),
        (Txn((Compare(b"k", "version", ">", 0),), (KVPut(b"n", v(b"1")),)),),
    ),
]


def test_every_op_type_is_covered() -> None:
    assert {type(op) for op in ALL_OPS} == set(OP_TYPES)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: type(op).__name__)
@pytest.mark.parametrize("envelope", [(None, 0, 0), ("client-1", 1, 0), ("ü-client", 2**63, 2**62)])
def test_round_trip(op: Op, envelope: tuple[Any, int, int]) -> None:
    cmd = Command(*envelope, op)
    data = encode_command(cmd)
    assert decode_command(data) == cmd
    assert encode_command(decode_command(data)) == data  # one encoding per command


def test_encoding_is_compact_positional_array() -> None:
    data = encode_command(Command("c", 1, 1, Put(b"k", v(b"v"))))
    assert cbor2.loads(data) == [1, "c", 1, 1, b"k", b"\x00v"]
    assert len(data) <= 12
    assert len(encode_command(Command(None, 0, 0, LockRelease(b"lock", 1_000_000)))) <= 16


def test_batch_put_accepts_mappings_and_lists_and_keeps_tuples() -> None:
    from_map = BatchPut({b"a": v(b"1"), b"b": v(b"2")})  # type: ignore[arg-type]
    from_lists = BatchPut([[b"a", v(b"1")], [b"b", v(b"2")]])  # type: ignore[arg-type]
    assert from_map == from_lists == BatchPut(((b"a", v(b"1")), (b"b", v(b"2"))))
    assert BatchDelete([b"a", b"b"]) == BatchDelete((b"a", b"b"))  # type: ignore[arg-type]


def _valid() -> list[Any]:
    return [1, None, 0, 0, b"k", b"\x00v"]


def _with(index: int, value: Any, base: list[Any] | None = None) -> bytes:
    raw = list(base if base is not None else _valid())
    raw[index] = value
    return cbor2.dumps(raw)


MALFORMED = [
    (b"", "not CBOR"),
    (b"\xff\xff", "not CBOR"),
    (b"\x9f\x01", "not CBOR"),  # an indefinite array cut short
    (cbor2.dumps({"op": 1}), "expected \\[opcode"),
    (cbor2.dumps([1, None, 0]), "expected \\[opcode"),
    (encode_command(Command(None, 0, 0, Delete(b"k"))) + b"\x00", "trailing"),
    (_with(0, 99), "unknown opcode"),
    (_with(0, True), "opcode must be an int"),
    (_with(0, "put"), "opcode must be an int"),
    (cbor2.dumps([1, None, 0, 0, b"k"]), "takes 2 fields"),
    (cbor2.dumps([2, None, 0, 0, b"k", b"extra"]), "takes 1 fields"),
    (_with(4, "k"), "key must be bytes"),
    (_with(4, b""), "key length 0"),
    (_with(4, b"x" * (MAX_USER_KEY + 1)), f"key length {MAX_USER_KEY + 1}"),
    (_with(5, b"raw value"), "not in stored form"),
    (_with(5, b""), "not in stored form"),
    (_with(5, None), "value must be bytes"),
    (_with(2, True), "seq must be an int"),
    (_with(2, -1), "seq -1"),
    (_with(1, 7), "client_id must be str"),
    (_with(1, ""), "client_id is 0 bytes"),
    (_with(1, "x" * 201), "client_id is 201 bytes"),
    (cbor2.dumps([1, "c", 0, 0, b"k", b"\x00v"]), "seq 0"),
    (cbor2.dumps([1, "c", 1, 2, b"k", b"\x00v"]), "ack 2"),
    (cbor2.dumps([6, None, 0, 0, b"k", ["n@h", "1", 1], 0]), "owner.id must be an int"),
    (cbor2.dumps([6, None, 0, 0, b"k", ["n@h", 1], 0]), "a PID is"),
    (cbor2.dumps([6, None, 0, 0, b"k", "n@h.1.1", 0]), "a PID is"),
    (cbor2.dumps([6, None, 0, 0, b"k", ["", 1, 1], 0]), "no node name"),
    (cbor2.dumps([6, None, 0, 0, b"k", ["n@h", 1, 1], -5]), "ttl_ms -5"),
    (cbor2.dumps([7, None, 0, 0, b"k", 0]), "token 0"),
    (cbor2.dumps([7, None, 0, 0, b"k", 1.0]), "token must be an int"),
    (cbor2.dumps([4, None, 0, 0, [[b"k"]]]), "pair"),
    (cbor2.dumps([4, None, 0, 0, {b"k": b"\x00v"}]), "must be an array"),
    (cbor2.dumps([5, None, 0, 0, b"k"]), "must be an array"),
    (cbor2.dumps([1, None, 0, 0, datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), b"\x00v"]), "bytes"),
    (cbor2.dumps([11, None, 0, 0, b"client"]), "client_id must be str"),
]


@pytest.mark.parametrize(("data", "match"), MALFORMED)
def test_malformed_entry_data_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(MalformedCommand, match=match) as info:
        decode_command(data)
    assert isinstance(info.value, RaftInvariantError)  # the replica must stop
    assert "replica must stop" in str(info.value)


def test_non_bytes_entry_data_is_refused() -> None:
    with pytest.raises(MalformedCommand, match="must be bytes"):
        decode_command(bytearray(encode_command(Command(None, 0, 0, Delete(b"k")))))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Put("k", v(b"v")), TypeError),  # type: ignore[arg-type]
        (lambda: Put(b"", v(b"v")), ValueError),
        (lambda: Put(b"k", b"hello"), ValueError),  # forgot encode_value
        (lambda: Put(b"k", bytearray(b"\x00v")), TypeError),  # type: ignore[arg-type]
        (lambda: CAS(b"k", b"old", None), ValueError),
        (lambda: LockAcquire(b"k", "a@host.1.1", 0), TypeError),  # type: ignore[arg-type]
        (lambda: LockAcquire(b"k", A, -1), ValueError),
        (lambda: LockRelease(b"k", True), TypeError),
        (lambda: LockRefresh(b"k", 0, 10), ValueError),
        (lambda: LockExpire(b"k", 1, -1), ValueError),
        (lambda: SessionClose(""), ValueError),
        (lambda: BatchDelete(b"abc"), TypeError),  # type: ignore[arg-type]
        (lambda: BatchPut(((b"k", b"raw"),)), ValueError),
        (lambda: Command("c", 0, 0, Delete(b"k")), ValueError),  # client seqs start at 1
        (lambda: Command("c", 3, 4, Delete(b"k")), ValueError),  # ack <= seq
        (lambda: Command(None, -1, 0, Delete(b"k")), ValueError),
        (lambda: Command(None, 0, 0, "put k"), TypeError),  # type: ignore[arg-type]
        (lambda: Command(b"c", 1, 0, Delete(b"k")), TypeError),  # type: ignore[arg-type]
    ],
)
def test_invalid_commands_cannot_be_built(build: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


def test_proposer_refuses_a_damaged_compressed_value() -> None:
    damaged = b"\x01" + b"not a zlib stream"
    op = Put(b"k", damaged)  # the header alone looks right ...
    with pytest.raises(ValueError, match="damaged zlib"):
        encode_command(Command(None, 0, 0, op))  # ... but it never enters the log
    with pytest.raises(ValueError, match="damaged zlib"):
        encode_command(Command(None, 0, 0, CAS(b"k", damaged, None)))
    with pytest.raises(TypeError):
        encode_command(op)  # type: ignore[arg-type]


def _incompressible(n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return out[:n]


@pytest.mark.parametrize(
    ("raw", "compress", "threshold", "header"),
    [
        (b"", False, 0, 0),
        (b"", True, 0, 0),
        (b"short", True, 1024, 0),  # below the threshold
        (b"a" * 1023, True, 1024, 0),
        (b"a" * 1024, True, 1024, 1),  # at the threshold
        (b"a" * 100_000, True, 1024, 1),
        (b"a" * 100_000, False, 1024, 0),  # compression off
        (_incompressible(4096), True, 16, 0),  # would grow: stays raw
        (bytes(range(256)) * 64, True, 0, 1),
    ],
)
def test_value_round_trip_and_header(raw: bytes, compress: bool, threshold: int, header: int) -> None:
    stored = encode_value(raw, compress, threshold)
    assert stored[0] == header
    assert decode_value(stored) == raw
    if header == 1:
        assert len(stored) < len(raw)


@pytest.mark.parametrize(
    ("stored", "match"),
    [(b"", "non-empty"), (b"\x02abc", "unknown value header 0x02"), (b"\x01garbage", "damaged zlib")],
)
def test_damaged_stored_values_raise(stored: bytes, match: str) -> None:
    with pytest.raises(StorageCorrupted, match=match):
        decode_value(stored)


def test_encode_value_validates_its_arguments() -> None:
    with pytest.raises(TypeError):
        encode_value("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_value(b"x", True, -1)


def test_user_key_limit_fits_the_engines_key_limit_with_the_prefix() -> None:
    assert MAX_USER_KEY == MAX_KEY_SIZE - 1
    Put(b"x" * MAX_USER_KEY, v(b""))  # the longest key is accepted
