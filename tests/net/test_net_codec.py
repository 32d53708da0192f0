"""The payload codec: what round-trips, what is refused at the sender, what a peer cannot make us build."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import attrs
import cbor2
import pytest

from ergo_py import _errors as ergo_errors
from ergo_py._messages import (
    NOCONNECTION,
    MessageDownNode,
    MessageDownPID,
    MessageDownProcessID,
    MessageExitPID,
    Panic,
)
from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import (
    DecodeError,
    EncodeError,
    HandshakeError,
    MessageTooLarge,
    NoConnection,
    RegistrationError,
    RemoteError,
    decode,
    encode,
    register_type,
)
from ergo_py.net._codec import TAG_OBJECT, TAG_TUPLE

PID_A = PID("a@host", 1001, 7)


@register_type(name="tests.net.Order")
@dataclass(frozen=True)
class Order:
    id: int
    items: list[str]
    owner: PID
    meta: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@register_type(name="tests.net.Tree")
@dataclass
class Tree:
    value: int
    children: list[Tree]


@register_type(name="tests.net.Color")
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@register_type(name="tests.net.Point")
@attrs.frozen
class Point:
    x: float
    y: float
    kind: Literal["2d", "3d"] = "2d"


@register_type(name="tests.net.AppError")
class AppError(Exception):
    pass


@register_type(name="tests.net.Overdrawn", fields=("account", "missing"))
class Overdrawn(Exception):
    def __init__(self, account: str, missing: int) -> None:
        super().__init__(f"account {account} is {missing} short")
        self.account = account
        self.missing = missing


class Unregistered:
    pass


@dataclass
class UnregisteredData:
    x: int


def roundtrip(value: Any) -> Any:
    return decode(encode(value))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**64 + 5,
        -(2**70),
        1.5,
        float("inf"),
        "",
        "héllo",
        b"",
        b"\x00\xff" * 10,
        [],
        [1, [2, [3]]],
        {},
        {"a": 1, 2: "b"},
        (),
        (1, (2, 3), [4, (5,)]),
        {(1, 2): "tuple key"},
        {1, 2, 3},
        frozenset({"x", "y"}),
        PID_A,
        ProcessID("server", "a@host"),
        Ref("a@host", 7, 42),
        {PID_A: [Ref("a@host", 7, 1)]},
        Panic("ValueError: boom", "Traceback ..."),
        MessageDownPID(PID_A, NOCONNECTION),
        MessageDownProcessID(ProcessID("n", "a@host"), Panic("x")),
        MessageDownNode("b@host"),
        MessageExitPID(PID_A, "normal"),
        Order(1, ["a", "b"], PID_A, {"k": (1, 2)}, "note"),
        Tree(1, [Tree(2, []), Tree(3, [Tree(4, [])])]),
        Color.BLUE,
        Point(1.0, 2.5, "3d"),
    ],
)
def test_values_round_trip_with_their_types(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_nested_types_are_preserved_inside_containers() -> None:
    value = {"t": (1, [2, (3,)]), "s": {frozenset({1})}, "o": [Order(2, [], PID_A)]}
    out = roundtrip(value)
    assert out == value
    assert type(out["t"]) is tuple and type(out["t"][1]) is list and type(out["t"][1][1]) is tuple
    assert type(next(iter(out["s"]))) is frozenset


def test_registered_exception_is_rebuilt_as_itself() -> None:
    out = roundtrip(AppError("nope", 3))
    assert type(out) is AppError and out.args == ("nope", 3)
    out = roundtrip(Overdrawn("acc-1", 25))
    assert type(out) is Overdrawn and (out.account, out.missing) == ("acc-1", 25)
    assert str(out) == "account acc-1 is 25 short"


def test_unregistered_exception_crosses_as_remote_error() -> None:
    out = roundtrip(KeyError("missing"))
    assert type(out) is RemoteError
    assert out.type_name == "builtins.KeyError"
    assert "missing" in out.message


def test_unregistered_subclass_of_registered_exception_is_not_confused_with_parent() -> None:
    class SubError(AppError):
        pass

    out = roundtrip(SubError("x"))
    assert type(out) is RemoteError
    assert out.type_name.endswith("SubError")


@pytest.mark.parametrize(
    "error",
    [
        NoConnection("b@host", "link lost"),
        HandshakeError("cookie", "wrong cookie", "b@host"),
        MessageTooLarge(100, 10),
        DecodeError("x.Y", "not registered"),
        EncodeError("x.Y", "not registered"),
        RemoteError("builtins.ValueError", "bad"),
        ergo_errors.CallTimeout(PID_A, 5.0),
        ergo_errors.ProcessUnknown(ProcessID("p", "a@host")),
        ergo_errors.ProcessExited(PID_A, Panic("x")),
    ],
)
def test_builtin_errors_round_trip_with_their_data(error: Exception) -> None:
    out = roundtrip(error)
    assert type(out) is type(error)
    assert str(out) == str(error)
    assert vars(out) == vars(error)


@pytest.mark.parametrize(
    "value, type_name",
    [
        (Unregistered(), "Unregistered"),
        (UnregisteredData(1), "UnregisteredData"),
        ([1, {"k": Unregistered()}], "Unregistered"),
        (datetime.datetime.now(), "datetime"),
        (decimal.Decimal("1.5"), "Decimal"),
        (uuid.uuid4(), "UUID"),
        (complex(1, 2), "complex"),
        (cbor2.CBORTag(TAG_OBJECT, ["ergo_py.PID", "x", 1, 2]), "CBORTag"),
        (object, "type"),
    ],
)
def test_unencodable_values_raise_encode_error_naming_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode(value)
    assert type_name in info.value.type_name


def test_subclass_of_registered_dataclass_is_refused() -> None:
    @dataclass(frozen=True)
    class SpecialOrder(Order):
        pass

    with pytest.raises(EncodeError, match="SpecialOrder"):
        encode(SpecialOrder(1, [], PID_A))


def test_cycles_are_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError):
        encode(cyclic)


def test_unknown_registered_name_is_a_decode_error_naming_it() -> None:
    data = cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["nobody.Knows", 1, 2]))
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.type_name == "nobody.Knows"
    assert "not registered" in str(info.value)


def test_wrong_field_count_is_a_decode_error_naming_the_type() -> None:
    data = cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["ergo_py.PID", "a@b", 1]))
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.type_name == "ergo_py.PID"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"\x82\x01",  # truncated array
        b"\x01\x02",  # trailing garbage
        cbor2.dumps(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)),  # tag 0
        cbor2.dumps(decimal.Decimal("1.1")),  # tag 4
        cbor2.dumps(cbor2.CBORTag(28, [1])),  # shared reference
        cbor2.dumps(cbor2.CBORTag(35, "a+")),  # regex
        cbor2.dumps(cbor2.CBORTag(99999, 1)),  # unknown tag
        cbor2.dumps(cbor2.CBORTag(TAG_TUPLE, {"a": 1})),  # tuple tag around a map
        cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, "not-an-array")),
        b"\x81" * 10_000 + b"\x01",  # nesting far beyond any real message
    ],
)
def test_malformed_input_raises_only_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


def test_registration_checks_field_types() -> None:
    with pytest.raises(RegistrationError, match="field 'when'"):

        @register_type(name="tests.net.BadDate")
        @dataclass
        class BadDate:
            when: datetime.datetime

    with pytest.raises(RegistrationError, match="register that type first"):

        @register_type(name="tests.net.BadNested")
        @dataclass
        class BadNested:
            inner: list[UnregisteredData]

    with pytest.raises(RegistrationError, match="only dataclasses"):
        register_type(Unregistered, name="tests.net.Plain")


def test_registration_accepts_containers_unions_and_registered_fields() -> None:
    @register_type(name="tests.net.Rich")
    @dataclass
    class Rich:
        a: dict[str, list[tuple[int, ...]]]
        b: int | None
        c: frozenset[str]
        d: Order
        e: Color
        f: Any

    value = Rich({"k": [(1, 2)]}, None, frozenset({"z"}), Order(3, [], PID_A), Color.RED, [1])
    assert roundtrip(value) == value


def test_registration_names_are_unique() -> None:
    @dataclass
    class One:
        x: int

    @dataclass
    class Two:
        x: int

    register_type(One, name="tests.net.Unique")
    register_type(One, name="tests.net.Unique")  # the same class again is fine
    with pytest.raises(RegistrationError, match="already used"):
        register_type(Two, name="tests.net.Unique")
    with pytest.raises(RegistrationError, match="already registered"):
        register_type(One, name="tests.net.OtherName")


def test_default_registration_name_is_module_and_qualname() -> None:
    @register_type
    @dataclass
    class Local:
        x: int

    data = encode(Local(1))
    assert b"test_net_codec.test_default_registration_name_is_module_and_qualname.<locals>.Local" in data
    assert roundtrip(Local(2)) == Local(2)


@dataclass(frozen=True)
class Pair:
    x: int
    y: int


def _pair_from_wire(values: list[Any]) -> Pair:
    if len(values) != 1 or type(values[0]) is not list or len(values[0]) != 2:
        raise ValueError("expected [[x, y]]")
    return Pair(*values[0])


register_type(Pair, name="tests.net.Pair", wire=(lambda p: [[p.x, p.y]], _pair_from_wire))


def test_custom_wire_form_round_trips_and_is_what_crosses() -> None:
    data = encode(Pair(3, 4))
    assert list(cbor2.loads(data).value) == ["tests.net.Pair", (3, 4)]  # cbor2 gives tagged arrays as tuples
    assert roundtrip(Pair(3, 4)) == Pair(3, 4)
    assert roundtrip([Pair(1, 2), (Pair(5, 6),)]) == [Pair(1, 2), (Pair(5, 6),)]


def test_custom_wire_form_refusing_a_peers_values_is_a_decode_error() -> None:
    data = cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["tests.net.Pair", [1, 2, 3]]))
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.type_name == "tests.net.Pair"
    assert "expected [[x, y]]" in str(info.value)


def test_custom_wire_form_needs_two_callables_and_no_fields() -> None:
    @dataclass
    class Bad:
        x: int

    with pytest.raises(RegistrationError, match="wire="):
        register_type(Bad, name="tests.net.Bad", wire=(lambda b: [b.x], None))  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="wire="):
        register_type(Bad, name="tests.net.Bad", fields=("x",), wire=(lambda b: [b.x], lambda v: Bad(*v)))
