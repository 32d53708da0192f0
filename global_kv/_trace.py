"""Hop timestamps of requests across processes, for `bench_cluster.py --trace`; off unless asked.

With GLOBAL_KV_TRACE set to a directory, a process keeps `(time.monotonic(), event,
index, peer)` in memory and writes them at exit to `DIR/trace-PID.jsonl`. The monotonic
clock is the host's, shared by every process on it, so one request's hops can be put on
one time line across the client, the leader and the followers: the benchmark joins
them by Raft log index. Off (the default), the shells test `ENABLED` and skip it.

Not for production: it keeps every event until exit (capped at MAX_EVENTS).
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

__all__ = ["ENABLED", "MAX_EVENTS", "record"]

MAX_EVENTS = 2_000_000
_DIR = os.environ.get("GLOBAL_KV_TRACE") or None
ENABLED = _DIR is not None
_events: list[tuple[float, str, int, str]] = []


def record(event: str, index: int = 0, peer: str = "") -> None:
    if ENABLED and len(_events) < MAX_EVENTS:
        _events.append((time.monotonic(), event, index, peer))


def _write() -> None:
    if not _events or _DIR is None:
        return
    path = Path(_DIR) / f"trace-{os.getpid()}.jsonl"
    with path.open("w") as f:
        for t, event, index, peer in _events:
            f.write(json.dumps([t, event, index, peer]) + "\n")


if ENABLED:
    atexit.register(_write)
