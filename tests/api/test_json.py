"""The gateway's proto3 JSON (`global_kv.api._json`) gives what protobuf's json_format gives, on
every message type of the API, both ways, and refuses what json_format refuses."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from global_kv.api._json import message_to_dict, parse_dict, parse_json
from global_kv.api._pb import auth_pb2, kv_pb2, rpc_pb2, v3election_pb2, v3lock_pb2

MODULES = (rpc_pb2, kv_pb2, auth_pb2, v3lock_pb2, v3election_pb2)
_SIGNED = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UNSIGNED64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_SIGNED32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}


def _classes() -> list[type[Message]]:
    found: list[type[Message]] = []

    def walk(cls: Any) -> None:
        found.append(cls)
        for nested in cls.DESCRIPTOR.nested_types:
            walk(getattr(cls, nested.name))

    for module in MODULES:
        for name in module.DESCRIPTOR.message_types_by_name:
            walk(getattr(module, name))
    return found


def _sample(field: FieldDescriptor, n: int) -> Any:
    kind = field.type
    if kind in _SIGNED:
        return -(2**40) - n
    if kind in _UNSIGNED64:
        return 2**63 + n
    if kind in _SIGNED32:
        return -7 - n
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return 7 + n
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind == FieldDescriptor.TYPE_STRING:
        return f"héllo {n}"
    if kind == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xff key " + bytes([n])
    if kind == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 1.5 + n
    raise AssertionError(kind)


def _populate(message: Message, depth: int = 0) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    for n, field in enumerate(descriptor.fields):
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if repeated:
                for _ in range(2):
                    _populate(getattr(message, field.name).add(), depth + 1)
            else:
                sub = getattr(message, field.name)
                sub.SetInParent()
                _populate(sub, depth + 1)
        elif repeated:
            getattr(message, field.name).extend([_sample(field, n), _sample(field, n + 1)])
        else:
            setattr(message, field.name, _sample(field, n))


CLASSES = _classes()


@pytest.mark.parametrize("cls", CLASSES, ids=[c.DESCRIPTOR.full_name for c in CLASSES])
def test_every_message_type_prints_and_parses_as_json_format_does(cls: type[Message]) -> None:
    message = cls()
    _populate(message)
    expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert message_to_dict(message) == expected
    assert message_to_dict(cls()) == {}
    for data in (expected, json_format.MessageToDict(message)):  # proto names, then JSON names
        parsed = cls()
        parse_dict(data, parsed)
        assert parsed == message


def test_what_a_client_may_write_is_read_as_json_format_reads_it() -> None:
    data = {"key": "Zm9v", "range_end": "Zm9w", "limit": 5, "revision": "7", "sort_order": 1, "keysOnly": True}
    ours, theirs = rpc_pb2.RangeRequest(), rpc_pb2.RangeRequest()
    parse_dict(data, ours)
    json_format.ParseDict(data, theirs)
    assert ours == theirs and ours.limit == 5 and ours.revision == 7 and ours.keys_only
    ours, theirs = rpc_pb2.RangeRequest(), rpc_pb2.RangeRequest()
    parse_dict({"key": "Zm9v", "limit": None, "sort_order": "DESCEND"}, ours)  # null is the default
    json_format.ParseDict({"key": "Zm9v", "limit": None, "sort_order": "DESCEND"}, theirs)
    assert ours == theirs
    ours = rpc_pb2.RangeRequest()
    parse_dict({"key": "-_8="}, ours)  # the URL-safe alphabet too
    assert ours.key == b"\xfb\xff"


@pytest.mark.parametrize(
    "data",
    [
        {"no_such_field": 1},
        {"key": 5},
        {"key": "not base64!"},
        {"limit": "five"},
        {"limit": [1]},
        {"limit": 2**70},
        {"sort_order": "SIDEWAYS"},
        {"keys_only": "yes"},
    ],
)
def test_what_json_format_refuses_is_refused(data: Any) -> None:
    with pytest.raises((json_format.ParseError, ValueError, TypeError)):
        json_format.ParseDict(data, rpc_pb2.RangeRequest())
    with pytest.raises(ValueError):
        parse_dict(data, rpc_pb2.RangeRequest())


def test_a_body_that_is_not_an_object_is_refused() -> None:
    # (json_format takes `[]` for an empty request; grpc-gateway refuses it, and so do we.)
    with pytest.raises(ValueError):
        parse_dict([], rpc_pb2.RangeRequest())


def test_a_request_nested_without_end_is_refused() -> None:
    data: dict[str, Any] = {}
    inner = data
    for _ in range(150):  # a Txn's success ops hold requests that hold Txns...
        inner["request_txn"] = {"success": [{}]}
        inner = inner["request_txn"]["success"][0]
    with pytest.raises(ValueError):
        parse_dict({"success": [data]}, rpc_pb2.TxnRequest())


@pytest.mark.parametrize(
    "text",
    [
        '{"key": "Zm9v", "key": "YmFy"}',  # a key twice
        '{"limit": " 5"}',  # an integer with spaces
    ],
)
def test_json_texts_json_format_refuses_are_refused(text: str) -> None:
    with pytest.raises(json_format.ParseError):
        json_format.Parse(text, rpc_pb2.RangeRequest())
    with pytest.raises(ValueError):
        parse_json(text, rpc_pb2.RangeRequest())


def test_two_members_of_one_oneof_are_refused() -> None:
    text = '{"result": "EQUAL", "target": "VERSION", "key": "Zm9v", "version": "1", "mod_revision": "2"}'
    with pytest.raises(json_format.ParseError):
        json_format.Parse(text, rpc_pb2.Compare())
    with pytest.raises(ValueError):
        parse_json(text, rpc_pb2.Compare())


def test_json_texts_json_format_takes_are_taken_alike() -> None:
    import base64

    value = base64.encodebytes(bytes(range(200))).decode()  # MIME line breaks every 76 characters
    for text in ('{"key": "%s"}' % value.replace("\n", "\\n"), '{"sort_order": "1", "limit": "3"}'):
        ours, theirs = rpc_pb2.RangeRequest(), rpc_pb2.RangeRequest()
        parse_json(text, ours)
        json_format.Parse(text, theirs)
        assert ours == theirs
