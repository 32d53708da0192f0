"""`Network`: the links of one node to its peers, behind a small non-blocking interface.

The Node hands controls to `send(node, control)`, which never blocks: it encodes
at once (so an unencodable or oversized message raises at the sender), queues,
and dials on demand using `routes`. What arrives is handed back through three
plain callbacks (`NetworkHandlers`): `on_control`, `on_link_up`, `on_link_down`.
If a connection cannot be made, or a link is lost, the controls still queued for
that node are dropped and `on_link_down(node, reason)` is called, so the Node can
fire monitors and links with `noconnection` and fail pending calls.

Per link there is at most one websocket, so controls to one node arrive in the
order they were sent. Two nodes that dial each other at once end up with one
link: while both handshakes are in flight the one dialed by the smaller node
name wins (`dial_wins`), and a peer that reconnects while an old link to the same
incarnation is still open confirms whether to replace it.

The cookie comes from `cookie=` or, when that is None, from the environment
variable `ERGO_COOKIE`, so it need not appear on command lines.

This module must never let a peer's input, a failed connection or a slow peer
raise into the node or block `send`; the only exceptions that escape its tasks
are bugs (including a handler callback that raised).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ergo_py.ids import validate_node_name

from ._errors import HandshakeError, MessageTooLarge, NoConnection
from ._fast_stream import FastSocketStream
from ._handshake import (
    Abandoned,
    AcceptorHandshake,
    Authenticated,
    DialerHandshake,
    Established,
    PeerHasLink,
    dial_wins,
)
from ._link import IO_ERRORS, ActiveLink, LinkStatistics, OutQueue, describe_error
from ._protocol import CONTROL_TYPES, FRAME_OVERHEAD, Control, check_addresses, encode_control
from ._transport import (
    CLOSE_TIMEOUT,
    flush,
    flush_quietly,
    handshake_message,
    open_client,
    parse_route,
    remote_text,
)
from ._websocket import ConnectionClosed, WebSocket, accept_websocket

__all__ = [
    "COOKIE_ENV",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Network",
    "NetworkHandlers",
    "NetworkStatistics",
    "resolve_cookie",
]

log = logging.getLogger("ergo_py.net")

COOKIE_ENV = "ERGO_COOKIE"
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_IDLE, _CONNECTING, _UP = "idle", "connecting", "up"


def resolve_cookie(cookie: str | None) -> str:
    """`cookie`, or the ERGO_COOKIE environment variable when it is None; never empty."""
    value = cookie if cookie is not None else os.environ.get(COOKIE_ENV)
    if not value:
        raise ValueError(
            f"a networked node needs a cookie: pass cookie=... or set the {COOKIE_ENV} environment variable"
        )
    return value


@dataclass(frozen=True)
class NetworkHandlers:
    """What the network tells its node. Plain functions, called from the network's tasks.

    They must not block and should not raise: an exception from a handler is a
    bug in the node and propagates (it is not swallowed).
    """

    on_control: Callable[[str, Control], None]
    on_link_up: Callable[[str, int], None]
    on_link_down: Callable[[str, str], None]


@dataclass(frozen=True)
class NetworkStatistics:
    """A snapshot of the counters, for operators, tests and benchmarks."""

    links: int
    queued_controls: int
    frames_sent: int
    controls_sent: int
    bytes_sent: int
    frames_received: int
    controls_received: int
    bytes_received: int
    controls_dropped: int


class _Attempt:
    """One effort to get a link up; `connect()` callers wait on it."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Exception | None = None


class _Peer:
    """Everything this node knows about one other node."""

    __slots__ = ("attempt", "dial_scope", "link", "name", "queue", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue = OutQueue()
        self.state = _IDLE
        self.link: ActiveLink | None = None
        self.attempt: _Attempt | None = None
        # Set while an outgoing dial is handshaking (an incoming link may supersede it).
        self.dial_scope: trio.CancelScope | None = None


class Network:
    """The distribution layer of one node: accepts links, dials peers, moves controls.

    Start it with `await network.start(nursery)` (returns once listening, so
    `port` is known even with port 0) and stop it with `await network.aclose()`.
    """

    def __init__(
        self,
        local_name: str,
        creation: int,
        *,
        handlers: NetworkHandlers,
        cookie: str | None = None,
        listen: tuple[str, int] | None = None,
        routes: Mapping[str, str] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        handshake_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 15.0,
    ) -> None:
        self.local_name = validate_node_name(local_name)
        if type(creation) is not int:
            raise TypeError("creation must be an int")
        self.creation = creation
        self._cookie = resolve_cookie(cookie)
        if max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        self.max_message_size = max_message_size
        self._handlers = handlers
        self._listen = listen
        self._routes: dict[str, str] = {}
        for node, url in (routes or {}).items():
            self.add_route(node, url)
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._peers: dict[str, _Peer] = {}
        self._unflushed: set[_Peer] = set()  # peers sent to since the last flush()
        self._stats = LinkStatistics()
        self._nursery: trio.Nursery | None = None
        self._port: int | None = None
        self._closed = False
        self._closing_links: list[ActiveLink] = []
        self._stopped = trio.Event()

    def __repr__(self) -> str:
        return f"<Network {self.local_name} port={self._port} links={self.connected_nodes()}>"

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        """The port links are accepted on (the real one when `listen` asked for 0), or None."""
        return self._port

    async def start(self, nursery: trio.Nursery) -> None:
        """Run the network's tasks in `nursery`; returns once it accepts connections."""
        if self._nursery is not None or self._closed:
            raise RuntimeError("a Network can be started once")
        await nursery.start(self._run)

    async def _run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._listen is not None:
                    host, port = self._listen
                    tcp = await trio.open_tcp_listeners(port, host=host)
                    self._port = tcp[0].socket.getsockname()[1]
                    listeners: list[Any] = tcp
                    if self._server_ssl is not None:
                        listeners = [trio.SSLListener(t, self._server_ssl, https_compatible=True) for t in tcp]
                    await nursery.start(
                        partial(trio.serve_listeners, self._handle_connection, listeners, handler_nursery=nursery)
                    )
                    log.info("%s accepts links on %s:%s", self.local_name, host, self._port)
                task_status.started()
                await trio.sleep_forever()
        finally:
            # Also when the surrounding nursery was cancelled without aclose(): nothing can dial now.
            self._closed = True
            self._stopped.set()

    async def aclose(self) -> None:
        """Close every link (on_link_down is called for each) and stop; idempotent."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._closing_links = [p.link for p in self._peers.values() if p.link is not None]
        for peer in list(self._peers.values()):
            if peer.state == _UP and peer.link is not None:
                self._drop_link(peer, peer.link, "network closed")
            elif peer.state == _CONNECTING and peer.attempt is not None:
                self._attempt_failed(peer, peer.attempt, NoConnection(peer.name, "network closed"))
        # Give the links a moment to say goodbye (each closes within its own short timeout).
        with trio.move_on_after(CLOSE_TIMEOUT + 0.5):
            for link in self._closing_links:
                await link.done.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
            await self._stopped.wait()

    # -- the interface the node uses -------------------------------------------------------------
    def add_route(self, node: str, url: str) -> None:
        """Where to dial `node` (ws://host:port or wss://host:port); replaces an earlier route."""
        validate_node_name(node)
        parse_route(node, url)
        self._routes[node] = url

    def send(self, node: str, control: Control) -> None:
        """Queue `control` for `node` and return at once (connecting on demand).

        Raises now, at the sender, for what can never be delivered: a payload that
        cannot be encoded (`EncodeError`), a control over `max_message_size`
        (`MessageTooLarge`), a control that does not go from this node to `node`
        (ValueError), or a closed network (`NoConnection`). Connection failures
        come later, through `on_link_down`.
        """
        if type(control) not in CONTROL_TYPES:
            raise TypeError(f"not a control message: {type(control).__name__}")
        if self._closed:
            raise NoConnection(node, "the network is closed")
        peer = self._peers.get(node)
        if peer is None:
            if node == self.local_name:
                raise ValueError("a node does not send to itself over the network")
            validate_node_name(node)
            peer = self._peers[node] = _Peer(node)
        problem = check_addresses(control, self.local_name, node)
        if problem is not None:
            raise ValueError(problem)
        item = encode_control(control)
        size = len(item) + FRAME_OVERHEAD
        if size > self.max_message_size:
            raise MessageTooLarge(size, self.max_message_size)
        peer.queue.push(item)
        state = peer.state
        if state == _UP:
            peer.link.wake()  # type: ignore[union-attr]
            self._unflushed.add(peer)
        elif state == _IDLE:
            self._start_attempt(peer)

    async def connect(self, node: str) -> None:
        """Make sure a link to `node` is up; raises `HandshakeError` or `NoConnection` if it cannot be."""
        if node == self.local_name:
            raise ValueError("a node does not connect to itself")
        if self._closed:
            raise NoConnection(node, "the network is closed")
        peer = self._peers.get(node)
        if peer is None:
            validate_node_name(node)
            peer = self._peers[node] = _Peer(node)
        if peer.state == _UP:
            await trio.lowlevel.checkpoint()
            return
        if peer.state == _IDLE:
            self._start_attempt(peer)
        attempt = peer.attempt
        assert attempt is not None
        await attempt.done.wait()
        if attempt.error is not None:
            raise attempt.error

    def flush(self) -> bool:
        """Write what was sent to connected nodes since the last flush now, from synchronous
        code, where the sockets take it without waiting (plain TCP); True if every byte went.
        The link's sender writes the rest, as it would have all of it: after the current task
        yields. For a caller about to block the loop (an inline fsync) that must know its
        messages are on the wire first."""
        done = True
        for peer in self._unflushed:
            link = peer.link
            if link is not None and not link.flush_now():
                done = False
        self._unflushed.clear()
        return done

    def connected_nodes(self) -> list[str]:
        """The nodes with a link up now."""
        return [name for name, peer in self._peers.items() if peer.state == _UP]

    def is_connected(self, node: str) -> bool:
        peer = self._peers.get(node)
        return peer is not None and peer.state == _UP

    def can_reach(self, node: str) -> bool:
        """A link to `node` is up, or there is a route to dial it."""
        return node in self._routes or self.is_connected(node)

    def disconnect(self, node: str) -> None:
        """Drop the link to `node` (or stop connecting); on_link_down is called before this returns."""
        peer = self._peers.get(node)
        if peer is None:
            return
        reason = "disconnected by this node"
        if peer.state == _UP and peer.link is not None:
            self._drop_link(peer, peer.link, reason)
        elif peer.state == _CONNECTING and peer.attempt is not None:
            self._attempt_failed(peer, peer.attempt, NoConnection(node, reason))

    def statistics(self) -> NetworkStatistics:
        s = self._stats
        return NetworkStatistics(
            links=len(self.connected_nodes()),
            queued_controls=sum(len(p.queue) for p in self._peers.values()),
            frames_sent=s.frames_sent,
            controls_sent=s.controls_sent,
            bytes_sent=s.bytes_sent,
            frames_received=s.frames_received,
            controls_received=s.controls_received,
            bytes_received=s.bytes_received,
            controls_dropped=s.controls_dropped,
        )

    # -- peer state ------------------------------------------------------------------------------
    def _start_attempt(self, peer: _Peer) -> None:
        if self._nursery is None:
            raise RuntimeError("start the network (await network.start(nursery)) before sending")
        peer.state = _CONNECTING
        attempt = peer.attempt = _Attempt()
        self._nursery.start_soon(self._dial, peer, attempt)

    def _attempt_failed(self, peer: _Peer, attempt: _Attempt, error: Exception) -> None:
        if attempt.done.is_set():
            return
        attempt.error = error
        attempt.done.set()
        if peer.attempt is not attempt or peer.state != _CONNECTING:
            return
        peer.state = _IDLE
        peer.attempt = None
        if peer.dial_scope is not None:
            peer.dial_scope.cancel()
            peer.dial_scope = None
        dropped = peer.queue.clear()
        self._stats.controls_dropped += dropped
        log.warning("%s cannot reach %s (%d queued controls dropped): %s", self.local_name, peer.name, dropped, error)
        self._handlers.on_link_down(peer.name, str(error))

    def _establish(self, peer: _Peer, ws: WebSocket, est: Established, remote: str) -> ActiveLink:
        """Make `ws` the link to `peer` (the handshake has just succeeded). Never awaits."""
        if peer.state == _UP and peer.link is not None:
            self._drop_link(peer, peer.link, f"replaced by a new link from {peer.name}")
        if peer.dial_scope is not None:
            # Our own dial lost to this link.
            peer.dial_scope.cancel()
            peer.dial_scope = None
        link = ActiveLink(
            ws,
            local_name=self.local_name,
            peer_name=peer.name,
            peer_creation=est.peer_creation,
            queue=peer.queue,
            send_limit=min(self.max_message_size, est.peer_max_message_size),
            deliver=self._handlers.on_control,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            stats=self._stats,
            remote=remote,
        )
        peer.state = _UP
        peer.link = link
        attempt, peer.attempt = peer.attempt, None
        if attempt is not None:
            attempt.done.set()
        log.info("%s: link up with %s (creation %d, %s)", self.local_name, peer.name, est.peer_creation, remote)
        self._handlers.on_link_up(peer.name, est.peer_creation)
        return link

    def _drop_link(self, peer: _Peer, link: ActiveLink, reason: str) -> None:
        """`link` is over: close it and, if it was the peer's link, tell the node. Never awaits."""
        link.close(reason)
        if peer.link is not link:
            return
        peer.state = _IDLE
        peer.link = None
        dropped = peer.queue.clear()
        self._stats.controls_dropped += dropped
        log.info("%s: link down with %s: %s", self.local_name, peer.name, reason)
        self._handlers.on_link_down(peer.name, reason)

    async def _run_link(self, peer: _Peer, link: ActiveLink) -> None:
        await link.run(partial(self._drop_link, peer, link))

    # -- dialing ---------------------------------------------------------------------------------
    async def _dial(self, peer: _Peer, attempt: _Attempt) -> None:
        url = self._routes.get(peer.name)
        if url is None:
            self._attempt_failed(peer, attempt, NoConnection(peer.name, "no route to this node (add it to routes)"))
            return
        scope = trio.CancelScope()
        peer.dial_scope = scope
        failure: Exception | None = None
        try:
            with scope:
                failure = await self._dial_and_run(peer, url, scope)
        finally:
            if peer.dial_scope is scope:
                peer.dial_scope = None
        if failure is None:
            return
        if isinstance(failure, HandshakeError) and failure.reason == HandshakeError.DUPLICATE:
            # The peer is dialing us too and its connection wins: wait for it to arrive.
            log.debug("%s: %s prefers its own connection; waiting for it", self.local_name, peer.name)
            with trio.move_on_after(self.handshake_timeout):
                await attempt.done.wait()
        self._attempt_failed(peer, attempt, failure)

    async def _dial_and_run(self, peer: _Peer, url: str, scope: trio.CancelScope) -> Exception | None:
        """Connect, handshake, then run the link; returns why the attempt failed, or None."""
        try:
            with trio.fail_after(self.connect_timeout):
                ws = await open_client(
                    url,
                    peer.name,
                    client_ssl=self._client_ssl,
                    max_message_size=self.max_message_size,
                )
        except trio.TooSlowError:
            return NoConnection(peer.name, f"timed out connecting to {url} after {self.connect_timeout} s")
        except IO_ERRORS as exc:
            return NoConnection(peer.name, f"cannot connect to {url}: {describe_error(exc)}")
        try:
            hs = DialerHandshake(
                local_name=self.local_name,
                creation=self.creation,
                cookie=self._cookie,
                expected_peer=peer.name,
                max_message_size=self.max_message_size,
            )
            try:
                with trio.fail_after(self.handshake_timeout):
                    await flush(ws, hs)
                    event: PeerHasLink | Established | None = None
                    while event is None:
                        event = hs.receive(await handshake_message(ws))
                        await flush(ws, hs)
                    if isinstance(event, PeerHasLink):
                        # The peer holds a link to us; keep it if we hold it too (simultaneous dial).
                        event = hs.confirm(replace=peer.state != _UP)
                        await flush(ws, hs)
                        if event is None:
                            return None
            except HandshakeError as exc:
                await flush_quietly(ws, hs)
                return exc
            except trio.TooSlowError:
                return HandshakeError(
                    HandshakeError.TIMEOUT,
                    f"no answer within {self.handshake_timeout} s from {url}",
                    peer.name,
                )
            except ConnectionClosed as exc:
                return HandshakeError(HandshakeError.CLOSED, describe_error(exc), peer.name)
            if scope.cancel_called or self._closed:
                return None  # superseded by an incoming link, or disconnect() / aclose() meanwhile
            if peer.dial_scope is scope:
                peer.dial_scope = None  # established: no longer a dial that an incoming link may cancel
            if peer.state == _UP:
                log.debug("%s: dropping a second link to %s", self.local_name, peer.name)
                return None
            link = self._establish(peer, ws, event, url)
            await self._run_link(peer, link)
            return None
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT) as cleanup:
                # While the network closes, nobody reads the goodbye: just drop the connection.
                cleanup.shield = not self._closed
                try:
                    await ws.aclose()
                except IO_ERRORS:
                    pass

    # -- accepting -------------------------------------------------------------------------------
    async def _handle_connection(self, stream: Any) -> None:
        """A new TCP (or TLS) connection: upgrade it to a websocket, then run the handshake."""
        remote = remote_text(stream)
        if isinstance(stream, trio.SocketStream):
            stream = FastSocketStream(stream)
        ws: WebSocket | None = None
        try:
            with trio.move_on_after(self.handshake_timeout):
                ws = await accept_websocket(stream, max_message_size=self.max_message_size)
            if ws is None:
                log.debug(
                    "%s: connection from %s: no websocket upgrade within %s s",
                    self.local_name,
                    remote,
                    self.handshake_timeout,
                )
                return
            await self._accept(ws, remote)
        except IO_ERRORS as exc:
            log.debug("%s: connection from %s ended: %s", self.local_name, remote, describe_error(exc))
        finally:
            if ws is None:
                await trio.aclose_forcefully(stream)
            else:
                with trio.move_on_after(CLOSE_TIMEOUT) as cleanup:
                    cleanup.shield = not self._closed
                    await ws.aclose()  # closes the stream too, even when cut short

    async def _accept(self, ws: WebSocket, remote: str) -> None:
        hs = AcceptorHandshake(
            local_name=self.local_name,
            creation=self.creation,
            cookie=self._cookie,
            max_message_size=self.max_message_size,
        )
        try:
            with trio.fail_after(self.handshake_timeout):
                event: Any = None
                while event is None:
                    event = hs.receive(await handshake_message(ws))
                    await flush(ws, hs)
                established = await self._decide(ws, hs, event)
        except HandshakeError as exc:
            await flush_quietly(ws, hs)
            who = f" ({hs.peer_name})" if hs.peer_name else ""
            if exc.reason == HandshakeError.DUPLICATE:
                log.debug("%s: refused a duplicate link from %s%s", self.local_name, remote, who)
            else:
                log.warning("%s: refused a link from %s%s: %s", self.local_name, remote, who, exc)
            return
        except trio.TooSlowError:
            log.warning(
                "%s: refused a link from %s: the handshake did not finish within %s s",
                self.local_name,
                remote,
                self.handshake_timeout,
            )
            return
        if established is None or self._closed:
            return
        peer = self._peers[established.peer_name]
        link = self._establish(peer, ws, established, remote)
        try:
            await flush(ws, hs)  # the WELCOME goes out before any frame
        except IO_ERRORS as exc:
            self._drop_link(peer, link, f"connection lost: {describe_error(exc)}")
            return
        await self._run_link(peer, link)

    async def _decide(self, ws: WebSocket, hs: AcceptorHandshake, auth: Authenticated) -> Established | None:
        """Which link survives when the dialer already has one with us, or is being dialed by us."""
        if self._closed:
            raise HandshakeError(HandshakeError.CLOSED, "this node is shutting down", auth.peer_name)
        name = auth.peer_name
        peer = self._peers.get(name)
        if peer is None:
            peer = self._peers[name] = _Peer(name)
        if peer.state == _UP and peer.link is not None:
            if peer.link.peer_creation != auth.peer_creation:
                self._drop_link(peer, peer.link, f"{name} restarted (new creation {auth.peer_creation})")
                return hs.accept()
            hs.accept(peer_has_link=True)
            await flush(ws, hs)
            answer = hs.receive(await handshake_message(ws))
            if isinstance(answer, Abandoned):
                log.debug("%s: %s keeps its existing link", self.local_name, name)
                return None
            assert isinstance(answer, Established)
            return answer  # _establish drops whatever link is still there
        if peer.state == _CONNECTING and peer.dial_scope is not None and dial_wins(self.local_name, name):
            raise hs.reject_duplicate(f"{self.local_name} is dialing {name} too, and its connection wins")
        if self._closed:
            raise HandshakeError(HandshakeError.CLOSED, "this node is shutting down", name)
        return hs.accept()
