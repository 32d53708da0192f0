"""`LinkKeeper`: keeps a client's node linked to every member while the client owns locks.

The leader monitors each lock owner, and a monitor needs a link. A client node
without a listener (how `ctl` and most programs run) can only be reached over a link
it dialled itself, so after a leader change the new leader cannot see it until it
dials the new leader. The keeper, a process that monitors the client's own (and ends
with it, whatever its exit reason), re-dials any member whose link is down once a second, so that a new leader is
linked to within about a second of its election, well inside the leader's
`owner_grace_period`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

import ergo_py

__all__ = ["LinkKeeper", "KEEP_INTERVAL"]

KEEP_INTERVAL = 1.0  # seconds between checks
_DIAL_TIMEOUT = 0.5


class _Check:
    __slots__ = ()


_CHECK = _Check()


class LinkKeeper(ergo_py.Actor):
    async def init(self, nodes: Sequence[str], owner: ergo_py.PID) -> None:  # type: ignore[override]
        self.nodes = [n for n in nodes if n != self.node.name]
        self.monitor(owner)
        self.send_interval(self.pid, _CHECK, KEEP_INTERVAL)
        self.send(self.pid, _CHECK)  # at once, but without holding up the lock request

    async def handle_message(self, from_: Any, message: Any) -> None:
        if message is _CHECK:
            await self._check()
        elif isinstance(message, ergo_py.MessageDownPID):
            self.stop(ergo_py.NORMAL)

    async def _check(self) -> None:
        down = [n for n in self.nodes if not self.node.is_connected(n)]
        if not down:
            return
        async with trio.open_nursery() as nursery:
            for name in down:
                nursery.start_soon(self._dial, name)

    async def _dial(self, name: str) -> None:
        with trio.move_on_after(_DIAL_TIMEOUT):
            try:
                await self.node.connect(name)
            except (ergo_py.ErgoError, OSError, ValueError):
                pass  # down or unreachable now: the next check tries again
