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
import trio_websocket

from ._errors import HandshakeError
from ._handshake import AcceptorHandshake, DialerHandshake
from ._link import IO_ERRORS, tolerate_closing_races

__all__ = [
    "CLOSE_TIMEOUT",
    "RECEIVE_BUFFER",
    "endpoint_text",
    "flush",
    "flush_quietly",
    "handshake_message",
    "open_client",
    "parse_route",
]

# Reads per receive call (trio-websocket's default of 4 KiB is small for coalesced frames).
RECEIVE_BUFFER = 64 * 1024
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


async def open_client(
    nursery: trio.Nursery,
    url: str,
    node: str,
    *,
    client_ssl: ssl.SSLContext | None,
    max_message_size: int,
) -> trio_websocket.WebSocketConnection:
    """A websocket to `url`, its reader running in `nursery`. The caller bounds it with a timeout.

    The TLS handshake is done before the websocket one, so a certificate problem is
    reported as such (trio-websocket would only see a connection that never opens).
    """
    host, port, path, tls = parse_route(node, url)
    stream: Any = await trio.open_tcp_stream(host, port)
    try:
        if tls:
            context = client_ssl or ssl.create_default_context()
            stream = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
            await stream.do_handshake()
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            f"{host}:{port}",
            path,
            max_message_size=max_message_size,
            receive_buffer_size=RECEIVE_BUFFER,
        )
        tolerate_closing_races(ws)
        return ws
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def handshake_message(ws: trio_websocket.WebSocketConnection) -> bytes:
    data = await ws.get_message()
    if type(data) is not bytes:
        raise HandshakeError(HandshakeError.PROTOCOL, "a text message during the handshake")
    return data


async def flush(ws: trio_websocket.WebSocketConnection, hs: DialerHandshake | AcceptorHandshake) -> None:
    for message in hs.data_to_send():
        await ws.send_message(message)


async def flush_quietly(ws: trio_websocket.WebSocketConnection, hs: DialerHandshake | AcceptorHandshake) -> None:
    """Best effort: tell the peer why we refuse, without waiting on a dead connection."""
    with trio.move_on_after(CLOSE_TIMEOUT):
        try:
            await flush(ws, hs)
        except IO_ERRORS:
            pass


def endpoint_text(endpoint: Any) -> str:
    address = getattr(endpoint, "address", None)
    port = getattr(endpoint, "port", None)
    return f"{address}:{port}" if address is not None else str(endpoint)
