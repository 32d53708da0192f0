"""Distributed configuration with compare-and-swap: read, modify, CAS, retry on conflict.

A JSON document at one key (`config/<run>/app`) is the configuration of a service.
Several administrators (separate client actors, each with its own `GlobalClient`)
change it at the same time: each update reads the document, applies a change to a
copy, and writes it back with `cas(key, what_i_read, new)`. If someone else wrote
in between, the CAS fails (`CASFailed`, nothing written) and the update starts over
from the new value after a short random backoff. No update is lost and none is
applied twice: at the end `version` equals the number of updates and every
administrator's flags are there. (No watches: readers poll or read on demand.)

Run against a cluster (`global-kv cluster --nodes 3` prints BOOTSTRAP and COOKIE):
    BOOTSTRAP=... COOKIE=... python examples/distributed_config.py [--admins 4] [--updates 10]
or alone (it starts and stops its own local 3-node cluster):
    python examples/distributed_config.py
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from _connect import add_cluster_arguments, open_clients, run_main

from global_kv import CASFailed, GlobalClient, GlobalKVError

Config = dict[str, Any]


class ConfigConflict(GlobalKVError):
    """An update lost the CAS race `attempts` times in a row (too much contention)."""

    def __init__(self, key: str, attempts: int) -> None:
        self.key = key
        self.attempts = attempts
        super().__init__(f"gave up updating {key!r} after {attempts} CAS conflicts in a row")


async def update_config(
    client: GlobalClient, key: str, change: Callable[[Config], None], *, attempts: int = 100
) -> tuple[Config, int]:
    """Apply `change` (which edits the dict in place) with a read-modify-CAS loop: (new config, conflicts)."""
    rng = random.Random()
    for conflicts in range(attempts):
        raw = await client.get(key)
        config: Config = json.loads(raw) if raw is not None else {"version": 0}
        change(config)
        config["version"] = config.get("version", 0) + 1
        try:
            await client.cas(key, raw, json.dumps(config, sort_keys=True).encode())
        except CASFailed:
            # Someone wrote in between: back off a little (more after each loss), re-read, redo.
            await trio.sleep(rng.uniform(0, 0.005 * (1 + conflicts)))
            continue
        return config, conflicts
    raise ConfigConflict(key, attempts)


@dataclass
class Report:
    key: str
    final: Config
    updates: int
    conflicts: int
    log: list[str]


async def admin(name: str, client: GlobalClient, key: str, updates: int, totals: list[int], log: list[str]) -> None:
    for i in range(updates):

        def change(config: Config, i: int = i) -> None:
            config.setdefault("flags", {})[f"{name}.feature{i}"] = True
            config["max_connections"] = config.get("max_connections", 100) + 1
            config["last_changed_by"] = name

        config, conflicts = await update_config(client, key, change)
        totals.append(conflicts)
        log.append(f"{name}: update {i + 1} -> version {config['version']} ({conflicts} conflict(s) retried)")


async def run(bootstrap: str | None, cookie: str | None, admins: int = 4, updates: int = 10) -> Report:
    key = f"config/{secrets.token_hex(4)}/app"
    log: list[str] = []
    conflicts: list[int] = []
    async with open_clients(bootstrap, cookie, admins + 1) as clients:
        reader, writers = clients[0], clients[1:]
        await reader.cas(key, None, json.dumps({"version": 0, "max_connections": 100}).encode())
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for i, client in enumerate(writers):
                    nursery.start_soon(admin, f"admin{i + 1}", client, key, updates, conflicts, log)
        raw = await reader.get(key)
    assert raw is not None, "the configuration key disappeared"
    return Report(key, json.loads(raw), admins * updates, sum(conflicts), log)


async def amain(args: argparse.Namespace) -> None:
    report = await run(args.cluster, args.cookie, args.admins, args.updates)
    for line in report.log:
        print(line)
    final = report.final
    print(
        f"\n{report.updates} updates by {args.admins} admins, {report.conflicts} CAS conflicts retried; "
        f"final version {final['version']}, {len(final.get('flags', {}))} flags, "
        f"max_connections {final['max_connections']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--admins", type=int, default=4)
    parser.add_argument("--updates", type=int, default=10, help="updates per admin")
    args = parser.parse_args()
    if args.admins < 1 or args.updates < 1:
        parser.error("--admins and --updates must be >= 1")
    run_main(amain, args)


if __name__ == "__main__":
    main()
