"""A process mailbox: three FIFO queues read in priority order, and one waiting reader.

Priorities follow Ergo (urgent / system / main): exit signals and stop requests
before down messages before ordinary messages and calls. Only the owning process
reads; anyone on the node's trio thread writes. Writers never block.

The wakeup uses trio's low-level park/reschedule directly (as trio's own memory
channels do) so a local send costs a deque append and, at most, one reschedule.

Each item keeps the time it was put (trio's clock): `received_at` is that of the item
last taken, so a process can tell when the message it handles arrived (a timer it
keeps lazily, like a Raft shell's ticks, is then advanced to that time, as a ticker's
messages queued behind it would have been).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

__all__ = ["Mailbox", "MSG", "CALL", "EXIT", "STOP", "DOWN", "INSPECT"]

# Item kinds. Every item is a 4-tuple (kind, a, b, c) to keep dispatch cheap.
MSG = 0  # (MSG, from_, message, None)
CALL = 1  # (CALL, from_, ref, request)
EXIT = 2  # (EXIT, from_pid, reason, None)         urgent
STOP = 3  # (STOP, None, reason, None)             urgent
DOWN = 4  # (DOWN, monitor_ref, down_message, None) system
INSPECT = 5  # (INSPECT, from_, ref, None)         system

_YIELD_EVERY = 32

Item = tuple[int, Any, Any, Any]


_now = trio.current_time


class Mailbox:
    __slots__ = ("urgent", "system", "main", "_waiter", "_budget", "received_at")

    def __init__(self) -> None:
        self.urgent: deque[tuple[Item, float]] = deque()
        self.system: deque[tuple[Item, float]] = deque()
        self.main: deque[tuple[Item, float]] = deque()
        self._waiter: Any = None
        self._budget = _YIELD_EVERY
        self.received_at = 0.0  # when the item last taken was put

    def __len__(self) -> int:
        return len(self.urgent) + len(self.system) + len(self.main)

    def _wake(self) -> None:
        task = self._waiter
        if task is not None:
            self._waiter = None
            trio.lowlevel.reschedule(task)

    def put(self, item: Item) -> None:
        self.main.append((item, _now()))
        if self._waiter is not None:
            self._wake()

    def put_system(self, item: Item) -> None:
        self.system.append((item, _now()))
        if self._waiter is not None:
            self._wake()

    def put_urgent(self, item: Item) -> None:
        self.urgent.append((item, _now()))
        if self._waiter is not None:
            self._wake()

    def _abort(self, raise_cancel: Any) -> Any:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def get(self) -> Item:
        """The next item by priority; parks the reader while all queues are empty."""
        while True:
            if self.urgent:
                item, self.received_at = self.urgent.popleft()
                return item
            if self.system or self.main:
                # A process that always has mail still lets other tasks run now and then.
                self._budget -= 1
                if self._budget <= 0:
                    self._budget = _YIELD_EVERY
                    await trio.lowlevel.checkpoint()
                    continue
                item, self.received_at = (self.system or self.main).popleft()
                return item
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
