"""`command_for` and `lock_command_for`: each write request becomes the state machine's command.

The builders are the one mapping from the client protocol to the log, so each request
type is checked against the command it must produce, with its session tag, and the
values' compression against the threshold.
"""

from __future__ import annotations

import random
import zlib

import pytest

from ergo_py.ids import PID
from global_kv.protocol import (
    NO_SESSION,
    CompactRequest,
    Compare,
    DeleteRequest,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    LockRequest,
    PutRequest,
    RefreshRequest,
    SessionTag,
    TxnRequest,
    UnlockRequest,
    command_for,
    lock_command_for,
)
from global_kv.state import (
    Command,
    CompactHistory,
    Delete,
    DeleteRange,
    KVPut,
    LockAcquire,
    LockRefresh,
    LockRelease,
    Put,
    RangeOptions,
    Txn,
    TxnRange,
    decode_command,
    decode_value,
    encode_command,
    encode_value,
)
from global_kv.state import Compare as StateCompare

TAG = SessionTag("client-1", 7, 5)
OWNER = PID("app@host", 3, 1)
SMALL = b"v"
BIG = b"a" * 4096  # compresses well


def raw(value: bytes) -> bytes:
    return encode_value(value, False)


KV_CASES = [
    (PutRequest(b"k", SMALL, TAG), Put(b"k", raw(SMALL))),
    (DeleteRequest(b"k", TAG), Delete(b"k")),
    (
        TxnRequest(
            (Compare(b"k", "value", "=", b"old"), Compare(b"a", "mod", "<", 3, b"b")),
            (KVPutRequest(b"k", b"new"), KVRangeRequest(b"a", b"b", 2, 1, "", "descend", "mod", True)),
            (TxnRequest((), (KVDeleteRangeRequest(b"k"),)),),
            TAG,
        ),
        Txn(
            (StateCompare(b"k", "value", "=", raw(b"old")), StateCompare(b"a", "mod", "<", 3, b"b")),
            (KVPut(b"k", raw(b"new")), TxnRange(b"a", b"b", 2, 1, RangeOptions("descend", "mod", True))),
            (Txn((), (DeleteRange(b"k"),)),),
        ),
    ),
    (KVPutRequest(b"k", SMALL, 0, True, False, True, TAG), KVPut(b"k", raw(SMALL), 0, True, False, True)),
    (KVPutRequest(b"k", b"", ignore_value=True, session=TAG), KVPut(b"k", b"", ignore_value=True)),
    (KVDeleteRangeRequest(b"a", b"\x00", True, TAG), DeleteRange(b"a", b"\x00", True)),
    (CompactRequest(9, TAG), CompactHistory(9)),
]


@pytest.mark.parametrize(("request_", "op"), KV_CASES, ids=lambda c: type(c).__name__)
def test_each_kv_write_becomes_its_operation_in_the_sessions_envelope(request_: object, op: object) -> None:
    command = command_for(request_, compress=False, threshold=1024)  # type: ignore[arg-type]
    assert command == Command("client-1", 7, 5, op)  # type: ignore[arg-type]
    assert decode_command(encode_command(command)) == command  # a command the log accepts


def test_a_write_without_a_session_gets_none() -> None:
    assert PutRequest(b"k", SMALL).session is NO_SESSION
    command = command_for(PutRequest(b"k", SMALL), compress=False, threshold=1024)
    assert (command.client_id, command.seq, command.ack) == (None, 0, 0)


def stored_values(op: object) -> list[bytes]:
    if isinstance(op, (Put, KVPut)):
        return [op.value]
    assert isinstance(op, Txn)
    compares = [c.value for c in op.compare if type(c.value) is bytes]
    return compares + [v for o in op.success + op.failure for v in stored_values(o)]


@pytest.mark.parametrize(
    ("compress", "threshold", "compressed"),
    [(True, len(BIG), True), (True, len(BIG) + 1, False), (True, 0, True), (False, 0, False)],
)
def test_values_are_compressed_from_the_threshold_on(compress: bool, threshold: int, compressed: bool) -> None:
    requests = [
        PutRequest(b"k", BIG, TAG),
        KVPutRequest(b"k", BIG, session=TAG),
        TxnRequest((Compare(b"k", "value", "=", BIG),), (KVPutRequest(b"k", BIG),), (), TAG),
    ]
    for request in requests:
        values = stored_values(command_for(request, compress=compress, threshold=threshold).op)
        assert values, type(request).__name__
        for value in values:
            assert (len(value) < len(BIG)) is compressed, (type(request).__name__, len(value))
            assert decode_value(value) == BIG
            if compressed:
                assert zlib.decompress(value[1:]) == BIG


def test_incompressible_values_stay_raw_even_when_asked() -> None:
    noise = random.Random(0).randbytes(512)
    op = command_for(PutRequest(b"k", noise), compress=True, threshold=0).op
    assert stored_values(op) == [raw(noise)]


@pytest.mark.parametrize(
    "request_", [GetRequest(b"k"), LockRequest(b"k", OWNER), UnlockRequest(b"k", 1), object()], ids=repr
)
def test_command_for_refuses_anything_but_a_kv_write(request_: object) -> None:
    with pytest.raises(TypeError, match="KV write request"):
        command_for(request_, compress=False, threshold=0)  # type: ignore[arg-type]


LOCK_CASES = [
    (LockRequest(b"k", OWNER, 1.5, 0.0, TAG), 0.0, LockAcquire(b"k", OWNER, 1500)),
    (LockRequest(b"k", OWNER, 0.0011, 0.0, TAG), 0.0, LockAcquire(b"k", OWNER, 2)),  # rounded up
    (LockRequest(b"k", OWNER, 0.0, 5.0, TAG), 30.0, LockAcquire(b"k", OWNER, 30_000)),  # the default TTL
    (LockRequest(b"k", OWNER, 0.0, 0.0, TAG), 0.0, LockAcquire(b"k", OWNER, 0)),  # no TTL at all
    (UnlockRequest(b"k", 9, TAG), 30.0, LockRelease(b"k", 9)),
    (RefreshRequest(b"k", 9, 2.0, TAG), 30.0, LockRefresh(b"k", 9, 2000)),
]


@pytest.mark.parametrize(("request_", "default_ttl", "op"), LOCK_CASES, ids=repr)
def test_each_lock_request_becomes_its_operation(request_: object, default_ttl: float, op: object) -> None:
    command = lock_command_for(request_, default_ttl=default_ttl)  # type: ignore[arg-type]
    assert command == Command("client-1", 7, 5, op)  # type: ignore[arg-type]
    assert decode_command(encode_command(command)) == command


def test_lock_command_for_refuses_a_kv_write() -> None:
    with pytest.raises(TypeError, match="lock request"):
        lock_command_for(PutRequest(b"k", SMALL), default_ttl=0.0)  # type: ignore[arg-type]
