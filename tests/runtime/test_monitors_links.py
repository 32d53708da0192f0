"""Monitors (exactly one DOWN, noproc, demonitor) and links (exit propagation, trap_exit)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import PID, ProcessID, Ref


class Agent(e.Actor):
    """Does what it is told by call, records every message."""

    async def init(self, trap: bool = False) -> None:
        self.trap_exit = trap
        self.got: list[Any] = []

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.got.append(message)
        if message == "crash":
            raise RuntimeError("crash on request")
        if isinstance(message, tuple) and message[0] == "exit":
            self.stop(message[1])

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        op, *args = request
        if op == "monitor":
            return self.monitor(args[0])
        if op == "demonitor":
            self.demonitor(args[0])
            return list(self.got)
        if op == "link":
            self.link(args[0])
        elif op == "unlink":
            self.unlink(args[0])
        elif op == "got":
            return list(self.got)
        return None


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_down_exactly_once_per_monitor() -> None:
    async with e.start_node("t@localhost") as node:
        w = await node.spawn(Agent)
        t = await node.spawn(Agent)
        await node.call(w, ("monitor", t))
        await node.call(w, ("monitor", t))
        node.send(t, ("exit", "done"))
        await settle()
        assert await node.call(w, ("got",)) == [e.MessageDownPID(t, "done")] * 2
        await settle()
        assert await node.call(w, ("got",)) == [e.MessageDownPID(t, "done")] * 2
        assert node.statistics()["monitors"] == 0


async def test_monitor_of_missing_process_is_noproc_at_once() -> None:
    async with e.start_node("t@localhost") as node:
        w = await node.spawn(Agent)
        gone = await node.spawn(Agent)
        node.kill(gone)
        await settle()
        await node.call(w, ("monitor", gone))
        await node.call(w, ("monitor", "no_such_name"))
        await settle()
        assert await node.call(w, ("got",)) == [
            e.MessageDownPID(gone, e.NOPROC),
            e.MessageDownProcessID(ProcessID("no_such_name", node.name), e.NOPROC),
        ]


async def test_monitor_by_name_reports_the_name_and_panic_reason() -> None:
    async with e.start_node("t@localhost") as node:
        w = await node.spawn(Agent)
        await node.spawn(Agent, name="svc")
        await node.call(w, ("monitor", "svc"))
        node.send("svc", "crash")
        await settle()
        [down] = await node.call(w, ("got",))
        assert isinstance(down, e.MessageDownProcessID)
        assert down.process_id == ProcessID("svc", node.name)
        assert isinstance(down.reason, e.Panic) and "crash on request" in down.reason.error


async def test_no_down_after_demonitor_even_if_already_queued() -> None:
    class Slow(Agent):
        async def handle_message(self, from_: PID | None, message: Any) -> None:
            if message == "block":
                await trio.sleep(0.05)
                self.demonitor(self.target)
                return
            await super().handle_message(from_, message)

        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if request[0] == "monitor":
                self.target = request[1]
            return await super().handle_call(from_, ref, request)

    async with e.start_node("t@localhost") as node:
        w = await node.spawn(Slow)
        t = await node.spawn(Agent)
        await node.call(w, ("monitor", t))
        node.send(w, "block")
        await trio.sleep(0.01)
        node.kill(t)  # DOWN queued while w is busy; w demonitors before reading it
        await trio.sleep(0.1)
        assert await node.call(w, ("got",)) == []


async def test_abnormal_exit_kills_linked_process() -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Agent)
        b = await node.spawn(Agent)
        c = await node.spawn(Agent)
        await node.call(a, ("link", b))
        await node.call(b, ("link", c))
        node.send(a, "crash")
        await settle()
        assert not node.is_alive(b) and not node.is_alive(c)


async def test_trap_exit_turns_exits_into_messages() -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Agent)
        trapper = await node.spawn(Agent, True)
        await node.call(trapper, ("link", a))
        node.send(a, ("exit", "failure"))
        await settle()
        assert node.is_alive(trapper)
        assert await node.call(trapper, ("got",)) == [e.MessageExitPID(a, "failure")]


async def test_normal_exit_does_not_kill_linked_process() -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Agent)
        b = await node.spawn(Agent)
        await node.call(b, ("link", a))
        node.send(a, ("exit", e.NORMAL))
        await settle()
        assert node.is_alive(b)
        assert node.process_info(b).links == ()  # type: ignore[union-attr]


async def test_unlink_stops_propagation_and_link_to_dead_is_noproc() -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Agent)
        b = await node.spawn(Agent)
        await node.call(b, ("link", a))
        await node.call(b, ("unlink", a))
        node.send(a, "crash")
        await settle()
        assert node.is_alive(b)
        trapper = await node.spawn(Agent, True)
        await node.call(trapper, ("link", a))
        await settle()
        assert await node.call(trapper, ("got",)) == [e.MessageExitPID(a, e.NOPROC)]
        victim = await node.spawn(Agent)
        # Linking to a dead process from a process that does not trap exits kills it.
        await node.call(victim, ("link", a))
        await settle()
        assert not node.is_alive(victim)


async def test_kill_propagates_as_trappable_kill_to_links() -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Agent)
        trapper = await node.spawn(Agent, True)
        await node.call(trapper, ("link", a))
        node.kill(a)
        await settle()
        assert await node.call(trapper, ("got",)) == [e.MessageExitPID(a, e.KILL)]


async def test_node_monitor_without_network_fires_at_once() -> None:
    async with e.start_node("t@localhost") as node:
        w = await node.spawn(Agent)
        await node.call(w, ("monitor", "other@localhost"))
        await settle()
        assert await node.call(w, ("got",)) == [e.MessageDownNode("other@localhost")]


async def test_remote_send_without_network_is_a_clear_error() -> None:
    async with e.start_node("t@localhost") as node:
        with pytest.raises(e.NoConnection, match="no network"):
            node.send(PID("other@localhost", 1, 1), "x")
