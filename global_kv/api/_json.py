"""proto3 JSON for the gateway: protobuf's `json_format`, minus its cost per field.

`json_format` re-inspects every field's descriptor on every call and goes through a
generic printer and parser; on a gateway request that was 12 % of a follower's CPU
(py-spy, get at C=64 through the gateway), more than the read itself. Here each message
type gets a plan once (its fields by JSON and proto names, with a converter per kind),
and a message's fields are read by name. The mapping is the one `json_format` gives
with `preserving_proto_field_name=True`: 64-bit integers as strings, bytes in base64,
enums by name, fields at their default left out; a parse takes either field name,
integers as numbers or strings, and refuses unknown fields and wrong types with
`ValueError`. A message type this does not plan for (maps, well-known types; etcd's
protos have neither) goes to `json_format`. `tests/api/test_json.py` holds it to
`json_format` on every message type of the API.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["message_to_dict", "parse_dict", "parse_json"]

_INT64 = frozenset(
    (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    )
)
_INT32 = frozenset(
    (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
    )
)
_FLOAT = frozenset((FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE))
_MAX_DEPTH = 100  # json_format's limit on nesting too


def _plannable(descriptor: Descriptor, seen: set[str] | None = None) -> bool:
    """No maps and no well-known types anywhere below (json_format treats those specially)."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return True
    seen.add(descriptor.full_name)
    if descriptor.full_name.startswith("google.protobuf.") or descriptor.GetOptions().map_entry:
        return False
    return all(f.message_type is None or _plannable(f.message_type, seen) for f in descriptor.fields)


# -- printing --------------------------------------------------------------------------------------
def _float_out(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _printer(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How a field's value is written; None for the kinds JSON takes as they are."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _to_dict
    if kind in _INT64:
        return str
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("ascii")
    if kind == FieldDescriptor.TYPE_ENUM:
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda value: names.get(value, value)
    if kind in _FLOAT:
        return _float_out
    return None  # int32 kinds, bool, string


# Per message type: (name, kind, convert) per field, kind: 0 scalar without presence (left out
# at its default), 1 with presence (HasField), 2 repeated. Reading the fields by name costs a
# third of what ListFields does. None for a type left to json_format.
_Plan = list[tuple[str, int, Callable[[Any], Any] | None]]


@functools.cache
def _print_plan(descriptor: Descriptor) -> _Plan | None:
    if not _plannable(descriptor):
        return None
    return [(f.name, 2 if f.is_repeated else 1 if f.has_presence else 0, _printer(f)) for f in descriptor.fields]


def _to_dict(message: Message) -> dict[str, Any]:
    plan = _print_plan(message.DESCRIPTOR)
    if plan is None:
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    out: dict[str, Any] = {}
    for name, kind, convert in plan:
        if kind == 0:
            value = getattr(message, name)
            if value:
                out[name] = value if convert is None else convert(value)
        elif kind == 1:
            if message.HasField(name):
                value = getattr(message, name)
                out[name] = value if convert is None else convert(value)
        else:
            values = getattr(message, name)
            if values:
                out[name] = list(values) if convert is None else [convert(v) for v in values]
    return out


def message_to_dict(message: Message) -> dict[str, Any]:
    """What `json_format.MessageToDict(message, preserving_proto_field_name=True)` gives."""
    return _to_dict(message)


# -- parsing ---------------------------------------------------------------------------------------
def _int_in(value: Any, what: str) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value == value.strip():
        try:
            return int(value)
        except ValueError:
            pass
    elif type(value) is float and value.is_integer():
        return int(value)
    raise ValueError(f"{what}: not an integer: {value!r}")


def _bytes_in(value: Any, what: str) -> bytes:
    if type(value) is not str:
        raise ValueError(f"{what}: expected a base64 string, got {type(value).__name__}")
    # As json_format: either alphabet, padding optional, characters outside it (a MIME
    # encoder's line breaks) skipped.
    encoded = value.encode("utf-8")
    try:
        return base64.urlsafe_b64decode(encoded.replace(b"+", b"-").replace(b"/", b"_") + b"=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what}: not base64: {value!r}") from None


def _float_in(value: Any, what: str) -> float:
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    if type(value) in (int, float) or type(value) is str:
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{what}: not a number: {value!r}")


def _typed(kind: type, label: str) -> Callable[[Any, str], Any]:
    def check(value: Any, what: str) -> Any:
        if type(value) is not kind:
            raise ValueError(f"{what}: expected {label}, got {type(value).__name__}")
        return value

    return check


def _enum_in(field: FieldDescriptor) -> Callable[[Any, str], Any]:
    by_name = {v.name: v.number for v in field.enum_type.values}

    def convert(value: Any, what: str) -> int:
        if type(value) is str and value in by_name:
            return by_name[value]
        if type(value) is int:
            return value
        if type(value) is str:
            try:
                return int(value)  # a number in a string, as json_format takes it
            except ValueError:
                pass
        raise ValueError(f"{what}: not a value of {field.enum_type.name}: {value!r}")

    return convert


def _scalar_in(field: FieldDescriptor) -> Callable[[Any, str], Any]:
    kind = field.type
    if kind in _INT64 or kind in _INT32:
        return _int_in
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes_in
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum_in(field)
    if kind in _FLOAT:
        return _float_in
    if kind == FieldDescriptor.TYPE_BOOL:
        return _typed(bool, "true or false")
    return _typed(str, "a string")


class _Field:
    __slots__ = ("convert", "is_message", "name", "oneof", "repeated")

    def __init__(self, field: FieldDescriptor) -> None:
        self.name = field.name
        self.oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        self.repeated = field.is_repeated
        self.is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        self.convert = None if self.is_message else _scalar_in(field)


@functools.cache
def _parse_plan(descriptor: Descriptor) -> dict[str, _Field] | None:
    """The fields of a message type by proto and JSON name; None for a type left to json_format."""
    if not _plannable(descriptor):
        return None
    plan: dict[str, _Field] = {}
    for f in descriptor.fields:
        plan[f.name] = plan[f.json_name] = _Field(f)
    return plan


def _fill(message: Message, data: Any, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    if type(data) is not dict:
        raise ValueError(f"{descriptor.name}: expected an object, got {type(data).__name__}")
    if depth > _MAX_DEPTH:
        raise ValueError("message nested too deeply")
    plan = _parse_plan(descriptor)
    if plan is None:
        json_format.ParseDict(data, message)
        return
    seen: set[str] = set()
    for key, value in data.items():
        entry = plan.get(key)
        if entry is None:
            raise ValueError(f'{descriptor.full_name} has no field named "{key}"')
        if entry.name in seen:
            raise ValueError(f'{descriptor.full_name}: field "{entry.name}" given twice')
        seen.add(entry.name)
        if value is None:
            continue  # null: the default (json_format does the same)
        if entry.oneof is not None:
            if entry.oneof in seen:
                raise ValueError(f'{descriptor.full_name}: more than one field of oneof "{entry.oneof}"')
            seen.add(entry.oneof)
        what = f"{descriptor.name}.{entry.name}"
        if entry.repeated:
            if type(value) is not list:
                raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
            target = getattr(message, entry.name)
            if entry.is_message:
                for item in value:
                    _fill(target.add(), item, depth + 1)
            else:
                target.extend(entry.convert(item, what) for item in value)  # type: ignore[misc]
        elif entry.is_message:
            sub = getattr(message, entry.name)
            sub.SetInParent()
            _fill(sub, value, depth + 1)
        else:
            setattr(message, entry.name, entry.convert(value, what))  # type: ignore[misc]


def parse_dict(data: Any, message: Message) -> None:
    """Fill `message` from parsed JSON, as `json_format.ParseDict` would; raises ValueError."""
    _fill(message, data, 0)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json(text: bytes | str, message: Message) -> None:
    """Fill `message` from a JSON text, as `json_format.Parse` would (a key given twice is
    refused); raises ValueError (or RecursionError for a text nested without end)."""
    parse_dict(json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_int), message)


def _int(text: str) -> int:
    # No field holds more than 20 digits: a longer number is refused before Python
    # converts it (and says "use sys.set_int_max_str_digits()" past 4,300 digits).
    digits = len(text.lstrip("-"))
    if digits > 20:
        raise ValueError(f"a number of {digits} digits is out of range for every field")
    return int(text)
