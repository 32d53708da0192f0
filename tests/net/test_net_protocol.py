"""Frames of controls, without sockets: order, per-payload isolation, and what breaks a frame."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from ergo_py._messages import NOPROC, Panic
from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import (
    Call,
    DecodeError,
    Demonitor,
    Down,
    EncodeError,
    Exit,
    FramingError,
    Link,
    Monitor,
    Reply,
    Send,
    Unlink,
)
from ergo_py.net._codec import TAG_OBJECT
from ergo_py.net._protocol import DecodeProblem, build_frame, check_addresses, decode_frame, encode_control

A, B = "a@host", "b@host"
PA = PID(A, 1001, 1)
PB = PID(B, 2001, 2)
REF_A = Ref(A, 1, 5)

ALL_CONTROLS: list[Any] = [
    Send(PA, PB, {"x": (1, 2)}),
    Send(None, ProcessID("server", B), b"raw"),
    Call(PA, ProcessID("kv", B), REF_A, ("get", "key")),
    Reply(PB, Ref(B, 2, 9), True, [1, 2]),
    Reply(PB, Ref(B, 2, 10), False, ValueError("boom")),
    Monitor(PA, PB, REF_A),
    Monitor(PA, ProcessID("kv", B), REF_A),
    Demonitor(PA, PB, REF_A),
    Link(PA, PB),
    Unlink(PA, PB),
    Exit(PA, PB, Panic("RuntimeError: x")),
    Down(PB, PA, Ref(B, 2, 3), NOPROC),
    Down(PB, ProcessID("named", A), Ref(B, 2, 4), "normal"),
]


def frame_of(controls: list[Any]) -> bytes:
    return build_frame([encode_control(c) for c in controls])


def test_every_control_kind_round_trips_in_order() -> None:
    out = decode_frame(frame_of(ALL_CONTROLS), sender_node=A, receiver_node=B)
    expected = list(ALL_CONTROLS)
    # An unregistered exception travels as RemoteError; compare it separately.
    assert out[4].value.type_name == "builtins.ValueError"  # type: ignore[union-attr]
    out[4] = expected[4] = None  # type: ignore[call-overload]
    assert out == expected


@pytest.mark.parametrize("count", [1, 23, 24, 255, 256, 65_535, 65_536, 70_000])
def test_frame_array_header_sizes(count: int) -> None:
    assert cbor2.loads(build_frame([b"\x01"] * count)) == [1] * count


def test_many_controls_in_one_frame() -> None:
    controls = [Link(PA, PID(B, i, 2)) for i in range(300)]
    out = decode_frame(frame_of(controls), sender_node=A, receiver_node=B)
    assert [c.to.id for c in out] == list(range(300))  # type: ignore[union-attr]


def unregistered_payload() -> bytes:
    return cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["someone.Elses", 1]))


def raw_item(*fields: Any) -> bytes:
    return cbor2.dumps(list(fields))


def test_one_undecodable_send_is_dropped_and_the_rest_delivered() -> None:
    items = [
        encode_control(Send(PA, PB, 1)),
        raw_item(1, [A, 1001, 1], [B, 2001, 2], unregistered_payload()),
        raw_item(1, [A, 1001, 1], [B, 2001, 2], b"\xff\xff"),
        encode_control(Send(PA, PB, 3)),
    ]
    out = decode_frame(build_frame(items), sender_node=A, receiver_node=B)
    assert out[0] == Send(PA, PB, 1) and out[3] == Send(PA, PB, 3)
    problem = out[1]
    assert isinstance(problem, DecodeProblem) and problem.kind == "Send"
    assert problem.error.type_name == "someone.Elses"
    assert problem.deliver is None and problem.answer is None
    assert isinstance(out[2], DecodeProblem) and out[2].error.type_name is None


def test_undecodable_call_request_is_answered_with_an_error_reply() -> None:
    item = raw_item(2, [A, 1001, 1], [B, 2001, 2], [A, 1, 5], unregistered_payload())
    (problem,) = decode_frame(build_frame([item]), sender_node=A, receiver_node=B)
    assert isinstance(problem, DecodeProblem)
    reply = problem.answer
    assert reply is not None and reply.to == PA and reply.ref == REF_A and reply.ok is False
    assert isinstance(reply.value, DecodeError) and reply.value.type_name == "someone.Elses"
    # The reply itself must be sendable back.
    assert encode_control(reply)


@pytest.mark.parametrize(
    "item, kind",
    [
        (raw_item(3, [B, 2001, 2], [B, 2, 9], True, unregistered_payload()), Reply),
        (raw_item(8, [A, 1001, 1], [B, 2001, 2], unregistered_payload()), Exit),
        (raw_item(9, [B, 2001, 2], [A, 1001, 1], [B, 2, 3], unregistered_payload()), Down),
    ],
)
def test_undecodable_reply_exit_down_still_arrive_with_the_error(item: bytes, kind: Any) -> None:
    (problem,) = decode_frame(build_frame([item]), sender_node=A, receiver_node=B)
    assert isinstance(problem, DecodeProblem)
    delivered: Any = problem.deliver
    assert type(delivered) is kind
    value = delivered.value if kind is Reply else delivered.reason
    assert isinstance(value, DecodeError)
    if kind is Reply:
        assert delivered.ok is False


@pytest.mark.parametrize(
    "control",
    [
        Send(PID("c@host", 1, 1), PB, 1),  # a third node's process
        Send(PA, PID("c@host", 1, 1), 1),  # to a third node
        Call(PA, ProcessID("kv", "c@host"), REF_A, 1),
        Down(PB, PID("c@host", 1, 1), REF_A, NOPROC),
        Reply(PA, REF_A, True, 1),  # to the sender's own node
    ],
)
def test_misaddressed_controls_are_not_delivered(control: Any) -> None:
    assert check_addresses(control, A, B) is not None
    (problem,) = decode_frame(frame_of([control]), sender_node=A, receiver_node=B)
    assert isinstance(problem, DecodeProblem)
    assert "misaddressed" in problem.error.detail


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xff",
        cbor2.dumps([]),
        cbor2.dumps({"not": "a list"}),
        cbor2.dumps([[99, 1, 2]]),  # unknown kind
        cbor2.dumps([["1", 1]]),  # kind not an int
        cbor2.dumps([[1, [A, 1, 1], [B, 2, 2]]]),  # Send without payload
        cbor2.dumps([[1, [A, "1", 1], [B, 2, 2], b""]]),  # PID id not an int
        cbor2.dumps([[1, [A, True, 1], [B, 2, 2], b""]]),  # bool is not an int here
        cbor2.dumps([[1, None, [B, 2, 2], "payload must be bytes"]]),
        cbor2.dumps([[3, [B, 2, 2], [B, 2, 9], 1, b"\xf6"]]),  # ok must be a bool
        cbor2.dumps([cbor2.CBORTag(TAG_OBJECT, ["ergo_py.PID", A, 1, 1])]),  # tags are not framing
        frame_of([Link(PA, PB)]) + b"\x00",  # trailing garbage
        frame_of([Link(PA, PB), Link(PA, PB)])[:-3],  # truncated
    ],
)
def test_broken_frames_raise_framing_error(frame: bytes) -> None:
    with pytest.raises(FramingError):
        decode_frame(frame, sender_node=A, receiver_node=B)


def test_encoding_refuses_bad_controls_at_the_sender() -> None:
    with pytest.raises(EncodeError):
        encode_control(Send(PA, PB, object()))
    with pytest.raises(TypeError):
        encode_control(Send(PA, "not a pid", 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_control("not a control")  # type: ignore[arg-type]
