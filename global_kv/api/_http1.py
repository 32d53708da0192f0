"""The JSON gateway over HTTP/1.1 (curl, etcd3gw, browsers, load generators).

Our own small parser rather than h11: the gateway's requests are one shape (a request
line, headers, a body of Content-Length bytes or chunked), and h11's general state
machine cost about 100 µs of a request's 700 (see README, "etcd side by side"). What it
accepts is strict: HTTP/1.0 or 1.1, a head of at most 64 KiB, no obsolete line folding,
one Content-Length or chunked Transfer-Encoding, a body within the limit. Anything else
is answered 400 (413 for a body over the limit, 505 for another version) and the
connection closed. Requests on one connection are served in turn (keep-alive unless
"Connection: close" or HTTP/1.0); a streamed body (a watch) is sent chunked and ends
when the client closes the connection; a connection that does not complete a request
within 60 s is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

import trio

from ._grpc import HttpHandler, HttpRequest, HttpResponse

__all__ = ["serve_http1"]

_log = logging.getLogger("global_kv.api.http")
_IDLE_SECONDS = 60.0  # to send a whole request, or the next one on a kept-alive connection
_DRAIN_MAX = 16 * 1024 * 1024  # a refused body read and dropped before the answer (see _Refused)
_DRAIN_SECONDS = 5.0
_HEX = frozenset(b"0123456789abcdefABCDEF")
_MAX_HEAD = 64 * 1024
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class _Refused(Exception):
    """The request cannot be served: answer `status` and close. `drain`: body bytes the
    client is still sending, read and dropped first (up to `_DRAIN_MAX`, for a few
    seconds), so that a client that writes its whole body before reading (urllib, most
    libraries) sees the answer and not a reset."""

    def __init__(self, status: int, message: str, drain: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.drain = drain


class _Reader:
    """Bytes from the stream, buffered: lines, exact counts, what is left."""

    def __init__(self, stream: trio.abc.Stream, initial: bytes) -> None:
        self.stream = stream
        self.buffer = bytearray(initial)

    async def _more(self) -> bool:
        data = await self.stream.receive_some(65536)
        if not data:
            return False
        self.buffer += data
        return True

    async def head(self) -> bytes | None:
        """Up to the blank line ending a request head (None: closed before any byte). A head
        whose lines end in a bare LF gets a 400 at once, not a wait for a CRLF that never comes."""
        return await self._until(b"\r\n\r\n", (431, "request head too large"), "inside a request head", b"\n\n")

    async def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._more():
                raise _Refused(400, "connection closed inside a request body")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def drop(self, n: int) -> None:
        """Read and forget `n` bytes (fewer if the connection closes first)."""
        while len(self.buffer) < n:
            n -= len(self.buffer)
            self.buffer.clear()
            try:
                if not await self._more():
                    return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        del self.buffer[:n]

    async def line(self) -> bytes:
        line = await self._until(b"\r\n", (400, "chunk line too long"), "inside a chunked body")
        if line is None:
            raise _Refused(400, "connection closed inside a chunked body")
        return line

    async def _until(
        self, end_mark: bytes, too_long: tuple[int, str], where: str, bare: bytes | None = None
    ) -> bytes | None:
        """The bytes before `end_mark` (consumed with it); None if the connection closed
        before any byte came, 400 if it closed `where`, `too_long` past the head limit, 400
        if `bare` (the mark with bare LFs) comes first."""
        while True:
            end = self.buffer.find(end_mark)
            loose = -1 if bare is None else self.buffer.find(bare)
            if loose >= 0 and (end < 0 or loose < end):
                raise _Refused(400, "lines must end in CRLF, not a bare LF")
            if end >= 0:
                data = bytes(self.buffer[:end])
                del self.buffer[: end + len(end_mark)]
                return data
            if len(self.buffer) > _MAX_HEAD:
                raise _Refused(*too_long)
            if not await self._more():
                if self.buffer.strip():
                    raise _Refused(400, f"connection closed {where}")
                return None


async def serve_http1(
    stream: trio.abc.Stream,
    initial: bytes,
    handler: HttpHandler,
    *,
    max_body: int,
    may_wait: Callable[[HttpRequest], bool] = lambda _: False,
) -> None:
    """Serve requests on one connection. A request for which `may_wait` is true (a lock)
    runs while the connection is watched: the client hanging up cancels it."""
    reader = _Reader(stream, initial)
    try:
        while True:
            request: HttpRequest | None = None
            keep_alive = True
            with trio.move_on_after(_IDLE_SECONDS):
                request, keep_alive = await _read_request(reader, max_body)
            if request is None:
                return  # closed, or silent for too long (a slow client holds no connection)
            response = HttpResponse(499, b"")
            if may_wait(request):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_until_closed, reader, nursery.cancel_scope)
                    response = await _answer(handler, request)
                    nursery.cancel_scope.cancel()
                if response.status == 499:
                    return  # the client left while it waited
            else:
                response = await _answer(handler, request)
            await _write_response(reader, response, keep_alive)
            if not keep_alive or not isinstance(response.body, bytes):
                return
    except _Refused as refused:
        if 0 < refused.drain <= _DRAIN_MAX:
            with trio.move_on_after(_DRAIN_SECONDS):
                await reader.drop(refused.drain)
        code = {413: 8, 431: 8}.get(refused.status, 3)
        body = b'{"error":"%s","code":%d}' % (refused.message.encode(), code)
        await _send(stream, _head(refused.status, "application/json", len(body), keep_alive=False) + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _answer(handler: HttpHandler, request: HttpRequest) -> HttpResponse:
    try:
        return await handler(request)
    except Exception:
        _log.exception("an HTTP request to %s failed", request.path)
        return HttpResponse(500, b'{"error":"internal error","code":13}')


async def _read_request(reader: _Reader, max_body: int) -> tuple[HttpRequest | None, bool]:
    head = await reader.head()
    if head is None:
        return None, False
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN or not parts[1]:
        raise _Refused(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _Refused(505 if version.startswith(b"HTTP/") else 400, "unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not set(name) <= _TOKEN:
            raise _Refused(400, "malformed header")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise _Refused(400, f"repeated {key} header")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if headers.get("expect", "").lower() == "100-continue":
        await reader.stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for it
    body = await _read_body(reader, headers, max_body)
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == b"HTTP/1.1" or "keep-alive" in connection)
    path = target.decode("latin-1")
    return HttpRequest(method.decode("ascii"), path, headers, body), keep_alive


async def _read_body(reader: _Reader, headers: dict[str, str], max_body: int) -> bytes:
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked" or "content-length" in headers:
            raise _Refused(400, "only chunked transfer-encoding, without content-length, is accepted")
        body = bytearray()
        while True:
            # 1*HEXDIG and nothing else (no sign, "0x", "_" or leading space, which int()
            # would take): a proxy in front must not read another size than we do.
            size_text = (await reader.line()).split(b";", 1)[0].rstrip(b" \t")
            if not size_text or len(size_text) > 15 or not _HEX.issuperset(size_text):
                raise _Refused(400, "malformed chunk size")
            size = int(size_text, 16)
            if len(body) + size > max_body:
                raise _Refused(413, "request too large")
            if size == 0:
                while await reader.line():  # trailers, up to the blank line
                    pass
                return bytes(body)
            body += await reader.exactly(size)
            if await reader.exactly(2) != b"\r\n":
                raise _Refused(400, "malformed chunk")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or len(length_text) > 18:
        raise _Refused(400, "malformed content-length")
    length = int(length_text)
    if length > max_body:
        raise _Refused(413, "request too large", drain=length)
    return await reader.exactly(length) if length else b""


def _head(status: int, content_type: str, length: int | None, *, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}"]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_response(reader: _Reader, response: HttpResponse, keep_alive: bool) -> None:
    stream = reader.stream
    if isinstance(response.body, bytes):
        head = _head(response.status, response.content_type, len(response.body), keep_alive=keep_alive)
        await stream.send_all(head + response.body)  # one write: one checkpoint, one segment
        return
    await stream.send_all(_head(response.status, response.content_type, None, keep_alive=False))

    async def send(chunk: bytes) -> None:
        if chunk:
            await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_until_closed, reader, nursery.cancel_scope)
        await response.body(send)
        nursery.cancel_scope.cancel()
    await stream.send_all(b"0\r\n\r\n")


async def _until_closed(reader: _Reader, scope: trio.CancelScope) -> None:
    """While a request is answered, the client can only close (or pipeline its next
    request, kept for later): a close cancels `scope`."""
    try:
        while await reader._more():
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def _send(stream: trio.abc.Stream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
