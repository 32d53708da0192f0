"""An election observed by a second process: candidates take turns, an observer sees each.

Two candidates (their own client actors) campaign for `elections/<run>` with leases; the
first leads, the second waits its turn on a watch. An observer, another client, prints
every leader and every value the leader proclaims, in order. The first leader proclaims
a new value and resigns; the second takes over.

    BOOTSTRAP=... COOKIE=... python examples/election_observed.py
or alone (it starts and stops its own local 3-node cluster):
    python examples/election_observed.py
"""

from __future__ import annotations

import argparse
import secrets

import trio
from _connect import add_cluster_arguments, open_clients, run_main


async def run(bootstrap: str | None, cookie: str | None) -> list[bytes | None]:
    name = f"elections/{secrets.token_hex(4)}"
    seen: list[bytes | None] = []
    async with open_clients(bootstrap, cookie, 3) as (first, second, observer):
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                observed = trio.Event()

                async def observe() -> None:
                    async for leader in observer.election(name).observe():
                        seen.append(None if leader is None else leader.value)
                        if seen[-1] == b"second":
                            observed.set()
                            return

                nursery.start_soon(observe)
                one, two = first.election(name), second.election(name)
                lease_one = (await first.lease_grant(30.0)).lease_id
                lease_two = (await second.lease_grant(30.0)).lease_id
                await one.campaign(b"first", lease_one)
                elected = trio.Event()

                async def second_candidate() -> None:
                    await two.campaign(b"second", lease_two)  # waits until the first resigns
                    elected.set()

                nursery.start_soon(second_candidate)
                await trio.sleep(0.3)
                await one.proclaim(b"first, again", lease_one)
                await trio.sleep(0.3)
                await one.resign()
                await elected.wait()
                await observed.wait()
                await two.resign()
    return seen


async def amain(args: argparse.Namespace) -> None:
    for leader in await run(args.cluster, args.cookie):
        print("leader:", "(none)" if leader is None else leader.decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    run_main(amain, parser.parse_args())


if __name__ == "__main__":
    main()
