"""A short tour of the ergo_py runtime: spawn, call, a crash, a supervisor restarting it.

Run: python examples/runtime_demo.py
"""

from __future__ import annotations

from typing import Any

import trio

import ergo_py as e


class Counter(e.Actor):
    async def init(self, start: int) -> None:
        self.value = start

    async def handle_call(self, from_: e.PID, ref: e.Ref, request: Any) -> Any:
        if request == "incr":
            self.value += 1
            return self.value
        if request == "crash":
            raise RuntimeError("asked to crash")
        return self.value


class Sup(e.Supervisor):
    async def init(self) -> e.SupervisorSpec:
        return e.SupervisorSpec(e.Strategy.ONE_FOR_ONE, [e.ChildSpec("counter", Counter, (0,))])


async def main() -> None:
    async with e.start_node("demo@localhost") as node:
        await node.spawn(Sup, name="sup")
        first = node.whereis("counter")
        print(f"counter started as {first}")
        for _ in range(3):
            print("incr ->", await node.call("counter", "incr"))
        try:
            await node.call("counter", "crash")
        except RuntimeError as exc:
            print(f"the call raised {exc!r}; the counter crashed, the node did not")
        await trio.sleep(0.05)
        second = node.whereis("counter")
        print(f"the supervisor restarted it as {second} (value {await node.call('counter', 'get')})")
    print("node stopped; every process ended with reason 'shutdown'")


if __name__ == "__main__":
    trio.run(main)
