"""The in-memory Raft log of one replica: the snapshot, the entries after it, and marks.

It tracks four positions: the snapshot index (everything up to it is compacted), the
commit index, the applied index, and the first index not yet persisted
(`unstable_from`). It also tracks membership, because with single-server changes a
configuration takes effect when its entry is appended and is reverted when the entry is
truncated (thesis §4.1).

Entries live in one Python list (index `i` at position `i - snapshot_index - 1`) so the
hot paths are slices and `extend`, not per-entry work. This module never reads storage:
the caller constructs it from what storage recovered. Invariants are checked here and
violations raise `RaftInvariantError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import RaftInvariantError
from ._confchange import decode_conf_entry
from ._log_types import ConfState, Entry, EntryType, SnapshotMeta
from ._ready import Snapshot

__all__ = ["RaftLog"]

_CONF = EntryType.CONF_CHANGE


class RaftLog:
    """Entries after the last snapshot, with commit/applied/persisted marks and membership."""

    __slots__ = (
        "_base_conf",
        "_conf_entries",
        "_entries",
        "_snap_index",
        "_snap_term",
        "applied",
        "committed",
        "conf_version",
        "pending_snapshot",
        "snapshot",
        "trunc_mark",
        "unstable_from",
    )

    def __init__(
        self,
        snapshot: Snapshot,
        entries: Sequence[Entry],
        committed: int,
        applied: int,
    ) -> None:
        meta = snapshot.meta
        self.snapshot = snapshot
        self._snap_index = meta.index
        self._snap_term = meta.term
        self._entries: list[Entry] = []
        self._base_conf = meta.conf
        self._conf_entries: list[tuple[int, ConfState]] = []
        self.conf_version = 0
        self.pending_snapshot: Snapshot | None = None
        self.trunc_mark: int | None = None
        if entries:
            if entries[0].index != meta.index + 1:
                raise RaftInvariantError(
                    f"recovered entries start at {entries[0].index}, "
                    f"expected {meta.index + 1} (right after the snapshot)"
                )
            self._check_contiguous(entries, meta.term)
            self._entries.extend(entries)
            self._track_conf(entries)
        last = self.last_index()
        if not meta.index <= committed <= last:
            raise RaftInvariantError(
                f"recovered commit index {committed} outside [{meta.index}, {last}]: "
                "the log was truncated or lost; restore this replica from a healthy one"
            )
        if not meta.index <= applied <= committed:
            raise RaftInvariantError(f"applied index {applied} outside [snapshot {meta.index}, commit {committed}]")
        self.committed = committed
        self.applied = applied
        self.unstable_from = last + 1

    # --- reading ---------------------------------------------------------------

    @property
    def snap_index(self) -> int:
        return self._snap_index

    def first_index(self) -> int:
        return self._snap_index + 1

    def last_index(self) -> int:
        return self._snap_index + len(self._entries)

    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self._snap_term

    def term(self, index: int) -> int | None:
        """Term of the entry at `index`, or None if it is compacted or beyond the log."""
        off = index - self._snap_index
        if off == 0:
            return self._snap_term
        if 0 < off <= len(self._entries):
            return self._entries[off - 1].term
        return None

    def entry(self, index: int) -> Entry:
        off = index - self._snap_index
        if not 0 < off <= len(self._entries):
            raise RaftInvariantError(f"entry {index} is not in the log [{self.first_index()}, {self.last_index()}]")
        return self._entries[off - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (all must be in memory)."""
        base = self._snap_index + 1
        if lo < base or hi - 1 > self.last_index():
            raise RaftInvariantError(f"entries [{lo}, {hi}) not in the log [{base}, {self.last_index()}]")
        return self._entries[lo - base : hi - base]

    def entries_for_send(self, lo: int, max_count: int, max_bytes: int) -> tuple[Entry, ...]:
        """Up to `max_count` entries from `lo` within `max_bytes` of data (at least one)."""
        base = self._snap_index + 1
        start = lo - base
        batch = self._entries[start : start + max_count]
        if len(batch) > 1:
            total = 0
            for n, e in enumerate(batch):
                total += len(e.data)
                if total > max_bytes and n > 0:
                    return tuple(batch[:n])
        return tuple(batch)

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a candidate's log at least as up to date as ours?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The last (index, term) at or before `index` whose term is <= `term`.

        Used on both sides of fast backtracking: every entry after the returned index
        has a term greater than `term`, so it cannot match an entry of term <= `term`.
        Stops at the snapshot (returns term 0 below it: unknown).
        """
        index = min(index, self.last_index())
        while index > self._snap_index:
            t = self._entries[index - self._snap_index - 1].term
            if t <= term:
                return index, t
            index -= 1
        if index == self._snap_index and self._snap_term <= term:
            return index, self._snap_term
        return index, 0

    # --- membership ------------------------------------------------------------

    @property
    def conf(self) -> ConfState:
        """The membership in force: the last conf entry in the log, else the snapshot's."""
        return self._conf_entries[-1][1] if self._conf_entries else self._base_conf

    def conf_index(self) -> int:
        """Index of the entry that set the membership in force (snapshot index if none)."""
        return self._conf_entries[-1][0] if self._conf_entries else self._snap_index

    def conf_at(self, index: int) -> ConfState:
        for i in range(len(self._conf_entries) - 1, -1, -1):
            if self._conf_entries[i][0] <= index:
                return self._conf_entries[i][1]
        return self._base_conf

    def _track_conf(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            if e.type == _CONF:
                self._conf_entries.append((e.index, decode_conf_entry(e.data)[1]))
                self.conf_version += 1

    # --- writing ---------------------------------------------------------------

    @staticmethod
    def _check_contiguous(entries: Sequence[Entry], prev_term: int) -> None:
        first = entries[0].index
        for n, e in enumerate(entries):
            if e.index != first + n or e.term < prev_term:
                raise RaftInvariantError(
                    f"entries not contiguous or term went back at index {e.index} "
                    f"(expected index {first + n}, term >= {prev_term})"
                )
            prev_term = e.term

    def append(self, entries: Sequence[Entry], may_hold_conf: bool) -> None:
        """Leader path: entries built by this replica, right after the last one."""
        if entries[0].index != self.last_index() + 1:
            raise RaftInvariantError(f"append at {entries[0].index} but the log ends at {self.last_index()}")
        self._entries.extend(entries)
        if may_hold_conf:
            self._track_conf(entries)

    def maybe_append(self, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]) -> int | None:
        """Follower path (Figure 2, AppendEntries receiver, steps 2-5).

        Returns the last index now known to match the leader, or None if the log does
        not contain (prev_index, prev_term). Truncates only on a real term conflict:
        a stale or duplicated AppendEntries whose entries are all present changes
        nothing, even if our log is longer.
        """
        if self.term(prev_index) != prev_term:
            return None
        last_new = prev_index + len(entries)
        if entries:
            conflict = self._find_conflict(entries)
            if conflict:
                if conflict <= self.committed:
                    raise RaftInvariantError(
                        f"AppendEntries conflicts with committed entry {conflict} "
                        f"(commit {self.committed}): two leaders disagree on committed history"
                    )
                self._truncate_append(entries[conflict - entries[0].index :])
        self.commit_to(min(commit, last_new))
        return last_new

    def _find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry that is not in our log (0 if all are)."""
        last = self.last_index()
        first = entries[0]
        if first.index > last:
            return first.index
        tail = entries[-1]
        if tail.index <= last and self.term(tail.index) == tail.term:
            # Log Matching (§5.3): same index and term at the tail => same prefix.
            return 0
        for e in entries:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def _truncate_append(self, entries: Sequence[Entry]) -> None:
        at = entries[0].index
        last = self.last_index()
        if at <= self._snap_index or at > last + 1:
            raise RaftInvariantError(f"cannot write entries at {at}: log is [{self._snap_index}, {last}]")
        self._check_contiguous(entries, self.term(at - 1) or 0)
        if at <= last:
            del self._entries[at - self._snap_index - 1 :]
            if self._conf_entries and self._conf_entries[-1][0] >= at:
                self._conf_entries = [c for c in self._conf_entries if c[0] < at]
                self.conf_version += 1
            self.unstable_from = min(self.unstable_from, at)
            if self.trunc_mark is None or at < self.trunc_mark:
                self.trunc_mark = at
        self._entries.extend(entries)
        self._track_conf(entries)

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        if index > self.last_index():
            raise RaftInvariantError(
                f"commit index {index} beyond the last entry {self.last_index()}: was the log truncated or lost?"
            )
        self.committed = index
        return True

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        meta = snapshot.meta
        if meta.index <= self.committed:
            raise RaftInvariantError(f"restoring snapshot {meta.index} at or below commit {self.committed}")
        self.snapshot = snapshot
        self.pending_snapshot = snapshot
        self._snap_index = meta.index
        self._snap_term = meta.term
        self._entries = []
        self._base_conf = meta.conf
        self._conf_entries = []
        self.conf_version += 1
        self.committed = meta.index
        self.unstable_from = meta.index + 1
        if self.trunc_mark is None or meta.index + 1 < self.trunc_mark:
            self.trunc_mark = meta.index + 1

    def compact(self, index: int, data: bytes) -> SnapshotMeta:
        """Drop entries up to `index` (already applied) behind a snapshot of them."""
        term = self.term(index)
        if term is None:
            raise RaftInvariantError(f"compacting at {index}, which is not in the log")
        meta = SnapshotMeta(index=index, term=term, conf=self.conf_at(index))
        del self._entries[: index - self._snap_index]
        self._base_conf = meta.conf
        self._conf_entries = [c for c in self._conf_entries if c[0] > index]
        self._snap_index = index
        self._snap_term = term
        self.snapshot = Snapshot(meta, data)
        return meta

    # --- Ready bookkeeping -------------------------------------------------------

    def stable_last(self) -> int:
        """Last index known persisted (what a leader may count for itself)."""
        return self.unstable_from - 1

    def unstable_entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries[self.unstable_from - self._snap_index - 1 :])

    def apply_from(self) -> int:
        """First index whose application is still due (after any pending snapshot)."""
        ps = self.pending_snapshot
        start = self.applied
        if ps is not None and ps.meta.index > start:
            start = ps.meta.index
        return start + 1

    def next_committed(self) -> tuple[Entry, ...]:
        lo = self.apply_from()
        if self.committed < lo:
            return ()
        return tuple(self.slice(lo, self.committed + 1))

    def stable_to(self, last: int) -> None:
        """The caller persisted a Ready whose entries ended at `last` (0: none)."""
        mark = self.trunc_mark
        if mark is not None and mark <= last:
            # Entries from `mark` on were overwritten in memory after the Ready was taken:
            # storage holds the old ones and must rewrite from there.
            self.unstable_from = mark
        elif last + 1 > self.unstable_from:
            self.unstable_from = last + 1
        if self.unstable_from <= self._snap_index:
            self.unstable_from = self._snap_index + 1

    def applied_to(self, index: int) -> None:
        if index < self.applied:
            raise RaftInvariantError(f"applied index going back from {self.applied} to {index}")
        if index > self.committed:
            raise RaftInvariantError(f"applied {index} beyond commit {self.committed}")
        self.applied = index
