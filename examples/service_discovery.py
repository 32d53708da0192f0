"""Service discovery with process-owned leases: a worker's entry lives exactly as long as it.

Each worker is an actor that registers `services/<run>/<name>` under a lease owned by
itself (`lease_grant(ttl, owner=self)`): no keep-alive traffic, and the moment the
worker dies (exit, kill, its node lost) the leader's monitor revokes the lease and the
entry is deleted with a revision. A directory client watches the prefix and prints
who joins and who leaves. One worker is killed; its entry is gone within a second,
not after its 60 s TTL.

    BOOTSTRAP=... COOKIE=... python examples/service_discovery.py [--workers 3]
or alone (it starts and stops its own local 3-node cluster):
    python examples/service_discovery.py
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field
from typing import Any

import trio
from _connect import add_cluster_arguments, open_clients, run_main

import ergo_py
from global_kv import GlobalClient


class Worker(ergo_py.Actor):
    """Registers itself, tied to its own life; `("register", key, members)`."""

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        _, key, members = request
        client = GlobalClient(members, self, timeout=10)
        lease = await client.lease_grant(60.0, owner=self)
        await client.put_kv(key, self.node.name.encode(), lease=lease.lease_id)
        return lease.lease_id


@dataclass
class Report:
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    left_after: float = 0.0


async def run(bootstrap: str | None, cookie: str | None, workers: int = 3) -> Report:
    prefix = f"services/{secrets.token_hex(4)}/"
    report = Report()
    async with open_clients(bootstrap, cookie, 1) as (directory,):
        node = directory.process.node
        members = [m.node for m in directory.nodes]
        with trio.fail_after(60):
            async with directory.watch(prefix, prefix=True) as events:
                pids = []
                for i in range(workers):
                    pid = await node.spawn(Worker)
                    await node.call(pid, ("register", f"{prefix}worker{i}", members), timeout=15)
                    pids.append(pid)
                killed_at = 0.0
                async for event in events:
                    name = event.kv.key[len(prefix) :].decode()
                    if event.type == "put":
                        report.joined.append(name)
                        if len(report.joined) == workers:
                            killed_at = trio.current_time()
                            node.kill(pids[0])  # the first worker dies
                    else:
                        report.left.append(name)
                        report.left_after = trio.current_time() - killed_at
                        break
    return report


async def amain(args: argparse.Namespace) -> None:
    report = await run(args.cluster, args.cookie, args.workers)
    print(f"joined: {', '.join(report.joined)}")
    print(f"left:   {', '.join(report.left)} ({report.left_after:.2f} s after it was killed; its TTL was 60 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    run_main(amain, args)


if __name__ == "__main__":
    main()
