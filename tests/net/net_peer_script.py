"""A node's network alone in an OS process, for the tests that SIGKILL a peer.

Usage: python net_peer_script.py NAME CREATION [DIAL_NODE DIAL_URL]
The cookie comes from ERGO_COOKIE (as a real deployment would). It prints
"PORT <n>" once listening, answers every Call with ("echo", request) except the
request "hang" (left pending forever), and, when given a node to dial, connects
to it and sends it a Send("hello").
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from ergo_py.ids import PID
from ergo_py.net import Call, Network, NetworkHandlers, Reply, Send


async def main(name: str, creation: int, dial: tuple[str, str] | None) -> None:
    net: Network

    def on_control(peer: str, control: Any) -> None:
        if isinstance(control, Call) and control.request != "hang":
            net.send(peer, Reply(control.from_, control.ref, True, ("echo", control.request)))

    handlers = NetworkHandlers(on_control=on_control, on_link_up=lambda *a: None, on_link_down=lambda *a: None)
    net = Network(
        name,
        creation,
        handlers=handlers,
        listen=("127.0.0.1", 0),
        routes=dict([dial]) if dial else {},
    )
    async with trio.open_nursery() as nursery:
        await net.start(nursery)
        print(f"PORT {net.port}", flush=True)
        if dial:
            await net.connect(dial[0])
            net.send(dial[0], Send(PID(name, 1, creation), PID(dial[0], 1, 1), "hello"))
        await trio.sleep_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    trio.run(main, args[0], int(args[1]), (args[2], args[3]) if len(args) > 2 else None)
