"""The in-memory index of the durable Raft log, and the rules every change must obey.

One set of rules serves two callers: `RaftLogStore.save/compact` check a change before
writing it (a violation raises `RaftInvariantError` and nothing is written), and
recovery replays the records on disk through the same rules (a violation there is
corruption: something wrote a log no correct Raft node could have written).

The index keeps per live entry only its term (an `array('Q')`, 8 bytes an entry) and,
per saved batch, where the record is (segment, offset): entries are read back from
disk on demand, so a long log does not sit in memory twice (the core has its own copy).

Pure bookkeeping: no I/O here, and nothing here may be changed by a record that failed
its checks.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import RaftInvariantError
from ..raft import Entry, HardState, SnapshotMeta

__all__ = ["LogIndex", "Run"]


@dataclass(slots=True)
class Run:
    """Live entries first..last are stored in the record at `offset` of segment `seq`."""

    first: int
    last: int
    seq: int
    offset: int


class LogIndex:
    """Hard state, snapshot metadata, and term + location of every live entry."""

    def __init__(self, hard_state: HardState, snapshot: SnapshotMeta) -> None:
        self.hard_state = hard_state
        self.snapshot = snapshot
        self.base = snapshot.index + 1  # index of terms[0]
        self.terms = array("Q")
        self.runs: list[Run] = []
        self._firsts: list[int] = []

    # ---- queries -------------------------------------------------------------------

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.base + len(self.terms) - 1 if self.terms else self.snapshot.index

    def term(self, index: int) -> int | None:
        """Term of entry `index`, the snapshot's term at its index, else None."""
        if index == self.snapshot.index:
            return self.snapshot.term
        i = index - self.base
        if 0 <= i < len(self.terms):
            return self.terms[i]
        return None

    def locate(self, index: int) -> Run:
        i = bisect.bisect_right(self._firsts, index) - 1
        if i < 0 or not self.runs[i].first <= index <= self.runs[i].last:
            raise KeyError(index)
        return self.runs[i]

    # ---- a batch: install snapshot, then hard state, then entries ----------------------

    def check_batch(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> None:
        """Raise RaftInvariantError if this batch could not come from a correct Raft node."""
        old = self.hard_state
        snap_index = self.snapshot.index
        last = self.last_index()
        if snapshot is not None:
            if snapshot.index <= snap_index:
                raise RaftInvariantError(
                    f"installing snapshot at index {snapshot.index}, not newer than the log's snapshot at {snap_index}"
                )
            if self.term(snapshot.index) != snapshot.term:
                if old.commit > snapshot.index:
                    raise RaftInvariantError(
                        f"snapshot ({snapshot.index}, term {snapshot.term}) conflicts with "
                        f"committed entries up to {old.commit}"
                    )
                last = snapshot.index
            else:
                last = max(last, snapshot.index)
            snap_index = snapshot.index
        new_term = hard_state.term if hard_state is not None else old.term
        if entries:
            first = entries[0].index
            prev_term = 0
            for k, e in enumerate(entries):
                if e.index != first + k:
                    raise RaftInvariantError(f"entries are not contiguous: {e.index} follows {first + k - 1}")
                if e.term < prev_term:
                    raise RaftInvariantError(
                        f"entry {e.index} has term {e.term}, lower than its predecessor's {prev_term}"
                    )
                prev_term = e.term
            if first <= snap_index:
                raise RaftInvariantError(f"entries start at {first}, inside the snapshot (up to {snap_index})")
            if first > last + 1:
                raise RaftInvariantError(f"entries start at {first}, leaving a gap after {last}")
            if first <= last:
                # Rewriting index <= commit is only allowed with identical terms (a re-send
                # of entries already held); anything else would change a committed entry.
                for e in entries:
                    if e.index > min(old.commit, last):
                        break
                    if self.term(e.index) != e.term:
                        raise RaftInvariantError(
                            f"entry {e.index} (term {e.term}) would overwrite a committed entry (commit {old.commit})"
                        )
            if first - 1 > snap_index:
                pred = self.term(first - 1)
                if pred is not None and pred > entries[0].term:
                    raise RaftInvariantError(
                        f"entry {first} has term {entries[0].term}, lower than entry {first - 1}'s term {pred}"
                    )
            elif first == snap_index + 1:
                st = snapshot.term if snapshot is not None else self.snapshot.term
                if st > entries[0].term:
                    raise RaftInvariantError(
                        f"entry {first} has term {entries[0].term}, lower than the snapshot's {st}"
                    )
            if entries[-1].term > new_term:
                raise RaftInvariantError(
                    f"entry {entries[-1].index} has term {entries[-1].term}, above the current term {new_term}"
                )
            last = entries[-1].index
        if hard_state is not None:
            if hard_state.term < old.term:
                raise RaftInvariantError(f"term moved backwards: {old.term} -> {hard_state.term}")
            if hard_state.term == old.term and old.vote is not None and hard_state.vote != old.vote:
                raise RaftInvariantError(f"vote changed within term {old.term}: {old.vote!r} -> {hard_state.vote!r}")
            if hard_state.commit < old.commit:
                raise RaftInvariantError(f"commit moved backwards: {old.commit} -> {hard_state.commit}")
            if hard_state.commit > max(last, snap_index):
                raise RaftInvariantError(f"commit {hard_state.commit} is beyond the last entry {max(last, snap_index)}")

    def apply_batch(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
        seq: int,
        offset: int,
    ) -> None:
        """Apply a batch that passed `check_batch` and is durable at (seq, offset)."""
        if snapshot is not None:
            if self.term(snapshot.index) == snapshot.term:
                self._drop_through(snapshot.index)
            else:
                self._truncate_from(self.base)
                self.base = snapshot.index + 1
            self.snapshot = snapshot
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            first = entries[0].index
            self._truncate_from(first)
            self.terms.extend(e.term for e in entries)
            self.runs.append(Run(first, entries[-1].index, seq, offset))
            self._firsts.append(first)

    # ---- compaction --------------------------------------------------------------------

    def check_compact(self, snapshot: SnapshotMeta) -> None:
        snap = self.snapshot
        if snapshot.index < snap.index:
            raise RaftInvariantError(f"compacting to {snapshot.index}, below the log's snapshot at {snap.index}")
        if snapshot.index > self.last_index():
            raise RaftInvariantError(
                f"compacting to {snapshot.index}, beyond the last entry {self.last_index()}; "
                "install a snapshot with save(snapshot=...) instead"
            )
        if snapshot.index > self.hard_state.commit:
            raise RaftInvariantError(
                f"compacting to {snapshot.index}, beyond the commit index {self.hard_state.commit}"
            )
        known = self.term(snapshot.index)
        if known != snapshot.term:
            raise RaftInvariantError(
                f"compacting to ({snapshot.index}, term {snapshot.term}) but the log has term {known} there"
            )

    def apply_compact(self, snapshot: SnapshotMeta, seq: int, offset: int | None) -> None:
        """Entries after the snapshot were copied into one record at (seq, offset)."""
        self._drop_through(snapshot.index)
        self.snapshot = snapshot
        if self.terms:
            assert offset is not None
            self.runs = [Run(self.base, self.last_index(), seq, offset)]
            self._firsts = [self.base]
        else:
            self.runs = []
            self._firsts = []

    # ---- helpers -------------------------------------------------------------------------

    def _truncate_from(self, index: int) -> None:
        """Forget entries >= index."""
        keep = max(0, index - self.base)
        if keep < len(self.terms):
            del self.terms[keep:]
        cut = bisect.bisect_left(self._firsts, index)
        del self.runs[cut:]
        del self._firsts[cut:]
        if self.runs and self.runs[-1].last >= index:
            self.runs[-1].last = index - 1

    def _drop_through(self, index: int) -> None:
        """Forget entries <= index (covered by a snapshot)."""
        n = index + 1 - self.base
        if n > 0:
            del self.terms[: min(n, len(self.terms))]
        self.base = index + 1
        cut = bisect.bisect_right(self._firsts, index)
        # runs[:cut] start at or below index; the last of them may reach beyond it.
        tail: list[Run] = []
        if cut and self.runs[cut - 1].last > index:
            r = self.runs[cut - 1]
            tail = [Run(index + 1, r.last, r.seq, r.offset)]
        self.runs[:cut] = tail
        self._firsts[:cut] = [r.first for r in tail]
