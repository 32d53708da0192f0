"""No input crashes a node: random and mutated bytes into the decoders, and into a live acceptor."""

from __future__ import annotations

from typing import Any

import trio
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from net_helpers import COOKIE, Cluster, raw_dial, url

from ergo_py._messages import Panic
from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import (
    Call,
    DecodeError,
    Down,
    Exit,
    FramingError,
    HandshakeError,
    Link,
    Monitor,
    Reply,
    Send,
    decode,
    encode,
)
from ergo_py.net._handshake import AcceptorHandshake, DialerHandshake
from ergo_py.net._protocol import build_frame, decode_frame, encode_control

A, B, C = "a@host", "b@host", "c@host"
PC, PA = PID(C, 9, 7), PID(A, 1, 1)

SAMPLE_CONTROLS: list[Any] = [
    Send(PC, PA, {"k": [1, (2, 3)], "b": b"\x00" * 20}),
    Send(None, ProcessID("svc", A), "text"),
    Call(PC, ProcessID("svc", A), Ref(C, 7, 1), ("get", 1)),
    Reply(PA, Ref(A, 1, 3), False, Panic("x")),
    Monitor(PC, PA, Ref(C, 7, 2)),
    Link(PC, PA),
    Exit(PC, PA, "normal"),
    Down(PA, PC, Ref(A, 1, 4), "noproc"),
]


def frame_of(controls: list[Any]) -> bytes:
    return build_frame([encode_control(c) for c in controls])


def mutate(args: tuple[bytes, list[tuple[int, int]], str]) -> bytes:
    data, edits, how = args
    buf = bytearray(data)
    for pos, byte in edits:
        if not buf:
            break
        i = pos % len(buf)
        if how == "flip":
            buf[i] = byte
        elif how == "insert":
            buf.insert(i, byte)
        else:
            del buf[i:]
    return bytes(buf)


valid_frames = st.lists(st.sampled_from(SAMPLE_CONTROLS), min_size=1, max_size=5).map(frame_of)
edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)
mutated_frames = st.tuples(valid_frames, edits, st.sampled_from(["flip", "insert", "truncate"])).map(mutate)
any_frame = st.one_of(st.binary(max_size=600), mutated_frames, valid_frames)

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(plain)
def test_plain_data_round_trips(value: Any) -> None:
    assert decode(encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.tuples(plain.map(encode), edits, st.sampled_from(["flip", "insert", "truncate"])).map(mutate),
    )
)
def test_payload_decoder_raises_only_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(any_frame)
def test_frame_decoder_raises_only_framing_error(data: bytes) -> None:
    try:
        results = decode_frame(data, sender_node=C, receiver_node=A)
    except FramingError:
        return
    assert isinstance(results, list) and results


def hello_bytes() -> bytes:
    d = DialerHandshake(local_name=C, creation=7, cookie=COOKIE, expected_peer=A, max_message_size=1 << 20)
    return d.data_to_send()[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.tuples(st.just(hello_bytes()), edits, st.sampled_from(["flip", "insert", "truncate"])).map(mutate),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_handshake_objects_raise_only_handshake_error(messages: list[bytes]) -> None:
    for hs in (
        AcceptorHandshake(local_name=A, creation=1, cookie=COOKIE, max_message_size=1 << 20),
        DialerHandshake(local_name=C, creation=7, cookie=COOKIE, expected_peer=A, max_message_size=1 << 20),
    ):
        for message in messages:
            try:
                hs.receive(message)
            except HandshakeError:
                break


async def feed(port: int, nursery: trio.Nursery, stage: str, inputs: list[bytes]) -> None:
    """Throw `inputs` at the acceptor at one stage of a connection; never wait long for it."""
    with trio.move_on_after(2):
        if stage == "tcp":
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            try:
                for data in inputs:
                    await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the acceptor hung up on our garbage: exactly what it should do
            await stream.aclose()
            return
        if stage == "handshake":
            ws = await trio_websocket.connect_websocket(nursery, "127.0.0.1", port, "/", use_ssl=False)
        else:
            ws, _ = await raw_dial(port, nursery, local_name=C, peer_name=A)
        try:
            for data in inputs:
                await ws.send_message(data)
            with trio.move_on_after(0.05):
                while True:
                    await ws.get_message()
        except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await ws.aclose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stage=st.sampled_from(["tcp", "handshake", "link"]), inputs=st.lists(any_frame, min_size=1, max_size=4))
async def test_live_acceptor_keeps_serving(stage: str, inputs: list[bytes]) -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            cluster = Cluster(nursery)
            try:
                a, ra = await cluster.start(A, handshake_timeout=0.5)
                await feed(a.port, nursery, stage, inputs)  # type: ignore[arg-type]
                b, _ = await cluster.start(B, routes={A: url(a)})
                b.send(A, Send(PID(B, 1, 1), PA, "still serving"))
                await ra.wait_for(lambda: any(peer == B for peer, _ in ra.controls))
                assert ra.controls[-1] == (B, Send(PID(B, 1, 1), PA, "still serving"))
            finally:
                await cluster.aclose()
                nursery.cancel_scope.cancel()
