"""A lock owner in its own OS process, so the nemesis can kill -9 or SIGSTOP a holder.

Usage: python owner_process.py KEY TTL NAME=URL [NAME=URL ...]  (cookie in ERGO_COOKIE)
Prints READY once linked; then for each stdin line: LOCK -> "TOKEN <n>" (or
"ERROR <text>"), UNLOCK -> "UNLOCKED" (or "ERROR <text>"), LEASE KEY -> "LEASED <id>":
KEY put under a 60 s lease owned by this process, which must vanish when it dies. Exits
when stdin closes.
It must never write to the protected resource itself: the harness does, with its token.
"""

from __future__ import annotations

import secrets
import sys

import trio

import ergo_py as e
from global_kv import GlobalKVError
from global_kv.client import open_client


async def main(key: str, ttl: float, routes: dict[str, str]) -> None:
    name = f"owner-{secrets.token_hex(4)}@localhost"
    async with e.start_node(name, e.NodeOptions(routes=routes)) as node:
        for peer in routes:
            with trio.move_on_after(2):
                try:
                    await node.connect(peer)
                except (e.ErgoError, OSError):
                    pass
        async with open_client(node, list(routes), timeout=15, try_timeout=0.5) as client:
            print("READY", flush=True)
            stdin = trio.wrap_file(sys.stdin)
            handle = None
            while True:
                line = (await stdin.readline()).strip()
                if not line:
                    return
                try:
                    if line == "LOCK":
                        handle = await client.lock_with_timeout(key, ttl, 12)
                        print(f"TOKEN {handle.token}", flush=True)
                    elif line.startswith("LEASE "):
                        lease = await client.lease_grant(60.0, owner=client.process)
                        await client.put_kv(line.split(" ", 1)[1], b"here", lease=lease.lease_id)
                        print(f"LEASED {lease.lease_id}", flush=True)
                    elif line == "UNLOCK" and handle is not None:
                        await handle.unlock()
                        print("UNLOCKED", flush=True)
                    else:
                        print(f"ERROR unknown command {line!r}", flush=True)
                except GlobalKVError as exc:
                    print(f"ERROR {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], float(sys.argv[2]), dict(arg.split("=", 1) for arg in sys.argv[3:]))
