"""A work queue on revisions: jobs in order of their create revision, each taken exactly once.

Producers put jobs under `queue/<run>/`; the order of the queue is the order of the keys'
create revisions, which the cluster assigns. A consumer takes the oldest job with a
transaction that deletes it only if it is still there (`version(job) > 0`): of two
consumers racing for one job, exactly one transaction succeeds. An empty queue is
waited on with a watch, never polled.

    BOOTSTRAP=... COOKIE=... python examples/work_queue.py [--jobs 20] [--consumers 3]
or alone (it starts and stops its own local 3-node cluster):
    python examples/work_queue.py
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field

import trio
from _connect import add_cluster_arguments, open_clients, run_main

from global_kv import GlobalClient
from global_kv.client import ops


@dataclass
class Report:
    total: int
    taken: dict[str, list[int]] = field(default_factory=dict)  # consumer -> job numbers
    lost_races: int = 0


async def take(client: GlobalClient, prefix: str) -> tuple[bytes, bytes] | None:
    """The oldest job, removed from the queue by this consumer (None: someone took it first)."""
    oldest = await client.range_kv(prefix, prefix + "\xff", limit=1, sort_order="ascend", sort_target="create")
    if not oldest.kvs:
        return None
    job = oldest.kvs[0]
    answer = await client.txn([ops.version(job.key) > 0], [ops.delete(job.key)])
    return (job.key, job.value) if answer.succeeded else None


async def consumer(name: str, client: GlobalClient, prefix: str, report: Report, done: trio.Event) -> None:
    mine = report.taken.setdefault(name, [])
    while not done.is_set():
        found = await take(client, prefix)
        if found is not None:
            mine.append(int(found[1]))
            if sum(len(t) for t in report.taken.values()) == report.total:
                done.set()
            continue
        report.lost_races += 1
        # Empty (or lost a race): wait for the next job to be put, on a watch.
        async with client.watch(prefix, prefix=True, filters=("nodelete",)) as events:
            with trio.move_on_after(0.5):
                async for _ in events:
                    break


async def run(bootstrap: str | None, cookie: str | None, jobs: int = 20, consumers: int = 3) -> Report:
    prefix = f"queue/{secrets.token_hex(4)}/"
    report = Report(jobs)
    async with open_clients(bootstrap, cookie, consumers + 1) as clients:
        producer, workers = clients[0], clients[1:]
        done = trio.Event()
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i, client in enumerate(workers):
                    nursery.start_soon(consumer, f"consumer{i + 1}", client, prefix, report, done)
                for n in range(jobs):
                    await producer.put(f"{prefix}{secrets.token_hex(4)}", b"%d" % n)  # names in no order
                await done.wait()
                nursery.cancel_scope.cancel()
    return report


async def amain(args: argparse.Namespace) -> None:
    report = await run(args.cluster, args.cookie, args.jobs, args.consumers)
    for name, taken in sorted(report.taken.items()):
        print(f"{name}: jobs {taken}")
    everything = sorted(j for t in report.taken.values() for j in t)
    print(f"\n{len(everything)} jobs taken, each once: {everything == list(range(args.jobs))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--consumers", type=int, default=3)
    args = parser.parse_args()
    if args.jobs < 1 or args.consumers < 1:
        parser.error("--jobs and --consumers must be >= 1")
    run_main(amain, args)


if __name__ == "__main__":
    main()
