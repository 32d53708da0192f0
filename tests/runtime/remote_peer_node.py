"""A Node alone in an OS process, for the tests that SIGKILL a peer node.

Usage: python remote_peer_node.py NODE_NAME
The cookie comes only from the ERGO_COOKIE environment variable (`cookie=None`),
as a deployment that keeps it off command lines would do. The node listens on
127.0.0.1 port 0, runs one process registered as "target", prints "PORT <n>" once
it accepts links, and stops when its stdin reaches end of file, so it cannot
outlive a test runner that was itself killed.

The "target" answers calls:
  "pid"    -> its PID
  "hang"   -> no answer, ever (the call stays pending until the caller gives up)
  "state"  -> (monitors on it, links it has, calls it left hanging)
"""

from __future__ import annotations

import sys
from typing import Any

import trio
import trio.lowlevel

import ergo_py as e


class Target(e.Actor):
    async def init(self) -> None:
        self.hanging: list[tuple[e.PID, e.Ref]] = []

    async def handle_call(self, from_: e.PID, ref: e.Ref, request: Any) -> Any:
        if request == "pid":
            return self.pid
        if request == "hang":
            self.hanging.append((from_, ref))
            return e.NO_REPLY
        if request == "state":
            info = self.node.process_info(self.pid)
            assert info is not None
            return info.monitored_by, len(info.links), len(self.hanging)
        raise ValueError(f"unknown request {request!r}")


async def main(name: str) -> None:
    async with e.start_node(name, e.NodeOptions(cookie=None, listen=("127.0.0.1", 0))) as node:
        await node.spawn(Target, name="target")
        print(f"PORT {node.port}", flush=True)
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(1024):
            pass


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
