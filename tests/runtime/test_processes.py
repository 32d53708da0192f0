"""Processes: spawn, send, call, names, priorities, timers, failure isolation."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import PID, ProcessID, Ref


class Recorder(e.Actor):
    """Keeps every message it gets; answers calls from a small vocabulary."""

    async def init(self, *args: Any) -> None:
        self.got: list[Any] = []
        self.args = args

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.got.append(message)
        if message == "crash":
            raise RuntimeError("asked to crash")
        if message == "stop":
            self.stop("bye")

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        if request == "got":
            return list(self.got)
        if request == "args":
            return self.args
        if request == "boom":
            raise KeyError("boom")
        if isinstance(request, tuple) and request[0] == "sleep":
            await trio.sleep(request[1])
            return "slept"
        return ("echo", request)


async def got(node: e.Node, pid: Any) -> list[Any]:
    return await node.call(pid, "got")  # type: ignore[no-any-return]


async def test_spawn_runs_init_with_args_and_returns_pid() -> None:
    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Recorder, 1, "two")
        assert isinstance(pid, PID) and pid.node == "t@localhost" and pid.creation == node.creation
        assert await node.call(pid, "args") == (1, "two")
        assert node.is_alive(pid)


async def test_spawn_raises_when_init_fails_and_leaves_nothing() -> None:
    class Failing(e.Actor):
        async def init(self) -> None:
            raise ValueError("bad config")

    async with e.start_node("t@localhost") as node:
        with pytest.raises(e.SpawnError) as info:
            await node.spawn(Failing, name="failing")
        assert "bad config" in str(info.value)
        assert node.whereis("failing") is None
        assert node.processes() == []


async def test_send_delivers_in_order_with_sender() -> None:
    class Sender(e.Actor):
        async def init(self, to: PID) -> None:
            for i in range(100):
                self.send(to, i)

    async with e.start_node("t@localhost") as node:
        rec = await node.spawn(Recorder)
        await node.spawn(Sender, rec)
        assert await got(node, rec) == list(range(100))


async def test_names_resolve_and_clash() -> None:
    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Recorder, name="rec")
        assert node.whereis("rec") == pid
        node.send("rec", "hello")
        node.send(ProcessID("rec", node.name), "again")
        assert await node.call("rec", "got") == ["hello", "again"]
        with pytest.raises(e.NameTaken):
            await node.spawn(Recorder, name="rec")
        with pytest.raises(ValueError):
            await node.spawn(Recorder, name="bad@name")
        with pytest.raises(e.ProcessUnknown):
            node.send("nobody", 1)
        node.kill(pid)
        await trio.testing.wait_all_tasks_blocked()
        assert node.whereis("rec") is None


async def test_call_timeout_and_late_reply_dropped(autojump_clock: Any) -> None:
    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Recorder)
        with pytest.raises(e.CallTimeout):
            await node.call(pid, ("sleep", 10), timeout=1)
        # The late reply arrives after the caller gave up: dropped, nothing pending.
        await trio.sleep(20)
        assert node.statistics()["pending_calls"] == 0
        assert await node.call(pid, "x") == ("echo", "x")


async def test_call_keeps_mailbox_filling_while_waiting() -> None:
    class Caller(e.Actor):
        async def init(self, callee: PID) -> None:
            self.callee = callee
            self.seen: list[Any] = []

        async def handle_message(self, from_: PID | None, message: Any) -> None:
            self.seen.append(message)

        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if request == "go":
                answer = await self.call(self.callee, ("sleep", 0.05))
                return (answer, list(self.seen))
            return list(self.seen)

    async with e.start_node("t@localhost") as node:
        callee = await node.spawn(Recorder)
        caller = await node.spawn(Caller, callee)
        async with trio.open_nursery() as n:

            async def go() -> None:
                assert await node.call(caller, "go") == ("slept", [])

            n.start_soon(go)
            await trio.sleep(0.01)
            node.send(caller, "queued while calling")
        assert await node.call(caller, "seen") == ["queued while calling"]


async def test_call_errors_unknown_self_and_callee_exception() -> None:
    class SelfCaller(e.Actor):
        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            try:
                await self.call(self.pid, "x")
            except e.CallError as exc:
                return f"refused: {exc}"
            return "deadlock"

    async with e.start_node("t@localhost") as node:
        with pytest.raises(e.ProcessUnknown):
            await node.call(PID(node.name, 99999, node.creation), "x")
        with pytest.raises(e.ProcessUnknown):
            await node.call("nobody", "x")
        sc = await node.spawn(SelfCaller)
        assert (await node.call(sc, "go")).startswith("refused")
        pid = await node.spawn(Recorder)
        with pytest.raises(KeyError, match="boom"):
            await node.call(pid, "boom")
        # The callee that raised ended with a panic; the node is fine.
        await trio.testing.wait_all_tasks_blocked()
        assert not node.is_alive(pid)
        assert node.is_alive(sc)


async def test_call_fails_fast_when_callee_dies() -> None:
    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Recorder)
        async with trio.open_nursery() as n:
            n.start_soon(lambda: trio.sleep(0.01))

            async def killer() -> None:
                await trio.sleep(0.01)
                node.kill(pid)

            n.start_soon(killer)
            with trio.fail_after(2):
                with pytest.raises(e.ProcessExited):
                    await node.call(pid, ("sleep", 30), timeout=60)


async def test_no_reply_answered_later_by_another_process() -> None:
    class Front(e.Actor):
        async def init(self, back: PID) -> None:
            self.back = back

        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            self.send(self.back, (from_, ref, request))
            return e.NO_REPLY

    class Back(e.Actor):
        async def handle_message(self, from_: PID | None, message: Any) -> None:
            caller, ref, request = message
            if request == "fail":
                self.send_response_error(caller, ref, ValueError("no such thing"))
            else:
                self.send_response(caller, ref, ("answered by back", request))

    async with e.start_node("t@localhost") as node:
        back = await node.spawn(Back)
        front = await node.spawn(Front, back)
        assert await node.call(front, 7) == ("answered by back", 7)
        with pytest.raises(ValueError, match="no such thing"):
            await node.call(front, "fail")


async def test_crash_is_isolated_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with e.start_node("t@localhost") as node:
        a = await node.spawn(Recorder)
        b = await node.spawn(Recorder)
        with caplog.at_level(logging.ERROR):
            node.send(a, "crash")
            await trio.testing.wait_all_tasks_blocked()
        assert not node.is_alive(a)
        assert node.is_alive(b)
        assert await node.call(b, "x") == ("echo", "x")
        records = [r for r in caplog.records if "asked to crash" in r.getMessage()]
        assert records and records[0].pid == a and records[0].node == node.name  # type: ignore[attr-defined]
        assert "Traceback" in records[0].getMessage()


async def test_stop_with_reason_reaches_terminate_and_monitors() -> None:
    seen: list[Any] = []

    class Stopper(e.Actor):
        async def handle_message(self, from_: PID | None, message: Any) -> None:
            self.stop(message)

        async def terminate(self, reason: Any) -> None:
            seen.append(reason)

    class Watcher(Recorder):
        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if isinstance(request, tuple) and request[0] == "watch":
                return self.monitor(request[1])
            return await super().handle_call(from_, ref, request)

    async with e.start_node("t@localhost") as node:
        s = await node.spawn(Stopper)
        w = await node.spawn(Watcher)
        await node.call(w, ("watch", s))
        node.send(s, "my reason")
        with trio.fail_after(2):
            while not await got(node, w):
                await trio.sleep(0.001)
        assert await got(node, w) == [e.MessageDownPID(s, "my reason")]
        assert seen == ["my reason"]


async def test_kill_skips_terminate() -> None:
    seen: list[Any] = []

    class T(e.Actor):
        async def terminate(self, reason: Any) -> None:
            seen.append(reason)

    async with e.start_node("t@localhost") as node:
        a = await node.spawn(T)
        b = await node.spawn(T)
        node.kill(a)
        await node.stop_process(b, "custom")
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["custom"]
        with pytest.raises(e.ProcessUnknown):
            node.kill(a)


async def test_mailbox_priority_exit_before_down_before_messages() -> None:
    class Busy(e.Actor):
        async def init(self) -> None:
            self.trap_exit = True
            self.order: list[str] = []

        async def handle_message(self, from_: PID | None, message: Any) -> None:
            if message == "block":
                await trio.sleep(0.05)
                return
            self.order.append(type(message).__name__ if not isinstance(message, str) else message)

        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if request[0] == "link":
                self.link(request[1])
            elif request[0] == "monitor":
                self.monitor(request[1])
            return self.order

    async with e.start_node("t@localhost") as node:
        busy = await node.spawn(Busy)
        linked = await node.spawn(Recorder)
        watched = await node.spawn(Recorder)
        await node.call(busy, ("link", linked))
        await node.call(busy, ("monitor", watched))
        node.send(busy, "block")
        await trio.sleep(0.01)  # busy is inside its handler now
        node.send(busy, "ordinary")
        node.kill(watched)
        node.send(linked, "crash")
        await trio.sleep(0.2)
        order = await node.call(busy, ("order",))
        assert order == ["MessageExitPID", "MessageDownPID", "ordinary"]


async def test_send_after_and_cancel(autojump_clock: Any) -> None:
    class Timers(Recorder):
        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if request == "arm":
                self.send_after(self.pid, "fired", 5)
                handle = self.send_after(self.pid, "cancelled", 5)
                assert handle.cancel()
                return None
            return await super().handle_call(from_, ref, request)

    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Timers)
        await node.call(pid, "arm")
        await trio.sleep(4)
        assert await got(node, pid) == []
        await trio.sleep(2)
        assert await got(node, pid) == ["fired"]


async def test_process_info_and_inspect() -> None:
    class Inspectable(e.Actor):
        async def handle_inspect(self) -> dict[str, Any]:
            return {"answer": 42}

    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Inspectable, name="insp")
        info = node.process_info(pid)
        assert info is not None
        assert (info.pid, info.name, info.behavior, info.trap_exit) == (pid, "insp", "Inspectable", False)
        assert await node.inspect("insp") == {"answer": 42}
        node.kill(pid)
        await trio.testing.wait_all_tasks_blocked()
        assert node.process_info(pid) is None


async def test_shutdown_stops_most_recent_first_with_reason_shutdown() -> None:
    order: list[tuple[int, Any]] = []

    class T(e.Actor):
        async def init(self, n: int) -> None:
            self.n = n

        async def terminate(self, reason: Any) -> None:
            order.append((self.n, reason))

    async with e.start_node("t@localhost") as node:
        for i in range(5):
            await node.spawn(T, i)
    assert order == [(i, e.SHUTDOWN) for i in reversed(range(5))]
    assert not node.is_running
    with pytest.raises(e.NodeNotRunning):
        await node.spawn(T, 9)


async def test_creation_and_refs_are_unique() -> None:
    async with e.start_node("t@localhost") as n1:
        refs = {n1.make_ref() for _ in range(1000)}
        assert len(refs) == 1000
        old = await n1.spawn(Recorder)
    async with e.start_node("t@localhost") as n2:
        assert n2.creation != n1.creation
        new = await n2.spawn(Recorder)
        assert old.id == new.id and old != new
        assert not n2.is_alive(old)
        with pytest.raises(e.ProcessUnknown):
            await n2.call(old, "x")
        n2.send(old, "dropped")  # a PID of an earlier incarnation never reaches the new process
        assert await got(n2, new) == []


async def test_alarm_fires_at_the_time_set_last_and_ends_with_its_process(autojump_clock: Any) -> None:
    class Alarmed(Recorder):
        async def init(self, *args: Any) -> None:
            await super().init(*args)
            self.alarm_ = self.alarm("ring")

        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if isinstance(request, tuple) and request[0] == "set":
                self.alarm_.set_at(trio.current_time() + request[1])
                return self.alarm_.deadline
            if request == "clear":
                self.alarm_.clear()
                return None
            if request == "cancel":
                self.alarm_.cancel()
                return None
            return await super().handle_call(from_, ref, request)

    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Alarmed)
        await node.call(pid, ("set", 2))
        await trio.sleep(1)
        await node.call(pid, ("set", 2))  # pushed back: nothing at the first time
        await trio.sleep(1.5)
        assert await got(node, pid) == []
        await trio.sleep(1)
        assert await got(node, pid) == ["ring"]  # once per time set
        await trio.sleep(5)
        assert await got(node, pid) == ["ring"]
        await node.call(pid, ("set", 1))  # set again after it fired
        await node.call(pid, ("set", 0.5))  # and brought forward
        await trio.sleep(0.75)
        assert await got(node, pid) == ["ring"] * 2
        await node.call(pid, ("set", 1))
        await node.call(pid, "clear")
        await trio.sleep(2)
        assert await got(node, pid) == ["ring"] * 2
        await node.call(pid, ("set", -1))  # in the past: at once
        await trio.sleep(0.01)
        assert await got(node, pid) == ["ring"] * 3
        await node.call(pid, ("set", 1))
        await node.call(pid, "cancel")
        await trio.sleep(2)
        assert await got(node, pid) == ["ring"] * 3
        await trio.testing.wait_all_tasks_blocked()
        tasks = trio.lowlevel.current_statistics().tasks_living
        other = await node.spawn(Alarmed)
        await node.call(other, ("set", 1))
        node.kill(other)
        await trio.sleep(0.1)
        await trio.testing.wait_all_tasks_blocked()
        # The killed process's alarm task is gone with it, long before its time.
        assert trio.lowlevel.current_statistics().tasks_living == tasks


async def test_received_at_is_when_a_message_entered_the_mailbox_not_when_it_is_handled(autojump_clock: Any) -> None:
    class Slow(Recorder):
        async def handle_message(self, from_: PID | None, message: Any) -> None:
            self.got.append((message, self.received_at, trio.current_time()))
            await trio.sleep(1)  # busy: the next messages wait in the mailbox

    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Slow)
        start = trio.current_time()
        for i in range(3):
            node.send(pid, i)
            await trio.sleep(0.1)
        await trio.sleep(3)
        seen = await got(node, pid)
        assert [m for m, _, _ in seen] == [0, 1, 2]
        assert [round(at - start, 3) for _, at, _ in seen] == [0.0, 0.1, 0.2]  # when each was sent
        assert [round(handled - start, 3) for _, _, handled in seen] == [0.0, 1.0, 2.0]


async def test_send_interval_repeats_until_cancelled_or_owner_ends(autojump_clock: Any) -> None:
    class Ticker(Recorder):
        async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
            if request == "arm":
                self.handle = self.send_interval(self.pid, "tick", 1)
                return None
            if request == "disarm":
                self.handle.cancel()
                return None
            return await super().handle_call(from_, ref, request)

    async with e.start_node("t@localhost") as node:
        pid = await node.spawn(Ticker)
        await node.call(pid, "arm")
        await trio.sleep(3.5)
        assert await got(node, pid) == ["tick"] * 3
        await node.call(pid, "disarm")
        await trio.sleep(3)
        assert await got(node, pid) == ["tick"] * 3
        other = await node.spawn(Ticker)
        await node.call(other, "arm")
        node.kill(other)
        await trio.sleep(3)
        await trio.testing.wait_all_tasks_blocked()
