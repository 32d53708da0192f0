"""Shared pieces of the ergo_py.net tests: a recording handler set and a small cluster of networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio_websocket
import wsproto
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

from ergo_py.net import Network, NetworkHandlers
from ergo_py.net._handshake import DialerHandshake, Established

COOKIE = "test-cookie"


class Recorder:
    """Plain callbacks that remember what the network told its node, in order."""

    def __init__(self) -> None:
        self.controls: list[tuple[str, Any]] = []
        self.ups: list[tuple[str, int]] = []
        self.downs: list[tuple[str, str]] = []
        self.events: list[tuple[str, str]] = []  # ("up"|"down", node), interleaved
        self._changed = trio.Event()
        self.on_control_hook: Callable[[str, Any], None] | None = None

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def handlers(self) -> NetworkHandlers:
        def on_control(peer: str, control: Any) -> None:
            self.controls.append((peer, control))
            if self.on_control_hook is not None:
                self.on_control_hook(peer, control)
            self._poke()

        def on_link_up(peer: str, creation: int) -> None:
            self.ups.append((peer, creation))
            self.events.append(("up", peer))
            self._poke()

        def on_link_down(peer: str, reason: str) -> None:
            self.downs.append((peer, reason))
            self.events.append(("down", peer))
            self._poke()

        return NetworkHandlers(on_control=on_control, on_link_up=on_link_up, on_link_down=on_link_down)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def messages(self) -> list[Any]:
        return [c for _, c in self.controls]


class Cluster:
    """Networks started in one nursery, closed together at the end of the test."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.nets: dict[str, Network] = {}
        self.recs: dict[str, Recorder] = {}

    async def start(
        self,
        name: str,
        creation: int = 1,
        *,
        listen: bool = True,
        cookie: str = COOKIE,
        routes: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[Network, Recorder]:
        rec = Recorder()
        net = Network(
            name,
            creation,
            handlers=rec.handlers(),
            cookie=cookie,
            listen=("127.0.0.1", 0) if listen else None,
            routes=routes or {},
            **kwargs,
        )
        await net.start(self.nursery)
        self.nets[f"{name}/{creation}"] = net
        self.recs[f"{name}/{creation}"] = rec
        return net, rec

    async def aclose(self) -> None:
        with trio.move_on_after(5) as scope:
            scope.shield = True
            for net in self.nets.values():
                await net.aclose()


def url(net: Network, scheme: str = "ws", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{net.port}"


async def raw_dial(
    port: int,
    nursery: trio.Nursery,
    *,
    local_name: str,
    peer_name: str,
    cookie: str = COOKIE,
    creation: int = 7,
    max_message_size: int = 1 << 24,
) -> tuple[trio_websocket.WebSocketConnection, Established]:
    """A hand-driven dialer: a websocket that has passed the handshake, to send crafted frames."""
    ws = await trio_websocket.connect_websocket(
        nursery, "127.0.0.1", port, "/", use_ssl=False, max_message_size=max_message_size
    )
    hs = DialerHandshake(
        local_name=local_name,
        creation=creation,
        cookie=cookie,
        expected_peer=peer_name,
        max_message_size=max_message_size,
    )
    event = None
    while event is None:
        for msg in hs.data_to_send():
            await ws.send_message(msg)
        event = hs.receive(await ws.get_message())  # type: ignore[arg-type]
    for msg in hs.data_to_send():
        await ws.send_message(msg)
    assert isinstance(event, Established)
    return ws, event


class HandPeer:
    """A wsproto websocket client driven event by event (its raw `stream` for what wsproto will
    not send), to put our side in states a well-behaved peer never would."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pending: list[object] = []

    async def send(self, event: object) -> None:
        await self.stream.send_all(self.ws.send(event))  # type: ignore[arg-type]

    async def next_event(self) -> object:
        while not self.pending:
            data = await self.stream.receive_some(65536)
            assert data, "the connection closed"
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def open(self, port: int) -> None:
        """The HTTP upgrade only."""
        await self.send(Request(host=f"127.0.0.1:{port}", target="/"))
        assert isinstance(await self.next_event(), AcceptConnection)

    async def establish(self, port: int, *, local_name: str, peer_name: str) -> None:
        """The upgrade and our distribution handshake, as `local_name` dialing `peer_name`."""
        await self.open(port)
        hs = DialerHandshake(
            local_name=local_name, creation=7, cookie=COOKIE, expected_peer=peer_name, max_message_size=1 << 24
        )
        event = None
        while event is None:
            for msg in hs.data_to_send():
                await self.send(BytesMessage(data=msg))
            reply = await self.next_event()
            assert isinstance(reply, BytesMessage)
            event = hs.receive(bytes(reply.data))
        for msg in hs.data_to_send():
            await self.send(BytesMessage(data=msg))
        assert isinstance(event, Established)

    async def close_code(self) -> int:
        """The code of the Close the other side sends next (skipping anything before it)."""
        while True:
            event = await self.next_event()
            if isinstance(event, CloseConnection):
                return event.code
