"""Supervisors: restart sets and order per strategy, restart types, intensity, nesting."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import PID, Ref, Restart, Strategy

LOG: list[tuple[str, str]] = []  # (event, child name) in the order they happened


class Child(e.Actor):
    async def init(self, tag: str, fail_init: bool = False) -> None:
        if fail_init:
            raise RuntimeError(f"{tag} cannot start")
        self.tag = tag
        LOG.append(("start", tag))

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        if message == "crash":
            raise RuntimeError(f"{self.tag} crashed")
        if message == "normal":
            self.stop(e.NORMAL)

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        return self.tag

    async def terminate(self, reason: Any) -> None:
        LOG.append(("stop", self.tag))


def make_sup(strategy: Strategy, specs: list[e.ChildSpec], intensity: int = 5, period: float = 5.0) -> type:
    class Sup(e.Supervisor):
        async def init(self) -> e.SupervisorSpec:
            return e.SupervisorSpec(strategy, specs, intensity, period)

    return Sup


def three(restart: Restart = Restart.PERMANENT) -> list[e.ChildSpec]:
    return [e.ChildSpec(n, Child, (n,), restart) for n in ("a", "b", "c")]


@pytest.fixture(autouse=True)
def clear_log() -> None:
    LOG.clear()


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_children_start_in_order_registered_and_stop_in_reverse() -> None:
    async with e.start_node("t@localhost") as node:
        sup = await node.spawn(make_sup(Strategy.ONE_FOR_ONE, three()))
        assert LOG == [("start", "a"), ("start", "b"), ("start", "c")]
        assert [await node.call(n, "tag") for n in "abc"] == ["a", "b", "c"]
        LOG.clear()
        await node.stop_process(sup)
        assert LOG == [("stop", "c"), ("stop", "b"), ("stop", "a")]
        assert node.processes() == []


@pytest.mark.parametrize(
    "strategy, expected",
    [
        # The crashed child's own terminate runs first, then the strategy acts.
        (Strategy.ONE_FOR_ONE, [("stop", "b"), ("start", "b")]),
        (
            Strategy.ALL_FOR_ONE,
            [("stop", "b"), ("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
        (Strategy.REST_FOR_ONE, [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]),
    ],
)
async def test_strategy_restart_set_and_order(strategy: Strategy, expected: list[tuple[str, str]]) -> None:
    async with e.start_node("t@localhost") as node:
        await node.spawn(make_sup(strategy, three()))
        before = {n: node.whereis(n) for n in "abc"}
        LOG.clear()
        node.send("b", "crash")
        await settle()
        assert LOG == expected
        after = {n: node.whereis(n) for n in "abc"}
        restarted = {n for n in "abc" if after[n] != before[n]}
        assert restarted == {name for ev, name in expected if ev == "start"}
        assert all(pid is not None for pid in after.values())


@pytest.mark.parametrize(
    "restart, exit_msg, restarted",
    [
        (Restart.PERMANENT, "normal", True),
        (Restart.PERMANENT, "crash", True),
        (Restart.TRANSIENT, "normal", False),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TEMPORARY, "crash", False),
    ],
)
async def test_restart_types(restart: Restart, exit_msg: str, restarted: bool) -> None:
    async with e.start_node("t@localhost") as node:
        sup = await node.spawn(make_sup(Strategy.ONE_FOR_ONE, three(restart)))
        old = node.whereis("b")
        node.send("b", exit_msg)
        await settle()
        new = node.whereis("b")
        assert (new is not None and new != old) is restarted
        children = dict(await node.call(sup, e.WhichChildren()))
        if restart is Restart.TEMPORARY:
            assert "b" not in children
        assert node.is_alive(sup)


async def test_restart_storm_stops_supervisor_at_intensity() -> None:
    async with e.start_node("t@localhost") as node:
        watcher_seen: list[Any] = []

        class Watcher(e.Actor):
            async def init(self, target: PID) -> None:
                self.monitor(target)

            async def handle_message(self, from_: PID | None, message: Any) -> None:
                watcher_seen.append(message)

        sup = await node.spawn(make_sup(Strategy.ONE_FOR_ONE, three(), intensity=3, period=10))
        await node.spawn(Watcher, sup)
        for i in range(3):
            node.send("a", "crash")
            await settle()
            assert node.is_alive(sup), f"stopped after {i + 1} restarts"
        LOG.clear()
        node.send("a", "crash")  # the 4th restart within the period is one too many
        await settle()
        assert not node.is_alive(sup)
        assert LOG == [("stop", "a"), ("stop", "c"), ("stop", "b")]
        assert watcher_seen == [e.MessageDownPID(sup, e.SHUTDOWN)]
        assert [p for p in node.processes() if node.process_info(p).behavior == "Child"] == []  # type: ignore[union-attr]


async def test_restarts_outside_period_do_not_accumulate(autojump_clock: Any) -> None:
    async with e.start_node("t@localhost") as node:
        sup = await node.spawn(make_sup(Strategy.ONE_FOR_ONE, three(), intensity=1, period=5))
        for _ in range(4):
            node.send("a", "crash")
            await trio.sleep(6)
        assert node.is_alive(sup)


async def test_simple_one_for_one_start_child_and_restart() -> None:
    async with e.start_node("t@localhost") as node:
        sup = await node.spawn(
            make_sup(Strategy.SIMPLE_ONE_FOR_ONE, [e.ChildSpec("worker", Child, (), Restart.TRANSIENT)])
        )
        pids = [await node.call(sup, e.StartChild((f"w{i}",))) for i in range(3)]
        assert [await node.call(p, "tag") for p in pids] == ["w0", "w1", "w2"]
        node.send(pids[1], "crash")
        await settle()
        children = await node.call(sup, e.WhichChildren())
        assert len(children) == 3 and pids[1] not in [pid for _, pid in children]
        node.send(pids[0], "normal")  # transient + normal: gone, not restarted
        await settle()
        assert len(await node.call(sup, e.WhichChildren())) == 2
        assert await node.call(sup, e.TerminateChild(pids[2]))
        assert len(await node.call(sup, e.WhichChildren())) == 1


async def test_failing_child_init_fails_supervisor_start_and_stops_started_children() -> None:
    specs = [e.ChildSpec("a", Child, ("a",)), e.ChildSpec("b", Child, ("b", True))]
    async with e.start_node("t@localhost") as node:
        with pytest.raises(e.SpawnError):
            await node.spawn(make_sup(Strategy.ONE_FOR_ONE, specs))
        await settle()
        assert LOG == [("start", "a"), ("stop", "a")]
        assert node.processes() == []


async def test_nested_supervisors_restart_subtree() -> None:
    inner_specs = [e.ChildSpec(n, Child, (n,)) for n in ("x", "y")]
    Inner = make_sup(Strategy.ALL_FOR_ONE, inner_specs)
    outer_specs = [e.ChildSpec("inner", Inner), e.ChildSpec("z", Child, ("z",))]
    async with e.start_node("t@localhost") as node:
        outer = await node.spawn(make_sup(Strategy.ONE_FOR_ONE, outer_specs))
        inner = node.whereis("inner")
        LOG.clear()
        node.kill(inner)  # kill -> the inner supervisor's children die through their links
        await settle()
        assert node.whereis("inner") not in (None, inner)
        assert sorted(LOG) == [("start", "x"), ("start", "y")]
        assert node.is_alive(node.whereis("z"))  # type: ignore[arg-type]
        await node.stop_process(outer)
        assert node.processes() == []
