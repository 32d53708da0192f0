"""Shared pieces of the ergo_py.net tests: a recording handler set and a small cluster of networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio_websocket

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
