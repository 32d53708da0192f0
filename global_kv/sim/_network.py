"""A simulated network: seeded loss, duplication, delay (hence reordering), partitions.

Messages are values handed over in memory; nothing here touches a socket or a clock
(time is the simulator's tick counter). Links are directed, so one-way partitions are
just a blocked (src, dst) pair. A message is checked against the partition when it
is delivered, so a partition also swallows what was already in flight.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from ..raft import Message

__all__ = ["SimNetwork"]


class SimNetwork:
    """Delivers messages after 1..max_delay ticks, unless dropped, maybe twice."""

    def __init__(self, rng: random.Random, loss: float, dup: float, max_delay: int) -> None:
        self.rng = rng
        self.loss = loss
        self.dup = dup
        self.max_delay = max_delay
        self.blocked: set[tuple[str, str]] = set()
        self._heap: list[tuple[int, int, Message]] = []
        self._seq = 0
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def send(self, m: Message, now: int) -> None:
        rng = self.rng
        self.sent += 1
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 1
        if self.dup and rng.random() < self.dup:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            self._seq += 1
            heapq.heappush(self._heap, (now + rng.randint(1, self.max_delay), self._seq, m))

    def send_all(self, msgs: Iterable[Message], now: int) -> None:
        for m in msgs:
            self.send(m, now)

    def pop_due(self, now: int) -> list[Message]:
        """Messages due by `now`, in delivery order, minus those a partition swallows."""
        heap = self._heap
        out: list[Message] = []
        blocked = self.blocked
        while heap and heap[0][0] <= now:
            m = heapq.heappop(heap)[2]
            if blocked and (m.src, m.dst) in blocked:
                self.dropped += 1
                continue
            out.append(m)
        return out

    def in_flight(self) -> int:
        """Messages sent and not yet delivered (or swallowed)."""
        return len(self._heap)

    # --- partitions ------------------------------------------------------------------

    def heal(self) -> None:
        self.blocked = set()

    def split(self, groups: list[list[str]]) -> None:
        """Only nodes in the same group can talk (nodes in no group talk to everyone)."""
        where = {n: g for g, members in enumerate(groups) for n in members}
        self.blocked = {(a, b) for a in where for b in where if a != b and where[a] != where[b]}

    def isolate(self, node: str, others: Iterable[str]) -> None:
        for o in others:
            if o != node:
                self.blocked.add((node, o))
                self.blocked.add((o, node))

    def block_one_way(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))
