"""A fault-injecting TCP proxy mesh: one listener per directed node pair, cuttable per node pair.

Node A reaches node B through the listener `route(A, B)` (127.0.0.1, an ephemeral
port), which forwards to B's real address, looked up at each new connection (a
restarted node keeps its port, a moved one is found). A link between two nodes is
one TCP connection dialled by either side and used both ways, so the state that
decides whether bytes flow belongs to the unordered pair {A, B}: a cut stops both
directions of every connection through `route(A, B)` and `route(B, A)`.

Cut modes, as a firewall between two hosts would have them:
- "drop" (iptables DROP): nothing is forwarded in either direction, nothing is
  closed. Bytes wait (at most one chunk in the proxy, the rest in the kernel's
  buffers, so TCP back-pressure reaches the sender); new connections are accepted
  but not connected onwards. On heal the held bytes flow again intact and in order,
  as TCP retransmission would deliver them.
- "reset" (iptables REJECT with tcp-reset): every connection through the pair is
  aborted with an RST at both ends, and new ones are accepted and reset at once.

What it must never do: drop or reorder bytes inside a stream (a real network does
not, and it would corrupt websocket framing rather than partition anything), bind
anything but the loopback host it was given, or leave a listener or connection
open after `open_proxy_mesh` exits (also on error or cancellation). `heal` is
synchronous, so it cannot be interrupted half-way.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

__all__ = ["CUT_MODES", "ProxyError", "ProxyMesh", "ProxyStatistics", "open_proxy_mesh"]

CUT_MODES = ("drop", "reset")
CHUNK = 64 * 1024
# Accept errors that mean "this one connection failed" or "out of descriptors for now".
_ACCEPT_RETRY = {errno.ECONNABORTED, errno.EPROTO, errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class ProxyError(Exception):
    """A misuse of the proxy mesh (unknown mode, a pair of one node, a closed mesh)."""


@dataclass
class ProxyStatistics:
    """Counters over the mesh's life: what a test asserts on and a report prints."""

    listeners: int = 0  # open now
    connections: int = 0  # open now (held ones included)
    held: int = 0  # accepted during a drop cut and not connected onwards yet
    accepted: int = 0
    resets: int = 0  # connections aborted by a reset cut (or refused during one)
    bytes_forwarded: int = 0


@dataclass(eq=False)
class _Conn:
    client: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    upstream: trio.SocketStream | None = None
    abort: bool = False  # close with RST instead of FIN


@dataclass(eq=False)
class _Pair:
    """The link state of one unordered node pair, shared by its two directed listeners."""

    mode: str | None = None  # None: healthy
    healthy: trio.Event = field(default_factory=trio.Event)
    conns: set[_Conn] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.healthy.set()

    async def wait_healthy(self) -> None:
        while self.mode is not None:
            await self.healthy.wait()


class ProxyMesh:
    """Listeners per directed pair, created on first `route`; see the module docstring.

    Use `open_proxy_mesh(resolve)`; `resolve(name)` gives the (host, port) a node
    really listens on, and is asked when a connection to it is made (a LookupError
    there means "no such node now": the connection is reset).
    """

    def __init__(self, nursery: trio.Nursery, resolve: Callable[[str], tuple[str, int]], host: str) -> None:
        self._nursery = nursery
        self._resolve = resolve
        self.host = host
        self._routes: dict[tuple[str, str], int] = {}
        self._pairs: dict[frozenset[str], _Pair] = {}
        self._stats = ProxyStatistics()
        self._closed = False

    def route(self, src: str, dst: str) -> str:
        """The ws:// URL `src` must dial to reach `dst` through the proxy (a listener made now if new).

        Synchronous so it can be called while a node's environment is being built.
        """
        if self._closed:
            raise ProxyError("this proxy mesh is closed")
        port = self._routes.get((src, dst))
        if port is None:
            port = self._listen(src, dst)
        return f"ws://{self.host}:{port}"

    def routes_for(self, src: str, peers: Iterable[str]) -> dict[str, str]:
        """`{peer: url}` for every peer but `src` itself."""
        return {p: self.route(src, p) for p in peers if p != src}

    def _listen(self, src: str, dst: str) -> int:
        pair = self._pair(src, dst)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, 0))
            sock.listen(128)
            sock.setblocking(False)
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        except BaseException:
            sock.close()
            raise
        port: int = sock.getsockname()[1]
        self._routes[(src, dst)] = port
        self._stats.listeners += 1
        self._nursery.start_soon(self._serve, listener, pair, dst)
        return port

    def _pair(self, a: str, b: str) -> _Pair:
        if a == b:
            raise ProxyError(f"a node pair needs two nodes, got {a} twice")
        return self._pairs.setdefault(frozenset((a, b)), _Pair())

    # -- faults ------------------------------------------------------------------------------------
    def cut(self, a: str, b: str, mode: str) -> None:
        """Partition `a` from `b` (both directions) until `heal`; see the module docstring for modes."""
        if mode not in CUT_MODES:
            raise ProxyError(f"unknown cut mode {mode!r}: expected one of {CUT_MODES}")
        pair = self._pair(a, b)
        if pair.mode is None:
            pair.healthy = trio.Event()
        pair.mode = mode
        if mode == "reset":
            for conn in list(pair.conns):
                conn.abort = True
                conn.scope.cancel()

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Undo the cut between `a` and `b`, or every cut with no arguments. Idempotent."""
        if (a is None) != (b is None):
            raise ProxyError("heal takes two node names or none")
        pairs = [self._pair(a, b)] if a is not None and b is not None else list(self._pairs.values())
        for pair in pairs:
            pair.mode = None
            pair.healthy.set()

    def cuts(self) -> dict[frozenset[str], str]:
        """The pairs cut now, with their mode."""
        return {key: p.mode for key, p in self._pairs.items() if p.mode is not None}

    def statistics(self) -> ProxyStatistics:
        s = self._stats
        return ProxyStatistics(s.listeners, s.connections, s.held, s.accepted, s.resets, s.bytes_forwarded)

    # -- forwarding --------------------------------------------------------------------------------
    async def _serve(self, listener: trio.SocketListener, pair: _Pair, dst: str) -> None:
        try:
            async with listener:
                while True:
                    try:
                        client = await listener.accept()
                    except OSError as exc:
                        if exc.errno not in _ACCEPT_RETRY:
                            raise
                        await trio.sleep(0.05)
                        continue
                    self._stats.accepted += 1
                    self._nursery.start_soon(self._handle, client, pair, dst)
        finally:
            self._stats.listeners -= 1

    async def _handle(self, client: trio.SocketStream, pair: _Pair, dst: str) -> None:
        conn = _Conn(client)
        pair.conns.add(conn)
        self._stats.connections += 1
        try:
            if pair.mode == "reset":
                conn.abort = True
                return
            with conn.scope:
                if pair.mode is not None:
                    self._stats.held += 1
                    try:
                        await pair.wait_healthy()
                    finally:
                        self._stats.held -= 1
                try:
                    host, port = self._resolve(dst)
                    conn.upstream = await trio.open_tcp_stream(host, port)
                except (LookupError, OSError):
                    # Unknown or down: the dialler sees a reset, as from a closed port.
                    conn.abort = True
                    return
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._pump, conn, pair, client, conn.upstream)
                    pumps.start_soon(self._pump, conn, pair, conn.upstream, client)
        finally:
            pair.conns.discard(conn)
            if conn.abort:
                self._stats.resets += 1
            with trio.CancelScope(shield=True):
                for stream in (client, conn.upstream):
                    if stream is not None:
                        await _close(stream, conn.abort)
            self._stats.connections -= 1

    async def _pump(self, conn: _Conn, pair: _Pair, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        """Copy one direction; a cut holds the next chunk (or the end of stream) until healed."""
        try:
            while True:
                data = await src.receive_some(CHUNK)
                await pair.wait_healthy()
                if not data:
                    await dst.send_eof()  # half-close: the other direction may still be sending
                    return
                await dst.send_all(data)
                self._stats.bytes_forwarded += len(data)
        except _IO_ERRORS:
            pass
        # One end failed (reset, or gone, e.g. killed): pass it on as a reset to the other
        # end, once the pair is healed (through a drop cut, a reset would be lost too).
        await pair.wait_healthy()
        conn.abort = True
        conn.scope.cancel()

    def _close_all(self) -> None:
        """Refuse new routes, clear every cut, and cancel every listener and connection task."""
        self._closed = True
        self.heal()
        self._nursery.cancel_scope.cancel()


async def _close(stream: trio.SocketStream, abort: bool) -> None:
    if abort:
        try:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed by the peer's reset: closing is all that is left
    await stream.aclose()


@asynccontextmanager
async def open_proxy_mesh(
    resolve: Callable[[str], tuple[str, int]], host: str = "127.0.0.1"
) -> AsyncIterator[ProxyMesh]:
    """A ProxyMesh whose listeners and connections all close when the block exits.

    An exception from the block is raised as it is, not wrapped in the ExceptionGroup
    of the mesh's nursery, so callers handle it like one from any other context manager.
    """
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        mesh = ProxyMesh(nursery, resolve, host)
        try:
            yield mesh
        except BaseException as exc:
            raised = exc
        finally:
            mesh._close_all()
    if raised is not None:
        raise raised
