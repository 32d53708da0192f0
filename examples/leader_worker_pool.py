"""Leader election for a worker pool: only the leader hands out jobs, stamped with its fencing token.

Three nodes (here in one OS process, talking over real loopback websockets) each run
a `Dispatcher` (a LeaderActor) and a `Worker`. Whichever dispatcher leads hands jobs
to the workers round-robin, stamping each with its fencing token (its term). A worker
refuses a job whose token is lower than the highest it has seen, so a deposed leader
that has not noticed yet cannot give orders. Midway the leading dispatcher is killed;
another takes over with a higher token and the jobs continue.

Run: python examples/leader_worker_pool.py [--jobs 30]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.leader import LeaderActor, LeaderOptions

COOKIE = "worker-pool-example"
NODES = ("pool1@localhost", "pool2@localhost", "pool3@localhost")


@e.register_type(name="examples.Job")
@dataclass(frozen=True)
class Job:
    number: int
    token: int
    dispatcher: str


class Worker(e.Actor):
    """Runs jobs; rejects any job stamped with a token older than one it has seen."""

    async def init(self, log: list[str]) -> None:
        self.highest = 0
        self.out = log

    async def handle_message(self, from_: Any, job: Any) -> None:
        if not isinstance(job, Job):
            return
        if job.token < self.highest:
            self.out.append(f"{self.node.name}: REJECTED job {job.number} (token {job.token} < {self.highest})")
            return
        self.highest = job.token
        self.out.append(f"{self.node.name}: ran job {job.number} from {job.dispatcher} (token {job.token})")


class Dispatcher(LeaderActor):
    """Hands out one job per `interval` while it is the leader."""

    async def init(self, options: LeaderOptions, jobs: list[int], log: list[str]) -> None:
        await super().init(options)
        self.jobs, self.out, self.next_worker = jobs, log, 0
        self.send_interval(self.pid, "dispatch", 0.05)

    async def handle_become_leader(self) -> None:
        self.out.append(f"{self.node.name}: became leader, fencing token {self.fencing_token()}")

    async def handle_inspect(self) -> dict[str, Any]:
        return {"leader": self.is_leader(), "term": self.term()}

    async def handle_message(self, from_: Any, message: Any) -> None:
        if message != "dispatch" or not self.is_leader() or not self.jobs:
            return
        number = self.jobs.pop(0)
        worker = ProcessID("worker", NODES[self.next_worker % len(NODES)])
        self.next_worker += 1
        self.send(worker, Job(number, self.fencing_token() or 0, self.node.name))


async def run(jobs: int) -> list[str]:
    log: list[str] = []
    queue = list(range(1, jobs + 1))
    bootstrap = [ProcessID("dispatcher", n) for n in NODES]
    async with trio.open_nursery() as nursery:
        nodes: dict[str, e.Node] = {}
        ready = trio.Event()
        stop = trio.Event()

        async def run_node(name: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with e.start_node(name, e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as node:
                nodes[name] = node
                task_status.started()
                await ready.wait()
                await node.spawn(Worker, log, name="worker")
                options = LeaderOptions(cluster_id="pool", bootstrap=bootstrap)
                await node.spawn(Dispatcher, options, queue, log, name="dispatcher")
                await stop.wait()

        for name in NODES:
            await nursery.start(run_node, name)
        for a in NODES:
            for b in NODES:
                if a != b:
                    nodes[a].add_route(b, f"ws://127.0.0.1:{nodes[b].port}")
        ready.set()
        with trio.fail_after(60):
            while len(queue) > jobs // 2:
                await trio.sleep(0.02)
            for name, node in nodes.items():
                pid = node.whereis("dispatcher")
                if pid is not None and (await node.inspect(pid)).get("leader"):
                    log.append(f"{name}: killing the leading dispatcher")
                    node.kill(pid)
                    break
            while queue:
                await trio.sleep(0.02)
            await trio.sleep(0.3)
        stop.set()
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    for line in trio.run(run, args.jobs):
        print(line)


if __name__ == "__main__":
    main()
