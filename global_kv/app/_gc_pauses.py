"""How long Python's cyclic garbage collector stopped this process, per generation.

A collection stops every task of the node while it scans the tracked objects of its
generation and the younger ones. A full (generation 2) collection of a node's whole
start-up heap took 20-57 ms on the benchmark machine, a stall every client in flight
waited through, until `global-kv node` froze that heap once it serves
(`gc.freeze()`). The replica reports these figures with its metrics, the way Go
services export go_gc_duration_seconds, so an operator sees such pauses.
"""

from __future__ import annotations

import gc
import time
from typing import Any

__all__ = ["GCPauses", "gc_pauses"]


class GCPauses:
    """Counts, total and longest pause per generation since it was installed."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.max_seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info.get("generation")
        if self._started and generation in (0, 1, 2):
            took = time.perf_counter() - self._started
            self.count[generation] += 1
            self.seconds[generation] += took
            self.max_seconds[generation] = max(self.max_seconds[generation], took)
        self._started = 0.0

    def report(self) -> dict[str, list[float]]:
        """The figures as the replica's metrics carry them (index = generation)."""
        return {"count": list(self.count), "seconds": list(self.seconds), "max_seconds": list(self.max_seconds)}


_INSTALLED: GCPauses | None = None


def gc_pauses() -> GCPauses:
    """The process's recorder, installed into `gc.callbacks` on first use (a replica's start)."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = GCPauses()
        gc.callbacks.append(_INSTALLED._callback)
    return _INSTALLED
