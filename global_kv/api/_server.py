"""The client port: etcd's gRPC services and its JSON gateway on one listener, as etcd
serves them (its cmux). A connection is told apart by its first bytes (the HTTP/2
preface: gRPC, or the gateway over HTTP/2) or, under TLS, by ALPN ("h2" or HTTP/1.1).

The server lives in a nursery the caller owns (`open_etcd_server` is an async context
manager), inside the node's trio loop, with a `GlobalClient` of its own whose first
member is this node's replica. A connection that fails (a bad TLS handshake, a reset, a
protocol error) ends alone; the listener and the node go on.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

import ergo_py
from ergo_py import ProcessID
from ergo_py.net import FastSocketStream

from ..app import GLOBAL_NAME
from ..client import open_client
from ..protocol import health_read
from ._gateway import Gateway
from ._grpc import PREFACE, H2Server, Method, json_body_limit
from ._http1 import serve_http1
from ._pb import rpc_pb2
from ._recipes import RecipeServices
from ._services import EtcdServices
from ._watch import WatchService

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "EtcdServer", "open_etcd_server"]

_log = logging.getLogger("global_kv.api")

# etcd's --max-request-bytes (1.5 MiB), plus room for the message framing.
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024 + 4096
_HANDSHAKE_TIMEOUT = 10.0
_HEALTH_TIMEOUT = 2.0  # seconds for /health's read (etcd's request timeout is longer)


@dataclass(frozen=True)
class EtcdServer:
    """A running client port: where it listens."""

    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


@asynccontextmanager
async def open_etcd_server(
    node: ergo_py.Node,
    address: tuple[str, int],
    members: Sequence[str],
    *,
    cluster: str = "global",
    tls: ssl.SSLContext | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    peer_ports: Mapping[str, int] | None = None,
) -> AsyncIterator[EtcdServer]:
    """Serve etcd's API at `address` (port 0: a free one) for the cluster whose members
    are `members` (node names; this node's own replica is asked first). `peer_ports`
    (node -> the port its peers dial) shows in the members' peer URLs."""
    order = [node.name, *(m for m in members if m != node.name)]
    host, port = address
    async with (
        open_client(node, order, consistency="linearizable") as client,
        open_client(node, [node.name], consistency="follower") as local,
    ):
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()
        server = EtcdServer(host, bound[1], tls is not None)
        ports = {**(peer_ports or {}), **({node.name: node.port} if node.port else {})}
        services = EtcdServices(client, local, node.name, cluster, (server.url,), ports)
        methods = services.methods()
        watch = WatchService(client, services.headers, services.header, max_request_bytes)
        methods["/etcdserverpb.Watch/Watch"] = Method(rpc_pb2.WatchRequest, watch.watch, streaming=True)
        methods.update(RecipeServices(client, services.headers, services.header).methods())

        replica = ProcessID(GLOBAL_NAME, node.name)

        async def health(serializable: bool) -> tuple[bool, str]:
            """etcd 3.5's check: a leader known, then a range read through this member
            (linearizable unless `?serializable=true`), so a member cut off from its
            leader says so, also one whose quiet group never noticed the cut (the read
            wakes it)."""
            try:
                status = await client.status(node.name)
                if not status.has_quorum:
                    return False, "RAFT NO LEADER"
                read = health_read("follower" if serializable else "linearizable")
                await node.call(replica, read, timeout=_HEALTH_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with its reason
                return False, f"{type(exc).__name__}: {exc}"
            return True, ""

        gateway = Gateway(methods, health, max_request_bytes)
        handler = partial(_connection, methods, gateway, tls, max_request_bytes)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, handler, listeners))
            _log.info("etcd API on %s", server.url)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel()


async def _connection(
    methods: dict[str, Method],
    gateway: Gateway,
    tls: ssl.SSLContext | None,
    max_request: int,
    stream: trio.SocketStream,
) -> None:
    try:
        peer = "%s:%s" % stream.socket.getpeername()[:2]
    except OSError:
        return
    conn: Any = stream
    try:
        initial = b""
        if tls is not None:
            ssl_stream = trio.SSLStream(stream, tls, server_side=True)
            with trio.move_on_after(_HANDSHAKE_TIMEOUT) as handshake:
                await ssl_stream.do_handshake()
            if handshake.cancelled_caught:
                return
            conn = ssl_stream
            h2 = ssl_stream.selected_alpn_protocol() == "h2"
        else:
            conn = FastSocketStream(stream)  # no scheduler pass per socket call that did not block
            with trio.move_on_after(_HANDSHAKE_TIMEOUT):
                while len(initial) < len(PREFACE) and PREFACE.startswith(initial):
                    data = await conn.receive_some(len(PREFACE) - len(initial))
                    if not data:
                        return
                    initial += data
            if not initial:
                return
            h2 = initial.startswith(PREFACE)
        if h2:
            await H2Server(conn, methods, gateway, peer=peer, max_message=max_request).run(initial)
        else:
            body = json_body_limit(max_request)
            await serve_http1(conn, initial, gateway, max_body=body, may_wait=gateway.may_wait)
    except Exception as exc:
        if _hung_up(exc):  # a client that goes away, also from inside a stream's tasks
            _log.debug("connection from %s ended: %r", peer, exc)
        else:
            # A bug must cost one connection, never the listener (and with it the node's API).
            _log.exception("a connection from %s failed; it is closed, the others go on", peer)
    finally:
        with trio.CancelScope(shield=True):
            try:
                await conn.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
                pass


_HANG_UPS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


def _hung_up(exc: BaseException) -> bool:
    """`exc` says only that the peer went away (a group of such, as a nursery raises them)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_hung_up(e) for e in exc.exceptions)
    return isinstance(exc, _HANG_UPS)
