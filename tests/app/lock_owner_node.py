"""A node in its own OS process whose actor takes a lock and holds it until killed.

Usage: python lock_owner_node.py KEY NODE=URL [NODE=URL ...]   (cookie from ERGO_COOKIE)
Prints "TOKEN <n>" once the lock is held. Exits when stdin closes.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

import ergo_py as e
from global_kv import GlobalClient


class Owner(e.Actor):
    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        key, members = request
        client = GlobalClient(members, self, timeout=15)
        handle = await client.lock_with_timeout(key, 0, 10)
        return handle.token


async def main(key: str, routes: dict[str, str]) -> None:
    async with e.start_node("owner@localhost", e.NodeOptions(routes=routes)) as node:
        pid = await node.spawn(Owner)
        token = await node.call(pid, (key, list(routes)), timeout=20)
        print(f"TOKEN {token}", flush=True)
        await trio.wrap_file(sys.stdin).read()


if __name__ == "__main__":
    routes = dict(arg.split("=", 1) for arg in sys.argv[2:])
    trio.run(main, sys.argv[1], routes)
