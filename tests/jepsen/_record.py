"""What the harness records while it runs: KV operations, unique inserts, lock holds, fenced writes.

One clock for everything: `trio.current_time()` of the harness process. This module
only stores facts as observed; it must never judge them (that is `_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from global_kv.checker import Operation

__all__ = ["FencedCounter", "Hold", "Insert", "LeaseCycle", "Recorder"]


@dataclass
class Hold:
    """One lock hold as its holder saw it: asked at `invoke`, granted (known) at `start`.

    `end` is when the holder stopped using the resource (before unlocking, or when
    its process was killed); `ttl` is the lease it asked for (0 = none).
    """

    holder: str
    token: int
    ttl: float
    invoke: float
    start: float
    end: float | None = None
    how_ended: str = ""


@dataclass
class Insert:
    """A write of a unique key (the set workload): `ok` True/False/None (unknown)."""

    key: str
    value: bytes
    invoke: float
    ok: bool | None = None


@dataclass
class LeaseCycle:
    """One TTL lease and its two keys as the lease worker saw them: granted, kept alive,
    then left to expire. `alive_from` is when the last keep-alive that succeeded was asked
    (or the grant): no replica can end the lease before `alive_from + ttl`. `gone` is when a
    linearizable read first found both keys absent (None: never seen gone); `split` a read
    that found one key without the other; `back` a read that found a key again after it
    was gone; `lease_after` whether the lease still existed once its keys were gone."""

    lease_id: int
    ttl: float
    alive_from: float
    gone: float | None = None
    split: bool = False
    back: bool = False
    lease_after: bool = False


@dataclass
class FencedWrite:
    holder: str
    token: int
    at: float
    accepted: bool
    highest_before: int


class FencedCounter:
    """The protected resource: a counter that accepts an increment only with the highest token seen.

    Kept in the harness (it stands for a storage service that checks tokens). It logs
    every attempt so the checker can verify the rule was never broken.
    """

    def __init__(self) -> None:
        self.highest = 0
        self.value = 0
        self.log: list[FencedWrite] = []

    def increment(self, holder: str, token: int) -> bool:
        before = self.highest
        ok = token >= self.highest
        if ok:
            self.highest = token
            self.value += 1
        self.log.append(FencedWrite(holder, token, trio.current_time(), ok, before))
        return ok


@dataclass
class Recorder:
    ops: list[Operation] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    counter: FencedCounter = field(default_factory=FencedCounter)
    lock_attempts: int = 0
    lock_failures: int = 0
    # One stream per watcher: (revision, "put" | "delete", key, value) as delivered.
    watches: dict[str, list[tuple[int, str, bytes, bytes]]] = field(default_factory=dict)
    # Keys put under a lease owned by an owner process, and how long after its kill -9
    # they were gone (None: still there).
    presences: list[tuple[str, float | None]] = field(default_factory=list)
    lease_cycles: list[LeaseCycle] = field(default_factory=list)

    def count(self) -> dict[str, int]:
        known = sum(1 for op in self.ops if op.return_time is not None)
        ended = [c for c in self.lease_cycles if c.gone is not None]
        lateness = [c.gone - c.alive_from - c.ttl for c in ended if c.gone is not None]
        return {
            "kv_ops": len(self.ops),
            "kv_ok": known,
            "kv_unknown": len(self.ops) - known,
            "inserts": len(self.inserts),
            "inserts_ok": sum(1 for i in self.inserts if i.ok),
            "lock_attempts": self.lock_attempts,
            "lock_holds": len(self.holds),
            "fenced_accepted": sum(1 for w in self.counter.log if w.accepted),
            "fenced_rejected": sum(1 for w in self.counter.log if not w.accepted),
            "watch_events": sum(len(w) for w in self.watches.values()),
            "owner_leases": len(self.presences),
            "ttl_leases": len(ended),
            # How long after its TTL ran out a lease's keys were seen gone (expiry granularity + read period).
            "ttl_lease_late_ms_max": round(1000 * max(lateness, default=0)),
        }
