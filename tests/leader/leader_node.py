"""One LeaderActor replica in its own OS process, for failover tests.

Usage: python leader_node.py NAME PORT NODE=PORT [NODE=PORT ...]   (cookie from ERGO_COOKIE)
Prints "READY", then one line per callback: "LEADER <term> <token>" or "FOLLOWER <term> <leader node|->".
Exits when stdin closes.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv import LeaderActor, LeaderOptions


class Replica(LeaderActor):
    async def handle_become_leader(self) -> None:
        print(f"LEADER {self.term()} {self.fencing_token()}", flush=True)

    async def handle_become_follower(self, leader: Any) -> None:
        print(f"FOLLOWER {self.term()} {leader.node if leader is not None else '-'}", flush=True)


async def main(name: str, port: int, members: dict[str, int]) -> None:
    routes = {n: f"ws://127.0.0.1:{p}" for n, p in members.items() if n != name}
    async with e.start_node(name, e.NodeOptions(listen=("127.0.0.1", port), routes=routes)) as node:
        options = LeaderOptions(cluster_id="os-test", bootstrap=[ProcessID("replica", n) for n in members])
        await node.spawn(Replica, options, name="replica")
        print("READY", flush=True)
        await trio.wrap_file(sys.stdin).read()


if __name__ == "__main__":
    members = {k: int(v) for k, v in (arg.split("=", 1) for arg in sys.argv[3:])}
    trio.run(main, sys.argv[1], int(sys.argv[2]), members)
