"""Identifiers, and 10,000 processes leaving nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import PID, ProcessID, Ref


def test_identifiers_are_immutable_hashable_ordered_readable() -> None:
    a, b = PID("n@h", 1, 7), PID("n@h", 2, 7)
    assert a < b and sorted([b, a]) == [a, b]
    assert {a: 1}[PID("n@h", 1, 7)] == 1
    assert PID("n@h", 1, 7) != PID("n@h", 1, 8)  # another incarnation
    with pytest.raises(AttributeError):
        a.id = 3  # type: ignore[misc]
    assert repr(a) == "<n@h.1.7>"
    assert repr(ProcessID("global", "n@h")) == "ProcessID('global', 'n@h')"
    assert repr(Ref("n@h", 7, 3)) == "#Ref<n@h.7.3>"
    assert ProcessID("a", "n@h") < ProcessID("b", "n@h")


@pytest.mark.parametrize("bad", ["", "noat", "a@", "@h", "a@b@c", "a b@h", 5])
async def test_invalid_node_names_are_rejected(bad: Any) -> None:
    with pytest.raises(ValueError, match="invalid node name"):
        async with e.start_node(bad):
            pass


async def test_ten_thousand_processes_leave_nothing_behind() -> None:
    class Short(e.Actor):
        async def init(self, peer: PID | None) -> None:
            if peer is not None:
                self.monitor(peer)
                self.link(peer)

        async def handle_message(self, from_: PID | None, message: Any) -> None:
            self.stop(e.NORMAL)

    with trio.fail_after(60):
        async with e.start_node("t@localhost") as node:
            prev = None
            for i in range(10_000):
                pid = await node.spawn(Short, prev, name=f"p{i}")
                prev = pid
            assert node.statistics()["processes"] == 10_000
            for pid in node.processes():
                node.send(pid, "go")
            while node.processes():
                await trio.sleep(0.01)
            assert node.statistics() == {
                "processes": 0,
                "names": 0,
                "monitors": 0,
                "remote_monitors": 0,
                "node_monitors": 0,
                "remote_links": 0,
                "pending_calls": 0,
            }
