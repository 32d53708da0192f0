"""A worker pool whose tasks are claimed with locks, the results guarded by fencing tokens.

Tasks are keys in the store (`pool/<run>/task/<n>`). Each worker (a separate client
actor with its own `GlobalClient`) walks the pending tasks, claims one with
`try_lock` (a TTL, so a crashed or frozen worker cannot keep it forever), checks it
is not done yet, does the work, hands the result to the output sink with the lock's
fencing token, and marks the task done with a CAS (absent -> "worker:token").

The sink is the protected resource: it keeps a `FencedResource` per task and
refuses a token lower than one it has accepted. To show why that matters, one
worker freezes on its first task for longer than the lock's TTL: the cluster
expires its lock, another worker claims the task with a higher token and finishes
it, and when the frozen worker wakes up its late result is refused.

Run against a cluster (`global-kv cluster --nodes 3` prints BOOTSTRAP and COOKIE):
    BOOTSTRAP=... COOKIE=... python examples/lock_worker_pool.py [--tasks 12] [--workers 3]
or alone (it starts and stops its own local 3-node cluster):
    python examples/lock_worker_pool.py
"""

from __future__ import annotations

import argparse
import random
import secrets
from dataclasses import dataclass, field

import trio
from _connect import add_cluster_arguments, open_clients, run_main

from global_kv import (
    CASFailed,
    FencedResource,
    GlobalClient,
    GlobalKVError,
    LockHeld,
    StaleToken,
)

LOCK_TTL = 1.0  # seconds; the frozen worker sleeps FREEZE, past it
FREEZE = 2.5
WORK = 0.02


@dataclass
class Sink:
    """The protected resource: accepts a task's result only with the highest token seen for it."""

    fences: dict[int, FencedResource] = field(default_factory=dict)
    results: dict[int, tuple[str, int]] = field(default_factory=dict)  # task -> (worker, token)
    refused: list[tuple[int, str, int]] = field(default_factory=list)  # (task, worker, token)

    def write(self, task: int, worker: str, token: int) -> None:
        fence = self.fences.setdefault(task, FencedResource(f"task/{task}"))
        try:
            fence.check(token)
        except StaleToken:
            self.refused.append((task, worker, token))
            raise
        self.results[task] = (worker, token)


@dataclass
class Report:
    prefix: str
    tasks: int
    sink: Sink
    done: dict[int, bytes]  # what the store says, after the run
    log: list[str]


async def worker(
    name: str, client: GlobalClient, prefix: str, pending: set[int], sink: Sink, log: list[str], freeze: bool
) -> None:
    rng = random.Random(name)
    while pending:
        for task in rng.sample(sorted(pending), len(pending)):
            done_key = f"{prefix}done/{task}"
            if await client.get(done_key) is not None:
                pending.discard(task)
                continue
            try:
                lock = await client.try_lock(f"{prefix}lock/{task}", ttl=LOCK_TTL)
            except LockHeld:
                continue  # someone else is on it
            try:
                if await client.get(done_key) is not None:  # finished while we were claiming it
                    pending.discard(task)
                    continue
                if freeze:
                    freeze = False
                    log.append(f"{name}: claimed task {task} (token {lock.token}) and freezes for {FREEZE} s")
                    await trio.sleep(FREEZE)
                else:
                    await trio.sleep(WORK)  # the work
                try:
                    sink.write(task, name, lock.token)
                except StaleToken as exc:
                    log.append(f"{name}: result for task {task} REFUSED (token {lock.token} < {exc.current_token})")
                    continue
                try:
                    await client.cas(done_key, None, f"{name}:{lock.token}".encode())
                    log.append(f"{name}: finished task {task} with token {lock.token}")
                except CASFailed:
                    log.append(f"{name}: task {task} was marked done by someone else")
                pending.discard(task)
            finally:
                try:
                    await lock.unlock()
                except GlobalKVError:
                    log.append(f"{name}: lock on task {task} was lost already (TTL expired)")
        await trio.sleep(0.05)


async def run(
    bootstrap: str | None, cookie: str | None, tasks: int = 12, workers: int = 3, freeze: bool = True
) -> Report:
    prefix = f"pool/{secrets.token_hex(4)}/"
    sink, log = Sink(), list[str]()
    async with open_clients(bootstrap, cookie, workers) as clients:
        await clients[0].batch_put({f"{prefix}task/{n}": f"payload {n}".encode() for n in range(tasks)})
        pending = set(range(tasks))
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i, client in enumerate(clients):
                    nursery.start_soon(worker, f"worker{i + 1}", client, prefix, pending, sink, log, freeze and i == 0)
        done = {n: v for n in range(tasks) if (v := await clients[0].get(f"{prefix}done/{n}")) is not None}
    return Report(prefix, tasks, sink, done, log)


async def amain(args: argparse.Namespace) -> None:
    report = await run(args.cluster, args.cookie, args.tasks, args.workers, not args.no_freeze)
    for line in report.log:
        print(line)
    print(f"\n{len(report.done)}/{report.tasks} tasks done, {len(report.sink.refused)} stale result(s) refused")
    for task in sorted(report.done):
        print(f"  task {task}: {report.done[task].decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--no-freeze", action="store_true", help="no worker freezes past its lock's TTL")
    args = parser.parse_args()
    if args.tasks < 1 or args.workers < (1 if args.no_freeze else 2):
        parser.error("--tasks >= 1, and --workers >= 2 (1 with --no-freeze)")
    run_main(amain, args)


if __name__ == "__main__":
    main()
