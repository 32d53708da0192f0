"""Processes on two nodes over real loopback websockets: remote send, call, monitor, link."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
import trio

import ergo_py as e
from ergo_py import PID, ProcessID, Ref

COOKIE = "test-cookie"


class Agent(e.Actor):
    async def init(self, trap: bool = False) -> None:
        self.trap_exit = trap
        self.got: list[Any] = []

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.got.append(message)
        if message == "crash":
            raise RuntimeError("crash on request")

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        op, *args = request
        if op == "echo":
            return args[0]
        if op == "send":
            self.send(args[0], args[1])
        elif op == "call":
            return await self.call(args[0], args[1], timeout=args[2] if len(args) > 2 else 5.0)
        elif op == "monitor":
            return self.monitor(args[0])
        elif op == "demonitor":
            self.demonitor(args[0])
        elif op == "link":
            self.link(args[0])
        elif op == "got":
            return list(self.got)
        elif op == "raise":
            raise ValueError("raised remotely")
        elif op == "sleep":
            await trio.sleep(args[0])
        return None


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[e.Node, e.Node]]:
    async with e.start_node("a@localhost", e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as a:
        routes = {"a@localhost": f"ws://127.0.0.1:{a.port}"}
        async with e.start_node(
            "b@localhost", e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0), routes=routes)
        ) as b:
            a.add_route("b@localhost", f"ws://127.0.0.1:{b.port}")
            yield a, b


async def eventually(fn: Any, timeout: float = 3.0) -> Any:
    with trio.fail_after(timeout):
        while True:
            value = await fn()
            if value:
                return value
            await trio.sleep(0.01)


async def test_remote_send_and_call_by_pid_and_name() -> None:
    with trio.fail_after(10):
        async with two_nodes() as (a, b):
            pa = await a.spawn(Agent, name="agent")
            pb = await b.spawn(Agent)
            await b.call(pb, ("send", pa, "over the wire"))
            await b.call(pb, ("send", ProcessID("agent", "a@localhost"), "by name"))
            assert await eventually(lambda: b.call(pb, ("call", pa, ("got",)))) == ["over the wire", "by name"]
            assert await b.call(ProcessID("agent", "a@localhost"), ("echo", {"x": (1, 2)})) == {"x": (1, 2)}
            # An exception type that is not registered for the wire crosses as RemoteError.
            with pytest.raises(e.net.RemoteError, match="ValueError: raised remotely"):
                await b.call(pa, ("raise",))


async def test_remote_call_errors_unknown_timeout_and_stale_creation() -> None:
    with trio.fail_after(10):
        async with two_nodes() as (a, b):
            with pytest.raises(e.ProcessUnknown):
                await b.call(ProcessID("nobody", "a@localhost"), ("echo", 1))
            pa = await a.spawn(Agent)
            with pytest.raises(e.CallTimeout):
                await b.call(pa, ("sleep", 1), timeout=0.2)
            stale = PID(pa.node, pa.id, pa.creation + 2)
            with pytest.raises(e.ProcessUnknown):
                await b.call(stale, ("echo", 1))


async def test_remote_monitor_fires_with_reason_and_noproc() -> None:
    with trio.fail_after(10):
        async with two_nodes() as (a, b):
            pa = await a.spawn(Agent)
            watcher = await b.spawn(Agent)
            await b.call(watcher, ("monitor", pa))
            await b.call(watcher, ("monitor", ProcessID("nobody", "a@localhost")))
            # Controls on one link arrive in order: once this call returns, the monitors are set.
            assert await b.call(pa, ("echo", "sync")) == "sync"
            a.send(pa, "crash")
            got = await eventually(lambda: _got_n(b, watcher, 2))
            assert e.MessageDownProcessID(ProcessID("nobody", "a@localhost"), e.NOPROC) in got
            [down] = [m for m in got if isinstance(m, e.MessageDownPID)]
            assert down.pid == pa and isinstance(down.reason, e.Panic)


async def _got_n(node: e.Node, pid: PID, n: int) -> list[Any] | None:
    got = await node.call(pid, ("got",))
    return got if len(got) >= n else None


async def test_remote_link_propagates_exit_and_trap() -> None:
    with trio.fail_after(10):
        async with two_nodes() as (a, b):
            pa = await a.spawn(Agent)
            trapper = await b.spawn(Agent, True)
            plain = await b.spawn(Agent)
            await b.call(trapper, ("link", pa))
            await b.call(plain, ("link", pa))
            assert await b.call(pa, ("echo", "sync")) == "sync"
            a.send(pa, "crash")
            got = await eventually(lambda: _got_n(b, trapper, 1))
            assert isinstance(got[0], e.MessageExitPID) and got[0].pid == pa
            await eventually(lambda: _async(not b.is_alive(plain)))


async def _async(value: Any) -> Any:
    return value


async def test_link_loss_fires_noconnection_and_fails_calls_at_once() -> None:
    with trio.fail_after(10):
        async with e.start_node("a@localhost", e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as a:
            pa = await a.spawn(Agent, name="agent")
            routes = {"a@localhost": f"ws://127.0.0.1:{a.port}"}
            async with e.start_node("b@localhost", e.NodeOptions(cookie=COOKIE, routes=routes)) as b:
                watcher = await b.spawn(Agent, True)
                await b.call(watcher, ("monitor", pa))
                await b.call(watcher, ("monitor", "a@localhost"))
                await b.call(watcher, ("link", pa))
                caller = await b.spawn(Agent)
                result: list[Any] = []

                async def pending_call() -> None:
                    try:
                        await b.call(caller, ("call", pa, ("sleep", 30), 60), timeout=60)
                    except e.NoConnection as exc:
                        result.append(exc)

                async with trio.open_nursery() as n:
                    n.start_soon(pending_call)
                    await trio.sleep(0.2)
                    b.disconnect("a@localhost")
                got = await eventually(lambda: _got_n(b, watcher, 3))
                assert e.MessageDownPID(pa, e.NOCONNECTION) in got
                assert e.MessageDownNode("a@localhost") in got
                assert e.MessageExitPID(pa, e.NOCONNECTION) in got
                assert len(result) == 1
                # On a's side the link to b's watcher broke too: pa (not trapping exits) died.
                await eventually(lambda: _async(not a.is_alive(pa)))
                # A later send reconnects.
                pa2 = await a.spawn(Agent)
                assert await b.call(pa2, ("echo", "back"), timeout=5) == "back"


async def test_wrong_cookie_is_refused_and_nothing_else_is_affected() -> None:
    with trio.fail_after(10):
        async with e.start_node("a@localhost", e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as a:
            pa = await a.spawn(Agent)
            routes = {"a@localhost": f"ws://127.0.0.1:{a.port}"}
            async with e.start_node("b@localhost", e.NodeOptions(cookie="wrong", routes=routes)) as b:
                with pytest.raises(e.net.HandshakeError, match="cookie"):
                    await b.connect("a@localhost")
                with pytest.raises(e.NoConnection):
                    await b.call(pa, ("echo", 1), timeout=5)
            assert a.is_alive(pa) and await a.call(pa, ("echo", 2)) == 2


async def test_cleanup_under_outside_cancellation_can_still_reach_other_nodes() -> None:
    """A `finally` that calls another node still works when the whole node is being cancelled."""
    with trio.fail_after(10):
        async with e.start_node("a@localhost", e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as a:
            pa = await a.spawn(Agent, name="agent")
            routes = {"a@localhost": f"ws://127.0.0.1:{a.port}"}
            started = trio.current_time()
            with trio.move_on_after(0.5):
                async with e.start_node("b@localhost", e.NodeOptions(cookie=COOKIE, routes=routes)) as b:
                    try:
                        await trio.sleep(10)
                    finally:
                        with trio.CancelScope(shield=True):
                            await b.call(pa, ("send", pa, "released in finally"), timeout=5)
            assert trio.current_time() - started < 2
            assert await a.call(pa, ("got",)) == ["released in finally"]
