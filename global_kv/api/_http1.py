"""The JSON gateway over HTTP/1.1 (curl, etcd3gw, browsers), with h11 (sans-IO).

Requests on one connection are served in turn (keep-alive). A streamed body (a watch)
is sent chunked, and ends when the client closes the connection. Bodies larger than
the limit get 413 and the connection is closed; a request h11 cannot parse gets 400; a
connection that does not complete a request within 60 s is closed.
"""

from __future__ import annotations

import logging

import h11
import trio

from ._grpc import HttpHandler, HttpRequest, HttpResponse

__all__ = ["serve_http1"]

_log = logging.getLogger("global_kv.api.http")
_IDLE_SECONDS = 60.0  # to send a whole request, or the next one on a kept-alive connection


async def serve_http1(stream: trio.abc.Stream, initial: bytes, handler: HttpHandler, *, max_body: int) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    if initial:
        conn.receive_data(initial)
    try:
        while True:
            request = None
            with trio.move_on_after(_IDLE_SECONDS):
                request = await _read_request(stream, conn, max_body)
            if request is None:
                return  # closed, refused, or silent for too long (a slow client holds no connection)
            try:
                response = await handler(request)
            except Exception:
                _log.exception("an HTTP request to %s failed", request.path)
                response = HttpResponse(500, b'{"error":"internal error","code":13}')
            await _write_response(stream, conn, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = b'{"error":"malformed HTTP request","code":3}'
            await _send_simple(stream, conn, exc.error_status_hint, body)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _read_request(stream: trio.abc.Stream, conn: h11.Connection, max_body: int) -> HttpRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            if not data and head is None:
                return None
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body.extend(event.data)
            if len(body) > max_body:
                await _send_simple(stream, conn, 413, b'{"error":"request too large","code":8}')
                return None
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            return HttpRequest(head.method.decode("ascii"), head.target.decode("latin-1"), headers, bytes(body))


async def _write_response(stream: trio.abc.Stream, conn: h11.Connection, response: HttpResponse) -> None:
    headers = [("content-type", response.content_type)]
    if isinstance(response.body, bytes):
        headers.append(("content-length", str(len(response.body))))
        head = conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
        body = conn.send(h11.Data(data=response.body)) or b""
        end = conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(head + body + end)  # one write: one checkpoint, one segment
        return
    headers.append(("transfer-encoding", "chunked"))
    await stream.send_all(conn.send(h11.Response(status_code=response.status, headers=headers)))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_closed, stream, nursery.cancel_scope)
            async for chunk in response.body:
                await stream.send_all(conn.send(h11.Data(data=chunk)))
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await response.body.aclose()  # type: ignore[attr-defined]
    await stream.send_all(conn.send(h11.EndOfMessage()))


async def _until_closed(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """While a body streams, the client can only close: then the stream ends."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def _send_simple(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: bytes) -> None:
    try:
        headers = [("content-type", "application/json"), ("content-length", str(len(body))), ("connection", "close")]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
