"""The websocket plumbing under a link: routes, opening a client connection, handshake I/O.

Kept apart from `_network` so that the peer bookkeeping there reads without
socket details. Nothing here decides which links exist, and nothing here may
block longer than the timeouts its callers put around it.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any

import trio

from ._errors import HandshakeError
from ._fast_stream import FastSocketStream
from ._handshake import AcceptorHandshake, DialerHandshake
from ._link import IO_ERRORS
from ._websocket import WebSocket, connect_websocket

__all__ = [
    "CLOSE_TIMEOUT",
    "flush",
    "flush_quietly",
    "handshake_message",
    "open_client",
    "parse_route",
    "remote_text",
]

# How long a goodbye (close handshake, a last REJECT) may take before we just hang up.
CLOSE_TIMEOUT = 1.0


def parse_route(node: str, url: str) -> tuple[str, int, str, bool]:
    """(host, port, path, tls) of a route; raises ValueError for anything but ws:// or wss://."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"route for {node}: expected ws://host:port or wss://host:port, got {url!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    return parts.hostname, port, parts.path or "/", tls


async def open_client(url: str, node: str, *, client_ssl: ssl.SSLContext | None, max_message_size: int) -> WebSocket:
    """A websocket to `url`. The caller bounds it with a timeout.

    The TLS handshake is done before the websocket one, so a certificate problem is
    reported as such (an upgrade that fails would only say the connection closed).
    """
    host, port, path, tls = parse_route(node, url)
    stream: Any = await trio.open_tcp_stream(host, port)
    try:
        if tls:
            context = client_ssl or ssl.create_default_context()
            stream = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
            await stream.do_handshake()
        else:
            stream = FastSocketStream(stream)
        return await connect_websocket(stream, f"{host}:{port}", path, max_message_size=max_message_size)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def handshake_message(ws: WebSocket) -> bytes:
    data = await ws.get_message()
    if type(data) is not bytes:
        raise HandshakeError(HandshakeError.PROTOCOL, "a text message during the handshake")
    return data


async def flush(ws: WebSocket, hs: DialerHandshake | AcceptorHandshake) -> None:
    for message in hs.data_to_send():
        await ws.send_message(message)


async def flush_quietly(ws: WebSocket, hs: DialerHandshake | AcceptorHandshake) -> None:
    """Best effort: tell the peer why we refuse, without waiting on a dead connection."""
    with trio.move_on_after(CLOSE_TIMEOUT):
        try:
            await flush(ws, hs)
        except IO_ERRORS:
            pass


def remote_text(stream: Any) -> str:
    """host:port of the peer of a TCP stream (or of the TCP stream under a TLS one)."""
    sock = getattr(getattr(stream, "transport_stream", stream), "socket", None)
    try:
        host, port = sock.getpeername()[:2]  # type: ignore[union-attr]
    except (AttributeError, OSError):
        return "unknown peer"
    return f"{host}:{port}"
