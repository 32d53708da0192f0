"""The link protocol after the handshake: control messages and the frames that carry them.

A control is one remote operation (send, call, reply, monitor, ...), a frozen
value the Node builds and hands to the network. On the wire a frame is one
websocket binary message holding a CBOR array of controls; each control is an
array `[kind, ids..., payload]` whose ids are plain arrays and whose payload
(message, request, reply value, reason) is itself a CBOR byte string encoded by
the codec. Keeping each payload separate is what lets one undecodable payload be
dropped (or answered with an error) while the rest of the frame is delivered; a
frame whose structure is wrong raises `FramingError` and the link is closed.

Several queued controls share one frame (coalescing), which is where the
throughput of a link comes from.

This module is sans-IO: it must never import trio, touch a socket or read a
clock. Every check a peer's bytes must pass lives here, at one boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2

from ergo_py.ids import PID, ProcessID, Ref

from ._codec import CODEC, Codec, decode_plain
from ._errors import DecodeError, FramingError

__all__ = [
    "CONTROL_TYPES",
    "FRAME_OVERHEAD",
    "Call",
    "Control",
    "DecodeProblem",
    "Demonitor",
    "Down",
    "Exit",
    "Link",
    "Monitor",
    "Reply",
    "Send",
    "Unlink",
    "build_frame",
    "check_addresses",
    "decode_frame",
    "encode_control",
]


@dataclass(frozen=True, slots=True)
class Send:
    """A message from a process (or from outside any process: `from_` None)."""

    from_: PID | None
    to: PID | ProcessID
    message: Any


@dataclass(frozen=True, slots=True)
class Call:
    """A request that expects a `Reply` to `from_` carrying the same `ref`."""

    from_: PID
    to: PID | ProcessID
    ref: Ref
    request: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a `Call`; with `ok` False, `value` is the exception the caller raises."""

    to: PID
    ref: Ref
    ok: bool
    value: Any


@dataclass(frozen=True, slots=True)
class Monitor:
    """`from_` asks to be told (by a `Down`) when `target` ends."""

    from_: PID
    target: PID | ProcessID
    ref: Ref


@dataclass(frozen=True, slots=True)
class Demonitor:
    """`from_` withdraws the monitor `ref` on `target`."""

    from_: PID
    target: PID | ProcessID
    ref: Ref


@dataclass(frozen=True, slots=True)
class Link:
    """`from_` links itself to `to`."""

    from_: PID
    to: PID


@dataclass(frozen=True, slots=True)
class Unlink:
    """`from_` removes its link to `to`."""

    from_: PID
    to: PID


@dataclass(frozen=True, slots=True)
class Exit:
    """A linked process `from_` ended with `reason` (an exit signal to `to`)."""

    from_: PID
    to: PID
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """The monitor `ref` held by `to` on `target` fired with `reason`."""

    to: PID
    target: PID | ProcessID
    ref: Ref
    reason: Any


Control = Send | Call | Reply | Monitor | Demonitor | Link | Unlink | Exit | Down
CONTROL_TYPES: tuple[type, ...] = (Send, Call, Reply, Monitor, Demonitor, Link, Unlink, Exit, Down)

_SEND, _CALL, _REPLY, _MONITOR, _DEMONITOR, _LINK, _UNLINK, _EXIT, _DOWN = range(1, 10)

# The largest CBOR array header a frame needs (up to 2**32 items).
FRAME_OVERHEAD = 5


@dataclass(frozen=True, slots=True)
class DecodeProblem:
    """A control that arrived but cannot be delivered as sent.

    `error` says why (log it, naming the peer). `deliver` is what to hand to the
    node instead, if anything: a `Reply` or `Down` or `Exit` whose payload could
    not be decoded still arrives, with the `DecodeError` as its value or reason,
    so that a caller, monitor or link is not left waiting forever. `answer` is a
    `Reply` to send back to the peer (a `Call` whose request could not be decoded
    gets an error reply).
    """

    kind: str
    error: DecodeError
    deliver: Control | None = None
    answer: Reply | None = None


# -- encoding ----------------------------------------------------------------------------


def _pid(p: PID) -> list[Any]:
    return [p.node, p.id, p.creation]


def _target(t: PID | ProcessID) -> list[Any]:
    if type(t) is PID:
        return [t.node, t.id, t.creation]
    if type(t) is ProcessID:
        return [t.name, t.node]
    raise TypeError(f"expected a PID or ProcessID, got {type(t).__name__}")


def _ref(r: Ref) -> list[Any]:
    if type(r) is not Ref:
        raise TypeError(f"expected a Ref, got {type(r).__name__}")
    return [r.node, r.creation, r.id]


def _check_pid(p: Any) -> PID:
    if type(p) is not PID:
        raise TypeError(f"expected a PID, got {type(p).__name__}")
    return p


def encode_control(control: Control, codec: Codec = CODEC) -> bytes:
    """The bytes of one control inside a frame; raises `EncodeError` for an unencodable payload."""
    t = type(control)
    if t is Send:
        c: Any = control
        from_ = None if c.from_ is None else _pid(_check_pid(c.from_))
        item: list[Any] = [_SEND, from_, _target(c.to), codec.encode(c.message)]
    elif t is Call:
        c = control
        item = [_CALL, _pid(_check_pid(c.from_)), _target(c.to), _ref(c.ref), codec.encode(c.request)]
    elif t is Reply:
        c = control
        item = [_REPLY, _pid(_check_pid(c.to)), _ref(c.ref), bool(c.ok), codec.encode(c.value)]
    elif t is Monitor or t is Demonitor:
        c = control
        kind = _MONITOR if t is Monitor else _DEMONITOR
        item = [kind, _pid(_check_pid(c.from_)), _target(c.target), _ref(c.ref)]
    elif t is Link or t is Unlink:
        c = control
        kind = _LINK if t is Link else _UNLINK
        item = [kind, _pid(_check_pid(c.from_)), _pid(_check_pid(c.to))]
    elif t is Exit:
        c = control
        item = [_EXIT, _pid(_check_pid(c.from_)), _pid(_check_pid(c.to)), codec.encode(c.reason)]
    elif t is Down:
        c = control
        item = [_DOWN, _pid(_check_pid(c.to)), _target(c.target), _ref(c.ref), codec.encode(c.reason)]
    else:
        raise TypeError(f"not a control message: {type(control).__name__}")
    data: bytes = cbor2.dumps(item)
    return data


def _array_header(n: int) -> bytes:
    if n < 24:
        return bytes((0x80 | n,))
    if n < 0x100:
        return bytes((0x98, n))
    if n < 0x10000:
        return b"\x99" + n.to_bytes(2, "big")
    return b"\x9a" + n.to_bytes(4, "big")


def build_frame(items: list[bytes]) -> bytes:
    """One frame carrying the encoded controls `items`, in order."""
    return _array_header(len(items)) + b"".join(items)


def check_addresses(control: Control, sender_node: str, receiver_node: str) -> str | None:
    """None if `control` travels from `sender_node` to `receiver_node`, else what is wrong.

    A node may only speak for its own processes and only to the node it is
    linked with: a control naming a third node is a bug (or an impostor).
    """
    t = type(control)
    c: Any = control
    if t is Send or t is Call:
        origin, dest = c.from_, c.to
    elif t is Reply:
        origin, dest = None, c.to
    elif t is Monitor or t is Demonitor:
        origin, dest = c.from_, c.target
    elif t is Down:
        origin, dest = c.target, c.to
    else:
        origin, dest = c.from_, c.to
    if origin is not None and origin.node != sender_node:
        return f"{t.__name__} from {origin!r}, which is not on the sending node {sender_node}"
    if dest.node != receiver_node:
        return f"{t.__name__} to {dest!r}, which is not on the receiving node {receiver_node}"
    return None


# -- decoding ----------------------------------------------------------------------------


def _frame_error(detail: str) -> FramingError:
    return FramingError(detail)


def _read_pid(v: Any) -> PID:
    if type(v) is list and len(v) == 3 and type(v[0]) is str and type(v[1]) is int and type(v[2]) is int:
        return PID(v[0], v[1], v[2])
    raise _frame_error(f"expected a PID [node, id, creation], got {v!r:.80}")


def _read_target(v: Any) -> PID | ProcessID:
    if type(v) is list and len(v) == 2 and type(v[0]) is str and type(v[1]) is str:
        return ProcessID(v[0], v[1])
    return _read_pid(v)


def _read_ref(v: Any) -> Ref:
    if type(v) is list and len(v) == 3 and type(v[0]) is str and type(v[1]) is int and type(v[2]) is int:
        return Ref(v[0], v[1], v[2])
    raise _frame_error(f"expected a Ref [node, creation, id], got {v!r:.80}")


def _read_payload(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    raise _frame_error(f"expected a payload byte string, got {type(v).__name__}")


def _expect_len(item: list[Any], n: int, name: str) -> None:
    if len(item) != n:
        raise _frame_error(f"{name} needs {n} elements, got {len(item)}")


def _parse_item(item: Any, codec: Codec) -> Control | DecodeProblem:
    """One control from its decoded array; payload failures become a `DecodeProblem`."""
    if type(item) is not list or not item or type(item[0]) is not int:
        raise _frame_error(f"a control must be an array starting with its kind, got {item!r:.80}")
    kind = item[0]
    if kind == _SEND:
        _expect_len(item, 4, "Send")
        from_ = None if item[1] is None else _read_pid(item[1])
        to = _read_target(item[2])
        raw = _read_payload(item[3])
        try:
            return Send(from_, to, codec.decode(raw))
        except DecodeError as exc:
            return DecodeProblem("Send", exc)
    if kind == _CALL:
        _expect_len(item, 5, "Call")
        caller, to, ref, raw = (
            _read_pid(item[1]),
            _read_target(item[2]),
            _read_ref(item[3]),
            _read_payload(item[4]),
        )
        try:
            return Call(caller, to, ref, codec.decode(raw))
        except DecodeError as exc:
            return DecodeProblem("Call", exc, answer=Reply(caller, ref, False, exc))
    if kind == _REPLY:
        _expect_len(item, 5, "Reply")
        to_pid, ref, ok, raw = _read_pid(item[1]), _read_ref(item[2]), item[3], _read_payload(item[4])
        if type(ok) is not bool:
            raise _frame_error("Reply ok must be a boolean")
        try:
            return Reply(to_pid, ref, ok, codec.decode(raw))
        except DecodeError as exc:
            return DecodeProblem("Reply", exc, deliver=Reply(to_pid, ref, False, exc))
    if kind == _MONITOR or kind == _DEMONITOR:
        name = "Monitor" if kind == _MONITOR else "Demonitor"
        _expect_len(item, 4, name)
        cls = Monitor if kind == _MONITOR else Demonitor
        return cls(_read_pid(item[1]), _read_target(item[2]), _read_ref(item[3]))
    if kind == _LINK or kind == _UNLINK:
        _expect_len(item, 3, "Link" if kind == _LINK else "Unlink")
        lcls = Link if kind == _LINK else Unlink
        return lcls(_read_pid(item[1]), _read_pid(item[2]))
    if kind == _EXIT:
        _expect_len(item, 4, "Exit")
        from_pid, to_pid, raw = _read_pid(item[1]), _read_pid(item[2]), _read_payload(item[3])
        try:
            return Exit(from_pid, to_pid, codec.decode(raw))
        except DecodeError as exc:
            return DecodeProblem("Exit", exc, deliver=Exit(from_pid, to_pid, exc))
    if kind == _DOWN:
        _expect_len(item, 5, "Down")
        to_pid, target, ref, raw = (
            _read_pid(item[1]),
            _read_target(item[2]),
            _read_ref(item[3]),
            _read_payload(item[4]),
        )
        try:
            return Down(to_pid, target, ref, codec.decode(raw))
        except DecodeError as exc:
            return DecodeProblem("Down", exc, deliver=Down(to_pid, target, ref, exc))
    raise _frame_error(f"unknown control kind {kind}")


def decode_frame(
    data: bytes, *, sender_node: str, receiver_node: str, codec: Codec = CODEC
) -> list[Control | DecodeProblem]:
    """The controls of one frame, in order; raises `FramingError` if the frame itself is broken.

    A control naming a node other than the two ends of the link is not delivered:
    it becomes a `DecodeProblem` (the rest of the frame is unaffected).
    """
    try:
        items = decode_plain(data)
    except DecodeError as exc:
        raise _frame_error(exc.detail) from None
    if type(items) is not list or not items:
        raise _frame_error("a frame must be a non-empty array of controls")
    out: list[Control | DecodeProblem] = []
    append: Callable[[Control | DecodeProblem], None] = out.append
    for item in items:
        result = _parse_item(item, codec)
        if type(result) is not DecodeProblem:
            problem = check_addresses(result, sender_node, receiver_node)  # type: ignore[arg-type]
            if problem is not None:
                result = DecodeProblem(type(result).__name__, DecodeError(None, f"misaddressed: {problem}"))
        append(result)
    return out
