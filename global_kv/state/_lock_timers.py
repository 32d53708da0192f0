"""TTL deadlines of held locks as the leader sees them: when to propose `LockExpire`.

The lock table is replicated; its timers are not. The leader arms a deadline on its
own clock when it applies a grant or a refresh, re-arms every held lock from "now"
when it becomes leader (a lock may outlive its TTL after a failover, never fall short
of it), and proposes `LockExpire(key, token, refreshed_index)` once a deadline passed.
The state machine refuses an expiry if the lock was refreshed or re-granted meanwhile,
so this book only has to be careful about what it arms and disarms:

- a result is acted on only for the state it names: a retried request is answered with
  its first (cached) result, which must not re-arm or disarm the key's next holder;
- an expiry is remembered per lock state (key, token, refreshed_index): one that loses
  the race with a refresh leaves the refreshed lock to expire at its new deadline;
- a proposal that is refused (`proposed` never called) or lost (never decided) is made
  again, the latter after `retry_after`.

Run by the replica's `LockService` (`global_kv.replica`), which the actor shell drives on
trio's clock and the simulator on each replica's skewed clock (seconds on both). It reads
no clock: every method is given `now`. It must never decide that a lock is free (only
the state machine does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._commands import LockExpire
from ._locks import Lock
from ._results import Granted, Released, Result

__all__ = ["LockTimers"]


class LockTimers:
    """Deadlines of held locks (key -> (token, deadline)) and the expiries proposed.

    `ttl_unit` converts a lock's `ttl_ms` into the units of `now` (0.001 for seconds).
    """

    __slots__ = ("_expiring", "deadlines", "retry_after", "ttl_unit")

    def __init__(self, *, ttl_unit: float, retry_after: float) -> None:
        self.ttl_unit = ttl_unit
        self.retry_after = retry_after
        self.deadlines: dict[bytes, tuple[int, float]] = {}
        self._expiring: dict[tuple[bytes, int, int], float] = {}  # lock state -> when proposed

    def clear(self) -> None:
        """Forget everything (this replica stopped leading)."""
        self.deadlines.clear()
        self._expiring.clear()

    def arm_all(self, locks: Iterable[Lock], now: float) -> None:
        """Become leader: every held lock gets its full TTL from `now`."""
        self.clear()
        for lock in locks:
            self._arm(lock, now)

    def on_result(self, result: Result, index: int, lock: Lock | None, now: float) -> bool:
        """Bookkeeping for the result of the entry at `index`; `lock` is its key's lock now.

        True if this very entry granted or refreshed `lock` (so it was armed).
        """
        if type(result) is Granted:
            if lock is None or lock.token != result.token or lock.refreshed_index != index:
                return False  # a duplicate's cached answer: it describes an older state
            self._drop_expiring(lock.key)
            self._arm(lock, now)
            return True
        if type(result) is Released:
            for key, token in result.locks:
                armed = self.deadlines.get(key)
                if armed is not None and armed[0] == token:
                    del self.deadlines[key]
                self._drop_expiring(key, token)
        return False

    def due(self, lock_of: Callable[[bytes], Lock | None], now: float) -> list[LockExpire]:
        """The expiries to propose now; call `proposed` for each one the core accepted."""
        out: list[LockExpire] = []
        for key, (token, deadline) in list(self.deadlines.items()):
            if deadline > now:
                continue
            lock = lock_of(key)
            if lock is None or lock.token != token:
                del self.deadlines[key]  # released or re-granted: its result disarms or re-arms
                continue
            when = self._expiring.get((key, token, lock.refreshed_index))
            if when is None or now - when >= self.retry_after:
                out.append(LockExpire(key, token, lock.refreshed_index))
        return out

    def proposed(self, op: LockExpire, now: float) -> None:
        self._expiring[(op.key, op.token, op.refreshed_index)] = now

    def _arm(self, lock: Lock, now: float) -> None:
        if lock.ttl_ms > 0:
            self.deadlines[lock.key] = (lock.token, now + lock.ttl_ms * self.ttl_unit)
        else:
            self.deadlines.pop(lock.key, None)

    def _drop_expiring(self, key: bytes, token: int | None = None) -> None:
        for attempt in [a for a in self._expiring if a[0] == key and (token is None or a[1] == token)]:
            del self._expiring[attempt]
