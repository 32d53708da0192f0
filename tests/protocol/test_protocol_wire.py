"""Every protocol type crosses the wire under `global_kv.<ClassName>` and comes back equal."""

from __future__ import annotations

import inspect

import cbor2
import pytest

from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net._codec import TAG_OBJECT
from ergo_py.net._registry import REGISTRY
from ergo_py.wire import decode, encode
from global_kv import CASFailed, LockHeld, NotLeader
from global_kv.protocol import (
    WIRE_ERRORS,
    AddPeerRequest,
    CompactRequest,
    CompactResponse,
    Compare,
    DeleteRangeResponse,
    DeleteRequest,
    Forwarded,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
    ListLocksRequest,
    LockInfo,
    LockRequest,
    MetricsRequest,
    PrefixRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RefreshRequest,
    Relayed,
    RemovePeerRequest,
    ResponseHeader,
    SessionTag,
    SnapshotRequest,
    StatusRequest,
    StatusResponse,
    TxnRequest,
    TxnResponse,
    UnlockRequest,
)
from global_kv.state import KeyValue

TAG = SessionTag("c", 2, 1)
A = PID("a@host", 1, 1)
PEER = ProcessID("global", "n2@host")
MESSAGES = [
    GetRequest(b"k", "linearizable"),
    RangeRequest(b"a", None, 10, "follower"),
    PrefixRequest(b"p/", 0),
    PutRequest(b"k", b"v", TAG),
    DeleteRequest(b"k", TAG),
    LockRequest(b"k", A, 1.0, 2.0, TAG),
    UnlockRequest(b"k", 3, TAG),
    RefreshRequest(b"k", 3, 1.0, TAG),
    StatusRequest(),
    StatusResponse(A, True, PEER, 3, 10, 10, (PEER,), 0, 100, True, 0, True),
    AddPeerRequest(PEER),
    RemovePeerRequest(PEER),
    SnapshotRequest(),
    ListLocksRequest(),
    MetricsRequest(),
    LockInfo(b"k", A, 3, 0.5, 1.0, 2),
    Forwarded(A, Ref("a@host", 1, 9), PutRequest(b"k", b"v", TAG), 1),
    Relayed(A, Ref("a@host", 1, 9), True, b"v"),
    TAG,
    KVRangeRequest(b"a", b"\x00", 7, 10, "read_index"),
    KVRangeRequest(b"a", b"b", 0, 1, "", "descend", "mod", True, False, 1, 2, 3, 4),
    ResponseHeader(9, 2, "global@n1"),
    RangeResponse(ResponseHeader(9, 2, "global@n1"), (KeyValue(b"a", 3, 9, 2, b"v"),), True, 4),
    KVPutRequest(b"k", b"v", 0, True, False, False, TAG),
    KVDeleteRangeRequest(b"a", b"b", True, TAG),
    CompactRequest(5, TAG),
    PutResponse(ResponseHeader(9, 2, "global@n1"), KeyValue(b"k", 3, 8, 2, b"old")),
    DeleteRangeResponse(ResponseHeader(9, 2, "global@n1"), 1, (KeyValue(b"a", 3, 8, 2, b"x"),)),
    CompactResponse(ResponseHeader(9, 2, "global@n1")),
    Compare(b"k", "value", "=", b"v", b"\x00"),
    LeaseGrantRequest(5.0, 0, A, TAG),
    LeaseRevokeRequest(7, TAG),
    LeaseKeepAliveRequest(7, TAG),
    LeaseTimeToLiveRequest(7, True),
    LeaseLeasesRequest(),
    LeaseGrantResponse(ResponseHeader(9, 2, "global@n1"), 7, 5.0),
    LeaseTimeToLiveResponse(ResponseHeader(9, 2, "global@n1"), 7, 1.5, 5.0, (b"k",)),
    LeaseLeasesResponse(ResponseHeader(9, 2, "global@n1"), (7, 8)),
    TxnRequest(
        (Compare(b"k", "version", ">", 2),),
        (KVPutRequest(b"k", b"v"), TxnRequest((), (KVRangeRequest(b"a", b"b", sort_order="descend"),))),
        (KVDeleteRangeRequest(b"k"),),
        TAG,
    ),
    TxnResponse(
        ResponseHeader(9, 2, "global@n1"),
        True,
        (PutResponse(ResponseHeader(9, 2, "global@n1")), TxnResponse(ResponseHeader(9, 2, "global@n1"), False, ())),
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_protocol_type_crosses_under_its_class_name(message: object) -> None:
    data = encode(message)
    tag = cbor2.loads(data)
    assert isinstance(tag, cbor2.CBORTag) and tag.tag == TAG_OBJECT
    assert tag.value[0] == f"global_kv.{type(message).__name__}"
    assert decode(data) == message


def test_a_write_carries_its_session_as_one_tag_on_the_wire() -> None:
    fields = list(cbor2.loads(encode(PutRequest(b"k", b"v", TAG))).value)
    assert fields[:3] == ["global_kv.PutRequest", b"k", b"v"] and len(fields) == 4
    assert list(fields[3].value) == ["global_kv.SessionTag", "c", 2, 1]


@pytest.mark.parametrize(
    "error", [NotLeader(PEER), CASFailed(b"k", b"now"), LockHeld(b"k", A, 4)], ids=lambda e: type(e).__name__
)
def test_errors_cross_as_themselves(error: Exception) -> None:
    back = decode(encode(error))
    assert type(back) is type(error) and vars(back) == vars(error)


def test_every_wire_error_is_registered_under_its_name_with_its_fields() -> None:
    assert len(WIRE_ERRORS) >= 14
    for error, fields in WIRE_ERRORS:
        entry = REGISTRY.by_type[error]
        assert (entry.name, entry.fields) == (f"global_kv.{error.__name__}", fields)
        # The fields are the constructor's arguments, in order: the class is rebuilt from them.
        assert tuple(inspect.signature(error).parameters)[: len(fields)] == fields
