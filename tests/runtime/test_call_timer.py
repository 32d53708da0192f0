"""Call timeouts are kept by one node-wide timer (`_CallTimer`): exact, independent, leak-free."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.lowlevel

import ergo_py as e
from ergo_py import PID, Ref


class Slow(e.Actor):
    """Answers ("sleep", s) after s seconds; "handled": how many calls came before; else at once."""

    async def init(self) -> None:
        self.handled = 0

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        if request == "handled":
            return self.handled
        self.handled += 1
        if isinstance(request, tuple) and request[0] == "sleep":
            await trio.sleep(request[1])
        return request


async def test_each_call_times_out_at_its_own_deadline(autojump_clock: Any) -> None:
    async with e.start_node("t@localhost") as node:
        busy = await node.spawn(Slow)
        start = trio.current_time()
        timed_out: dict[float, float] = {}

        async def call(timeout: float) -> None:
            with pytest.raises(e.CallTimeout) as info:
                await node.call(busy, ("sleep", 100), timeout=timeout)
            assert info.value.timeout == timeout
            timed_out[timeout] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            # A shorter timeout after a longer one: the timer must wake earlier than it planned.
            for timeout in (10.0, 1.0, 5.0, 0.0):
                nursery.start_soon(call, timeout)
                await trio.lowlevel.checkpoint()
        assert timed_out == {10.0: 10.0, 1.0: 1.0, 5.0: 5.0, 0.0: 0.0}
        assert node.statistics()["pending_calls"] == 0


async def test_answered_calls_leave_nothing_behind(autojump_clock: Any) -> None:
    async with e.start_node("t@localhost") as node:
        slow, quick = await node.spawn(Slow), await node.spawn(Slow)
        heap = node._call_timer._heap

        async def stuck() -> None:
            with pytest.raises(e.CallTimeout):
                await node.call(slow, ("sleep", 100), timeout=10)

        async with trio.open_nursery() as nursery:
            # The earliest deadline stays pending while thousands of later ones are answered.
            nursery.start_soon(stuck)
            await trio.sleep(0.5)
            for i in range(3000):
                assert await node.call(quick, i, timeout=60) == i
            # Their entries, stuck behind it in the heap, are compacted away rather than kept.
            assert 1 <= len(heap) <= 2 * 1 + 256 + 1
        assert trio.current_time() == 10
        assert heap == []
        assert node.statistics()["pending_calls"] == 0


async def test_a_cancelled_caller_disturbs_no_other_call(autojump_clock: Any) -> None:
    async with e.start_node("t@localhost") as node:
        busy = await node.spawn(Slow)
        with trio.move_on_after(0.5) as scope:
            await node.call(busy, ("sleep", 100), timeout=10)
        assert scope.cancelled_caught
        assert node.statistics()["pending_calls"] == 0
        assert node._call_timer._heap == []  # its entry went with it
        start = trio.current_time()
        with pytest.raises(e.CallTimeout):
            await node.call(busy, "queued behind the sleep", timeout=2)
        assert trio.current_time() - start == 2
        # The cancelled call's deadline passes quietly; the node still answers calls.
        await trio.sleep(20)
        other = await node.spawn(Slow)
        assert await node.call(other, "still fine", timeout=1) == "still fine"


@pytest.mark.parametrize("timeout", [-1.0, math.nan, None])
async def test_a_bad_timeout_is_refused_before_the_request_is_sent(timeout: Any) -> None:
    with trio.fail_after(5):
        async with e.start_node("t@localhost") as node:
            pid = await node.spawn(Slow)
            with pytest.raises(ValueError, match="timeout"):
                await node.call(pid, "x", timeout=timeout)
            with pytest.raises(ValueError, match="timeout"):
                await node.inspect(pid, timeout=timeout)
            assert node.statistics()["pending_calls"] == 0
            assert await node.call(pid, "handled", timeout=1) == 0
