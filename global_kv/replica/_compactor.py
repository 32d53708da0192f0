"""Automatic compaction of the key history, decided by the leader (off by default, as etcd).

Two modes, as etcd's `--auto-compaction-mode`:

- "revision": keep the last `retention` revisions: once the store is `retention` past the
  last compaction's target, compact to `revision - retention` (checked every lock check
  period; a compaction covers at least a tenth of the retention, so it is not one entry
  per write).
- "periodic": keep `retention` seconds of history: every `retention / 10` seconds the
  leader notes the store's revision; it compacts to the revision it noted `retention`
  seconds ago.

The compaction is an ordinary `CompactHistory` entry, so every replica forgets the same
history at the same index. Pure: given `now`, no clock of its own.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..state import Command, CompactHistory
from ._effects import Proposing

if TYPE_CHECKING:
    from ._global_replica import GlobalReplica

__all__ = ["AUTO_COMPACTION_MODES", "AutoCompactor"]

AUTO_COMPACTION_MODES = ("", "revision", "periodic")


class AutoCompactor:
    def __init__(self, replica: GlobalReplica, mode: str, retention: float) -> None:
        if mode not in AUTO_COMPACTION_MODES:
            raise ValueError(f"auto compaction mode must be one of {AUTO_COMPACTION_MODES}, got {mode!r}")
        self.replica = replica
        self.mode = mode
        self.retention = retention
        self._marks: deque[tuple[float, int]] = deque()  # (when, revision), periodic mode
        self._proposed = 0  # the last target proposed (not proposed again while in flight)

    def check(self, now: float) -> None:
        if not self.mode or not self.replica.is_leader():
            self._marks.clear()
            return
        sm = self.replica.sm
        target = 0
        if self.mode == "revision":
            keep = int(self.retention)
            if sm.revision - keep - sm.compact_revision >= max(1, keep // 10):
                target = sm.revision - keep
        else:
            if not self._marks or now - self._marks[-1][0] >= self.retention / 10:
                self._marks.append((now, sm.revision))
            while len(self._marks) > 1 and now - self._marks[1][0] >= self.retention:
                self._marks.popleft()
            when, revision = self._marks[0]
            if now - when >= self.retention:
                target = revision
        if target > sm.compact_revision and target > self._proposed:
            self._proposed = target
            op = CompactHistory(target)
            self.replica.effects.append(Proposing(op, self.replica.term))
            self.replica.propose(Command(None, 0, 0, op), None, None, None)
