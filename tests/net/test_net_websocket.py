"""The links' own websocket (`ergo_py.net._websocket`) against implementations we did not write.

trio-websocket and a hand-driven wsproto peer stand for any RFC 6455 peer: our client
talks to their server, their client to our server, and the hand-driven peer sends what
a correct peer never would (unmasked frames, a frame claiming a terabyte, reserved
bits, broken UTF-8) and must get the RFC's close code, not a crash or an allocation.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket
from net_helpers import HandPeer
from wsproto.events import BytesMessage, Message, Ping, Pong, TextMessage

from ergo_py.net._fast_stream import FastSocketStream
from ergo_py.net._websocket import (
    ConnectionClosed,
    UpgradeRefused,
    WebSocket,
    _frame,
    accept_websocket,
    connect_websocket,
)

LIMIT = 1 << 20


@asynccontextmanager
async def our_server(handler: Callable[[WebSocket], Awaitable[None]]) -> AsyncIterator[tuple[int, list[BaseException]]]:
    """A server of ours on an ephemeral port; what the handlers raised is collected, not raised."""
    errors: list[BaseException] = []

    async def serve(stream: trio.SocketStream) -> None:
        try:
            ws = await accept_websocket(FastSocketStream(stream), max_message_size=LIMIT)
            await handler(ws)
        except Exception as exc:
            errors.append(exc)
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1], errors
        nursery.cancel_scope.cancel()


async def echo(ws: WebSocket) -> None:
    while True:
        await ws.send_message(await ws.get_message())


@asynccontextmanager
async def hand_peer(port: int) -> AsyncIterator[HandPeer]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        peer = HandPeer(stream)
        await peer.open(port)
        yield peer
    finally:
        await stream.aclose()


async def test_our_client_with_a_trio_websocket_server() -> None:
    seen: list[object] = []

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = await ws.get_message()
                seen.append(message)
                await ws.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            seen.append(exc.reason.code if exc.reason else None)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
            stream = FastSocketStream(await trio.open_tcp_stream("127.0.0.1", server.port))
            ws = await connect_websocket(stream, f"127.0.0.1:{server.port}", "/", max_message_size=LIMIT)
            big = bytes(range(256)) * 800  # 200 KiB: a 64-bit length, several reads
            for message in (b"one", "two, as text", big, b""):
                await ws.send_message(message)
                assert await ws.get_message() == message
            async with trio.open_nursery() as pinging:
                pinging.start_soon(ws.ping)  # its pong is seen by the reader below, before the echo
                await trio.sleep(0.05)
                await ws.send_message(b"after the ping")
                assert await ws.get_message() == b"after the ping"
            await ws.aclose(4001, "bye")
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    assert seen == [b"one", "two, as text", big, b"", b"after the ping", 4001]


async def test_a_trio_websocket_client_with_our_server() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, errors), trio.open_nursery() as nursery:
            ws = await trio_websocket.connect_websocket(nursery, "127.0.0.1", port, "/", use_ssl=False)
            for message in (b"x" * 70_000, "text", b""):
                await ws.send_message(message)
                assert await ws.get_message() == message
            await ws.ping(b"are you there")  # answered by our reader, in the echo loop
            await ws.aclose(4000, "done here")
            await trio.sleep(0.1)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed)
    assert (errors[0].reason.code, errors[0].reason.reason) == (4000, "done here")


async def test_fragments_and_pings_between_them_make_one_message() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, _), hand_peer(port) as peer:
            await peer.send(Message(data=b"abc", message_finished=False))
            await peer.send(Ping(b"p"))
            await peer.send(Message(data=b"def", message_finished=True))
            assert isinstance(await peer.next_event(), Pong)
            event = await peer.next_event()
            assert isinstance(event, BytesMessage) and bytes(event.data) == b"abcdef"
            await peer.send(TextMessage(data="h", message_finished=False))
            await peer.send(TextMessage(data="é", message_finished=True))
            event = await peer.next_event()
            assert isinstance(event, TextMessage) and event.data == "hé"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x82\x03abc", 1002),  # unmasked binary frame from a client
        (b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0", 1009),  # claims a terabyte
        (b"\xc2\x80\0\0\0\0", 1002),  # RSV1 set, no extension negotiated
        (b"\x83\x80\0\0\0\0", 1002),  # opcode 3 is reserved
        (b"\x09\x80\0\0\0\0", 1002),  # a fragmented ping
        (b"\x81\x82\0\0\0\0\xff\xfe", 1007),  # text that is not UTF-8
        (b"\x80\x80\0\0\0\0", 1002),  # a continuation with nothing to continue
    ],
)
async def test_a_frame_no_correct_peer_sends_closes_with_the_rfc_code(raw: bytes, code: int) -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, errors), hand_peer(port) as peer:
            await peer.stream.send_all(raw)
            assert await peer.close_code() == code
            await trio.sleep(0.05)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed) and not errors[0].by_peer
    assert errors[0].reason.code == code


async def test_a_message_over_the_limit_in_fragments_closes_with_1009() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, _), hand_peer(port) as peer:
            first = b"\x02\x83\0\0\0\0abc"  # a binary message begun, not finished (masked, key 0)
            rest = b"\x80\xff" + (LIMIT - 2).to_bytes(8, "big") + b"\0\0\0\0"  # its end: 3 bytes too many
            await peer.stream.send_all(first + rest)
            assert await peer.close_code() == 1009


async def test_what_is_not_a_websocket_upgrade_is_refused_with_http_400() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, errors):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while data := await stream.receive_some(65536):
                answer += data
            assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"not a websocket upgrade")
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert await stream.receive_some(65536) == b""
            await trio.sleep(0.05)
    assert [type(e) for e in errors] == [UpgradeRefused, UpgradeRefused]


async def test_a_peer_that_vanishes_is_a_1006() -> None:
    async def read_one(ws: WebSocket) -> None:
        await ws.get_message()

    with trio.fail_after(10):
        async with our_server(read_one) as (port, errors), hand_peer(port) as peer:
            await peer.stream.aclose()
            await trio.sleep(0.1)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed) and errors[0].reason.code == 1006


async def test_empty_fragments_without_end_count_toward_the_limit() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, _), hand_peer(port) as peer:
            # the last fragment is the one over the limit: no unread bytes make the close a reset
            await peer.stream.send_all(b"\x02\x80\0\0\0\0" + b"\x00\x80\0\0\0\0" * (LIMIT // 16))
            assert await peer.close_code() == 1009


async def test_a_ping_inside_a_message_near_the_limit_is_answered() -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, _), hand_peer(port) as peer:
            await peer.send(Message(data=b"x" * (LIMIT - 100), message_finished=False))
            await peer.send(Ping(b"p" * 100))
            assert isinstance(await peer.next_event(), Pong)
            await peer.send(Message(data=b"y" * 50, message_finished=True))
            size, finished = 0, False
            while not finished:
                event = await peer.next_event()
                assert isinstance(event, BytesMessage)
                size, finished = size + len(event.data), event.message_finished
            assert size == LIMIT - 50


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 2000, 5000])
async def test_a_close_code_no_one_may_send_is_a_protocol_error(code: int) -> None:
    with trio.fail_after(10):
        async with our_server(echo) as (port, errors), hand_peer(port) as peer:
            await peer.stream.send_all(b"\x88\x82\0\0\0\0" + code.to_bytes(2, "big"))
            assert await peer.close_code() == 1002
            await trio.sleep(0.05)
    assert errors[0].reason.code == 1002  # type: ignore[attr-defined]


async def test_after_a_write_cut_off_no_frame_follows_not_even_the_close() -> None:
    a, b = trio.testing.lockstep_stream_pair()
    ws = WebSocket(a, client=False, data=b"", max_message_size=LIMIT)
    with trio.move_on_after(0.05):
        await ws.send_message(b"x" * 1000)  # nobody reads b: the write is cut off
    with trio.fail_after(2):
        await ws.aclose(1000, "bye")
    assert ws.closed is not None and ws.closed.code == 1006
    with pytest.raises(ConnectionClosed):
        await ws.send_message(b"more")
    await b.aclose()


async def test_what_the_socket_did_not_take_is_written_first_by_the_next_send() -> None:
    left, right = socket.socketpair()
    ours = FastSocketStream(trio.SocketStream(trio.socket.from_stdlib_socket(left)))
    theirs = FastSocketStream(trio.SocketStream(trio.socket.from_stdlib_socket(right)))
    ws = WebSocket(ours, client=False, data=b"", max_message_size=LIMIT)
    peer = WebSocket(theirs, client=True, data=b"", max_message_size=LIMIT)
    chunk = bytes(range(256)) * 256  # 64 KiB: a few fill the unread socket pair
    sent = 0
    while not ws.has_tail:
        assert ws.send_nowait(chunk)
        sent += 1
    assert not ws.can_send_nowait() and not ws.send_nowait(b"refused")  # nothing may pass the tail
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.send_message, b"last")  # writes the tail first
            for _ in range(sent):
                assert await peer.get_message() == chunk
            assert await peer.get_message() == b"last"
    assert not ws.has_tail and ws.can_send_nowait()
    await ours.aclose()
    await theirs.aclose()


async def test_a_large_masked_message_is_unmasked_with_the_loop_running() -> None:
    payload = bytes(range(256)) * (16 << 10)  # 4 MiB
    frame = _frame(0x2, payload, True)  # as a client sends it
    a, _ = trio.testing.memory_stream_pair()
    ws = WebSocket(a, client=False, data=frame, max_message_size=8 << 20)  # the frame already buffered
    ran = 0

    async def other_task() -> None:
        nonlocal ran
        while True:
            await trio.lowlevel.checkpoint()
            ran += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        assert await ws.get_message() == payload
        nursery.cancel_scope.cancel()
    assert ran >= 8  # it yielded between pieces (4 MiB in 256 KiB pieces): the node goes on meanwhile
