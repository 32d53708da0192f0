"""gRPC's wire protocol over HTTP/2, served on trio with h2 (a sans-IO HTTP/2 library).

Why not grpcio's server: it runs its own threads and event loop, so every call would
cross into the node's trio loop and back, and it cannot share its port with the JSON
gateway (etcd serves both on one port). gRPC is a thin layer over HTTP/2: a request is
a stream whose path names the method (`/etcdserverpb.KV/Range`); every message is
5 bytes (compressed flag, big-endian length) and a protobuf; the status comes in
trailers (`grpc-status`, `grpc-message`). That layer is this module.

One `H2Connection` per client connection. A reader task feeds the bytes in and turns
events into calls; every call runs in its own task and writes through `_flush`, which
keeps the frames in order. A call's task is cancelled when its stream is reset or its
`grpc-timeout` passes. Nothing a client sends can end more than its own call or
connection: unknown methods and malformed, compressed or oversized messages are
answered with a gRPC status; a protocol error closes that connection only.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from google.protobuf.message import DecodeError, Message

__all__ = [
    "Call",
    "GrpcError",
    "H2Server",
    "HttpRequest",
    "HttpResponse",
    "Method",
    "PREFACE",
    "Status",
    "json_body_limit",
]


def json_body_limit(max_message: int) -> int:
    """The largest JSON body taken for a request whose message may be `max_message` bytes:
    bytes travel in base64 (4/3 of their size), with field names and quotes around them.
    The message parsed from it is then held to `max_message` itself, as a gRPC call is."""
    return max_message * 4 // 3 + 64 * 1024


_log = logging.getLogger("global_kv.api.grpc")
_MAX_RESETS = 200  # calls a client may reset unanswered per second on one connection
_SETTINGS = {
    h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
    h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
}


class Status:
    """gRPC status codes (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """Ends a call with `code` and `message` (what the client sees as its error)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Method:
    """One RPC. A unary handler is `async (request, call) -> response`; a streaming one
    (client, server or both) is `async (requests, send, call) -> None`, where `requests`
    yields the client's messages and `await send(response)` writes one."""

    request: type[Message]
    handler: Callable[..., Awaitable[Any]]
    streaming: bool = False


@dataclass
class HttpRequest:
    """A plain HTTP request (the JSON gateway's), over HTTP/1.1 or HTTP/2."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


BodyWriter = Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]


@dataclass
class HttpResponse:
    """`body` is bytes, or a writer (a stream, e.g. /v3/watch): `await body(send)` calls
    `await send(chunk)` for each chunk, in the server's task, until it returns or the
    client leaves (which cancels it)."""

    status: int
    body: bytes | BodyWriter
    content_type: str = "application/json"


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(eq=False)
class Call:
    """One gRPC call as its handler sees it: the request headers and the peer."""

    stream_id: int
    path: str
    headers: dict[str, str]
    peer: str
    inbound_send: trio.MemorySendChannel[tuple[Message, int]] = field(repr=False)
    inbound: trio.MemoryReceiveChannel[tuple[Message, int]] = field(repr=False)
    buffer: bytearray = field(default_factory=bytearray, repr=False)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)
    headers_sent: bool = False
    half_closed: bool = False  # no more messages will be read from the client
    refused: GrpcError | None = None  # what ended the call from the reading side
    held: int = 0  # bytes received on this stream and not yet taken by its handler
    closed: bool = False  # the stream is gone (reset, or we ended it)


# Messages a call may have queued, unread by its handler, before it is refused: a client
# that floods one stream ends that stream, not the connection or the node.
_INBOUND_QUEUE = 64
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # what every HTTP/2 client sends first
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _parse_timeout(value: str | None) -> float:
    """grpc-timeout ("100m", "5S", ...) in seconds; inf without one or if malformed."""
    if not value or value[-1] not in _TIMEOUT_UNITS or not value[:-1].isdigit() or len(value) > 9:
        return math.inf
    return int(value[:-1]) * _TIMEOUT_UNITS[value[-1]]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _grpc_error_in(exc: BaseException) -> GrpcError | None:
    """`exc` if it is a GrpcError, else the first one inside it (an exception group)."""
    if isinstance(exc, GrpcError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _grpc_error_in(inner)
            if found is not None:
                return found
    return None


def _percent_encode(message: str) -> str:
    """grpc-message is percent-encoded UTF-8 (bytes outside 0x20-0x7E, and '%')."""
    out = []
    for byte in message.encode("utf-8"):
        out.append(chr(byte) if 0x20 <= byte <= 0x7E and byte != 0x25 else f"%{byte:02X}")
    return "".join(out)


class H2Server:
    """Serves one HTTP/2 connection: gRPC calls to `methods`, anything else to `http`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        methods: Mapping[str, Method],
        http: HttpHandler,
        *,
        peer: str,
        max_message: int,
    ) -> None:
        self.stream = stream
        self.methods = methods
        self.http = http
        self.peer = peer
        self.max_message = max_message
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        # Our settings from the first byte: h2 would enforce its own default (100 streams)
        # until the client acknowledged an update, and a client opening more in that time
        # lost the whole connection (a protocol error), every call on it included.
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values=_SETTINGS)
        self.calls: dict[int, Call] = {}
        self.plain: dict[int, tuple[HttpRequest, bytearray]] = {}  # HTTP (non-gRPC) requests being read
        # Bytes received and not yet taken by a handler, over all streams: a client that sends
        # faster than it is served, on one stream or on many, loses its connection, not the node's memory.
        self.held = 0
        self.max_held = max(16 * 1024 * 1024, 8 * max_message)
        self._overloaded = False
        self._resets = 0  # calls reset by the client since _resets_since (see _count_reset)
        self._resets_since = 0.0
        self._send_lock = trio.Lock()
        self._window = trio.Event()  # set (and replaced) whenever the peer opens its windows
        self._nursery: trio.Nursery | None = None

    async def run(self, initial: bytes = b"") -> None:
        self.conn.initiate_connection()  # (its SETTINGS frame carries _SETTINGS)
        await self._flush()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                data: bytes | bytearray = initial
                while True:
                    if data:
                        try:
                            events = self.conn.receive_data(data)
                        except h2.exceptions.ProtocolError as exc:
                            _log.info("closing an HTTP/2 connection from %s: %s", self.peer, exc)
                            await self._flush()  # h2 queued a GOAWAY
                            return
                        for event in events:
                            self._on_event(event)
                        abuse = self._abuse()
                        if abuse is not None:
                            _log.warning("closing an HTTP/2 connection from %s: %s", self.peer, abuse)
                            self.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
                            await self._flush()
                            return
                        await self._flush()
                    try:
                        data = await self.stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                    if not data:
                        return
            finally:
                self._all_gone()  # senders waiting for window wake up and see their stream gone
                nursery.cancel_scope.cancel()  # every call of a closed connection ends

    # -- inbound --------------------------------------------------------------------------------
    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            # Decoded here, never by h2: a header that is not UTF-8 must not end the connection.
            headers = {_text(k): _text(v) for k, v in event.headers or ()}
            self._on_request(event.stream_id, headers)
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self._on_data(event.stream_id, event.data or b"")
        elif isinstance(event, h2.events.StreamEnded):
            self._on_end(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            call = self.calls.pop(event.stream_id, None)
            self._unplain(event.stream_id)
            if call is not None:
                self._gone(call)
                self._count_reset()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._all_gone()

    def _abuse(self) -> str | None:
        """Why this client must lose its connection (ENHANCE_YOUR_CALM), if it must."""
        if self._overloaded:
            return f"{self.held} bytes unread"
        if self._resets > _MAX_RESETS:
            return "calls reset faster than served"
        return None

    def _count_reset(self) -> None:
        """A call the client reset before it was answered. Each costs the server a task
        and a request's work; thousands a second (HTTP/2 "rapid reset", CVE-2023-44487)
        would hold the node's loop from everything else, heartbeats included: past
        `_MAX_RESETS` in a second the connection is closed, as Go's and nginx's servers do."""
        now = trio.current_time()
        if now - self._resets_since > 1.0:
            self._resets_since, self._resets = now, 0
        self._resets += 1

    def _wake(self) -> None:
        """Senders waiting for flow-control window look again (it opened, or they are gone)."""
        self._window.set()
        self._window = trio.Event()

    def _gone(self, call: Call) -> None:
        call.closed = True
        call.scope.cancel()
        self._wake()

    def _all_gone(self) -> None:
        for call in list(self.calls.values()):
            self._gone(call)

    def _on_request(self, stream_id: int, headers: dict[str, str]) -> None:
        assert self._nursery is not None
        path = headers.get(":path", "")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("application/grpc"):
            request = HttpRequest(headers.get(":method", ""), path, headers, b"")
            self.plain[stream_id] = (request, bytearray())
            return
        send, receive = trio.open_memory_channel[tuple[Message, int]](_INBOUND_QUEUE)
        call = Call(stream_id, path, headers, self.peer, send, receive)
        self.calls[stream_id] = call
        self._nursery.start_soon(self._run_call, call, self.methods.get(path))

    def _hold(self, call: Call | None, n: int) -> None:
        self.held += n
        if call is not None:
            call.held += n
        if self.held > self.max_held:
            self._overloaded = True

    def _release(self, call: Call | None, n: int) -> None:
        self.held -= n
        if call is not None:
            call.held -= n

    def _unplain(self, stream_id: int) -> tuple[HttpRequest, bytearray] | None:
        plain = self.plain.pop(stream_id, None)
        if plain is not None:
            self._release(None, len(plain[1]))
        return plain

    def _on_data(self, stream_id: int, data: bytes) -> None:
        plain = self.plain.get(stream_id)
        if plain is not None:
            plain[1].extend(data)
            self._hold(None, len(data))
            if len(plain[1]) > json_body_limit(self.max_message):
                self._unplain(stream_id)
                self._answer_plain(stream_id, HttpResponse(413, b'{"error":"request too large","code":8}'))
            return
        call = self.calls.get(stream_id)
        if call is None or call.half_closed:
            return
        call.buffer.extend(data)
        self._hold(call, len(data))
        while len(call.buffer) >= 5:
            compressed, length = call.buffer[0], int.from_bytes(call.buffer[1:5], "big")
            if compressed:
                self._refuse(call, GrpcError(Status.UNIMPLEMENTED, "compressed messages are not supported"))
                return
            if length > self.max_message:
                self._refuse(
                    call,
                    GrpcError(
                        Status.RESOURCE_EXHAUSTED,
                        f"grpc: received message larger than max ({length} vs. {self.max_message})",
                    ),
                )
                return
            if len(call.buffer) < 5 + length:
                return
            payload = bytes(call.buffer[5 : 5 + length])
            del call.buffer[: 5 + length]
            method = self.methods.get(call.path)
            if method is None:
                self._release(call, 5 + length)
                return  # the call is answered Unimplemented already
            try:
                message = method.request.FromString(payload)
            except (DecodeError, ValueError, RecursionError) as exc:
                self._release(call, 5 + length)
                self._refuse(call, GrpcError(Status.INTERNAL, f"grpc: error unmarshalling request: {exc}"))
                return
            try:
                call.inbound_send.send_nowait((message, 5 + length))
            except trio.WouldBlock:
                self._release(call, 5 + length)
                self._refuse(call, GrpcError(Status.RESOURCE_EXHAUSTED, "too many messages queued on one stream"))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._release(call, 5 + length)
                return

    def _refuse(self, call: Call, error: GrpcError) -> None:
        """The call ends with `error`, whatever its handler was doing: nothing more is read
        from its stream, and the status it is answered with is this one."""
        if call.refused is None:
            call.refused = error
        self._release(call, len(call.buffer))
        call.buffer.clear()
        call.half_closed = True
        call.inbound_send.close()
        call.scope.cancel()

    def _on_end(self, stream_id: int) -> None:
        plain = self._unplain(stream_id)
        if plain is not None:
            request, body = plain
            request.body = bytes(body)
            assert self._nursery is not None
            self._nursery.start_soon(self._run_plain, stream_id, request)
            return
        call = self.calls.get(stream_id)
        if call is not None and not call.half_closed:
            if call.buffer:
                self._refuse(call, GrpcError(Status.INTERNAL, "grpc: the request stream ended inside a message"))
            call.half_closed = True
            call.inbound_send.close()

    # -- calls ----------------------------------------------------------------------------------
    async def _run_call(self, call: Call, method: Method | None) -> None:
        code, message = Status.OK, ""
        try:
            with call.scope:
                if method is None:
                    service, _, name = call.path.strip("/").partition("/")
                    known = any(p.startswith(f"/{service}/") for p in self.methods)
                    what = f"method {name} for service {service}" if known else f"service {service}"
                    raise GrpcError(Status.UNIMPLEMENTED, f"unknown {what}")
                with trio.move_on_after(_parse_timeout(call.headers.get("grpc-timeout"))) as deadline:
                    if method.streaming:
                        await method.handler(self._requests(call), lambda m: self._send_message(call, m), call)
                    else:
                        request = await self._one_request(call)
                        response = await method.handler(request, call)
                        await self._send_message(call, response)
                if deadline.cancelled_caught:
                    code, message = Status.DEADLINE_EXCEEDED, "context deadline exceeded"
        except Exception as exc:
            found = _grpc_error_in(exc)  # a handler's nursery wraps what it raises in a group
            if found is not None:
                code, message = found.code, found.message
            elif call.closed:  # the client reset it or the connection went: what failed is the answer
                _log.debug("a gRPC call to %s ended with its stream: %r", call.path, exc)
                code, message = Status.CANCELLED, "the stream is gone"
            else:
                _log.exception("a gRPC call to %s failed", call.path)
                code, message = Status.INTERNAL, "internal error"
        finally:
            call.inbound.close()
            self._release(call, call.held)  # what it never took
        if call.closed:
            return  # reset by the client, or the connection went: nobody to answer
        if call.refused is not None:
            code, message = call.refused.code, call.refused.message
        with trio.CancelScope(shield=True):
            await self._finish(call, code, message)

    async def _one_request(self, call: Call) -> Message:
        request: Message | None = None
        async for message in self._requests(call):
            if request is not None:
                raise GrpcError(Status.INTERNAL, "grpc: a unary call got more than one request message")
            request = message
        if request is None:
            raise GrpcError(Status.INTERNAL, "grpc: a unary call got no request message")
        return request

    async def _requests(self, call: Call) -> AsyncIterator[Message]:
        async for message, size in call.inbound:
            self._release(call, size)
            yield message

    async def _send_message(self, call: Call, message: Message) -> None:
        data = message.SerializeToString()
        await self._send_headers(call)
        await self._send_data(call, len(data).to_bytes(5, "big") + data)

    async def _send_headers(self, call: Call) -> None:
        if not call.headers_sent:
            call.headers_sent = True
            self.conn.send_headers(call.stream_id, [(":status", "200"), ("content-type", "application/grpc")])

    async def _send_data(self, call: Call, data: bytes) -> None:
        """Send `data` (one whole message) as flow control allows. Cancelled part-way, the
        stream is reset: a message is never left half-written with more sent after it."""
        view = memoryview(data)
        started = False
        try:
            while view:
                if call.closed:
                    raise GrpcError(Status.CANCELLED, "the stream is gone")
                try:
                    window = self.conn.local_flow_control_window(call.stream_id)
                except (h2.exceptions.StreamClosedError, KeyError):
                    call.closed = True
                    raise GrpcError(Status.CANCELLED, "the stream is gone") from None
                if window <= 0:
                    opened = self._window  # taken before the flush: an update during it is not missed
                    await self._flush()
                    await opened.wait()
                    continue
                size = min(window, self.conn.max_outbound_frame_size, len(view))
                self.conn.send_data(call.stream_id, bytes(view[:size]))
                started = True
                view = view[size:]
                await self._flush()
        except BaseException:
            if started and view and not call.closed:
                call.closed = True
                with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
                    self.conn.reset_stream(call.stream_id, h2.errors.ErrorCodes.CANCEL)
                with trio.CancelScope(shield=True):
                    await self._flush()
            raise

    async def _finish(self, call: Call, code: int, message: str) -> None:
        self.calls.pop(call.stream_id, None)
        if call.closed:
            return
        call.closed = True
        trailers = [("grpc-status", str(code))]
        if message:
            trailers.append(("grpc-message", _percent_encode(message)))
        try:
            if call.headers_sent:
                self.conn.send_headers(call.stream_id, trailers, end_stream=True)
            else:  # trailers-only
                head = [(":status", "200"), ("content-type", "application/grpc")]
                self.conn.send_headers(call.stream_id, head + trailers, end_stream=True)
            await self._flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass

    # -- plain HTTP over HTTP/2 (the gateway) --------------------------------------------------
    def _plain_call(self, stream_id: int) -> Call:
        """A plain request's stream as a Call: so that a reset cancels its handler and body."""
        call = Call(stream_id, "", {}, self.peer, *trio.open_memory_channel[Any](0))
        call.half_closed = True  # its body was read already: more bytes on it are ignored
        self.calls[stream_id] = call
        return call

    async def _run_plain(self, stream_id: int, request: HttpRequest) -> None:
        call = self._plain_call(stream_id)
        try:
            with call.scope:
                try:
                    response = await self.http(request)
                except Exception:
                    _log.exception("an HTTP request to %s failed", request.path)
                    response = HttpResponse(500, b'{"error":"internal error","code":13}')
                await self._send_plain(call, response)
        finally:
            self.calls.pop(stream_id, None)

    def _answer_plain(self, stream_id: int, response: HttpResponse) -> None:
        assert self._nursery is not None

        async def answer() -> None:
            call = self._plain_call(stream_id)
            try:
                with call.scope:
                    await self._send_plain(call, response)
            finally:
                self.calls.pop(stream_id, None)

        self._nursery.start_soon(answer)

    async def _send_plain(self, call: Call, response: HttpResponse) -> None:
        try:
            head = [(":status", str(response.status)), ("content-type", response.content_type)]
            self.conn.send_headers(call.stream_id, head)
            call.headers_sent = True
            if isinstance(response.body, bytes):
                await self._send_data(call, response.body)
            else:
                await response.body(lambda chunk: self._send_data(call, chunk))
            self.conn.end_stream(call.stream_id)
            await self._flush()
        except (GrpcError, h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    # -- outbound -------------------------------------------------------------------------------
    async def _flush(self) -> None:
        async with self._send_lock:
            data = self.conn.data_to_send()
            if data:
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._all_gone()
