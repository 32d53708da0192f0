"""Configuration that reloads itself: a service watches its settings and applies each change.

The service (its own client actor) reads every key under `config/<run>/` once, then
watches the prefix from the revision it read at: every later put or delete reaches it
exactly once, in order, with no gap between the read and the watch. An administrator
changes a few settings; the service's view ends equal to the store's.

    BOOTSTRAP=... COOKIE=... python examples/config_reload.py [--changes 5]
or alone (it starts and stops its own local 3-node cluster):
    python examples/config_reload.py
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field

import trio
from _connect import add_cluster_arguments, open_clients, run_main

from global_kv import GlobalClient


@dataclass
class Report:
    settings: dict[bytes, bytes]
    stored: dict[bytes, bytes]
    reloads: list[str] = field(default_factory=list)


async def service(client: GlobalClient, prefix: str, report: Report, changes: int, ready: trio.Event) -> None:
    snapshot = await client.range_kv(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
    report.settings = {kv.key: kv.value for kv in snapshot.kvs}
    seen = 0
    async with client.watch(prefix, prefix=True, start_revision=snapshot.header.revision + 1) as events:
        ready.set()
        async for event in events:
            if event.type == "put":
                report.settings[event.kv.key] = event.kv.value
            else:
                report.settings.pop(event.kv.key, None)
            report.reloads.append(f"reload at revision {event.kv.mod_revision}: {event.type} {event.kv.key.decode()}")
            seen += 1
            if seen == changes:
                return


async def run(bootstrap: str | None, cookie: str | None, changes: int = 5) -> Report:
    prefix = f"config/{secrets.token_hex(4)}/"
    report = Report({}, {})
    async with open_clients(bootstrap, cookie, 2) as (admin, svc):
        await admin.put(prefix + "log_level", b"info")
        ready = trio.Event()
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(service, svc, prefix, report, changes, ready)
                await ready.wait()
                for i in range(changes - 1):
                    await admin.put(prefix + f"limit{i % 2}", b"%d" % (100 + i))
                await admin.delete(prefix + "log_level")
        report.stored = dict(await admin.prefix_scan(prefix))
    return report


async def amain(args: argparse.Namespace) -> None:
    report = await run(args.cluster, args.cookie, args.changes)
    print("\n".join(report.reloads))
    same = "equal to" if report.settings == report.stored else "DIFFERENT from"
    print(f"\nthe service's settings are {same} the store's: {len(report.settings)} keys")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--changes", type=int, default=5)
    args = parser.parse_args()
    if args.changes < 1:
        parser.error("--changes must be >= 1")
    run_main(amain, args)


if __name__ == "__main__":
    main()
