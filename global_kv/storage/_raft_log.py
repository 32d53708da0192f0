"""The durable Raft log: entries, hard state and snapshot metadata, one fsync per Ready.

On disk: a directory of segment files `wal-<seq>.log`, each a sequence of checksummed
frames (`_framing`). The first frame of a segment is a header carrying its sequence
number, the hard state and snapshot metadata as of its creation, and a BASE flag. Then
come BATCH records, one per `save`: optional snapshot install, optional hard state,
entries, written with a single pwrite + fdatasync (the group commit of one Ready).

A conflicting suffix is never cut out of a file: a batch whose first index is at or
below the last one supersedes the old entries when replayed (as etcd's WAL does). So
every save is one appended record, and a crash leaves the state before or after it,
nothing in between.

Compaction writes a new BASE segment: header with the new snapshot metadata, plus one
batch with the live entries after it (usually few: the committed-but-unapplied tail),
as temp file -> fdatasync -> rename -> directory fsync. Replay starts at the newest
BASE segment, so the rename is the commit point; older segments are deleted after it
(and at the next open, if a crash came first).

Recovery: a torn final record (an interrupted append) is cut off with a warning;
anything else that fails a checksum, or replays to a log no correct Raft node could
have written, raises `StorageCorrupted` naming the file and the log index.

Why our own files and not LevelDB with sync writes: both are bound by the disk's fsync
rate and measure alike (`benchmarks/bench_storage.py` runs them side by side), but the
file log gives exact control of the failure semantics: exactly one fdatasync per save,
a failed append cut back so nothing half-written stays, a torn tail told apart from
corruption and reported with file and index, compaction by deleting whole files, and no
background compaction competing with the fsyncs. This module must never acknowledge a
save before its fdatasync returned, and never apply a record that failed its checksum.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from crc32c import crc32c

from .._errors import RaftInvariantError, StorageCorrupted, StorageError
from ..raft import Entry, HardState, SnapshotMeta
from . import _files
from ._codec import Reader, Writer
from ._framing import HEADER_SIZE, AppendFile, FrameReader, encode_frame
from ._log_index import LogIndex

__all__ = ["LogState", "LogStatistics", "RaftLogStore"]

log = logging.getLogger("global_kv.storage")

_MAGIC = b"GKVRLOG1"
_TAG_HEADER = 1
_TAG_BATCH = 2
_HEADER_BASE = 1
_HAS_HS = 1
_HAS_SNAP = 2
_SEGMENT_RE = re.compile(r"^wal-(\d{16})\.log$")


@dataclass(frozen=True, slots=True)
class LogState:
    """What `load()` returns: enough for the Raft core to restart where it stopped."""

    hard_state: HardState
    snapshot: SnapshotMeta
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class LogStatistics:
    segments: int
    size_bytes: int
    first_index: int
    last_index: int
    saves: int
    syncs: int


def _segment_name(seq: int) -> str:
    return f"wal-{seq:016d}.log"


def _encode_header(seq: int, hs: HardState, snap: SnapshotMeta, *, base: bool) -> bytes:
    w = Writer()
    w.u8(_TAG_HEADER)
    w.raw(_MAGIC)
    w.u64(seq)
    w.u8(_HEADER_BASE if base else 0)
    w.hard_state(hs)
    w.snapshot_meta(snap)
    return encode_frame(w.buf)


def _encode_batch(
    hard_state: HardState | None,
    entries: Sequence[Entry],
    snapshot: SnapshotMeta | None,
) -> bytes:
    w = Writer()
    w.u8(_TAG_BATCH)
    w.u8((_HAS_HS if hard_state is not None else 0) | (_HAS_SNAP if snapshot is not None else 0))
    if hard_state is not None:
        w.hard_state(hard_state)
    if snapshot is not None:
        w.snapshot_meta(snapshot)
    w.entries(list(entries))
    return encode_frame(w.buf)


class RaftLogStore:
    """The Raft log of one replica in directory `path` (created if missing).

    Also a context manager (`with RaftLogStore(p) as log:`). Thread-safe: every public method
    holds one lock, so the actor shell may run
    `save` in a worker thread (`trio.to_thread.run_sync`) to keep fsyncs off the loop.
    """

    def __init__(self, path: str | os.PathLike[str], *, segment_bytes: int = 64 << 20) -> None:
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be at least 4096")
        self.path = Path(path)
        self.segment_bytes = segment_bytes
        self._mutex = threading.RLock()
        self._closed = False
        self._saves = 0
        self._syncs = 0
        self._readers: dict[int, BinaryIO] = {}
        self._cache: OrderedDict[tuple[int, int], list[Entry]] = OrderedDict()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "create log directory") from exc
        self._dirlock = _files.DirLock(self.path)
        try:
            try:
                self._recover()
            except OSError as exc:
                raise _files.map_os_error(exc, self.path, "open raft log") from exc
        except BaseException:
            self._close_files()
            self._dirlock.release()
            raise

    # ---- public API ----------------------------------------------------------------------

    def load(self) -> LogState:
        """The recovered state: hard state, snapshot metadata, entries after the snapshot."""
        with self._mutex:
            self._check_open()
            idx = self._index
            return LogState(
                idx.hard_state,
                idx.snapshot,
                self._read_entries(idx.first_index(), idx.last_index() + 1),
            )

    def save(
        self,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Persist one Ready: install `snapshot` (metadata only), set `hard_state`, then
        append `entries`, truncating any conflicting suffix from entries[0].index.

        Returns once everything is on disk (exactly one fdatasync, however many entries).
        Raises RaftInvariantError (nothing written) for a change no correct Raft node makes,
        StorageFull / StorageError if the disk refuses (nothing written, prior state intact).
        """
        with self._mutex:
            self._check_open()
            idx = self._index
            if hard_state is not None and hard_state == idx.hard_state:
                hard_state = None
            entries = list(entries)
            if hard_state is None and not entries and snapshot is None:
                return
            idx.check_batch(hard_state, entries, snapshot)
            frame = _encode_batch(hard_state, entries, snapshot)
            if self._active.size >= self.segment_bytes:
                self._active.check_usable()
                self._new_segment(base=False, body=b"")
            offset = self._active.append(frame, sync=True)
            self._saves += 1
            self._syncs += 1
            idx.apply_batch(hard_state, entries, snapshot, self._active_seq, offset)

    def compact(self, snapshot: SnapshotMeta) -> None:
        """Drop entries up to `snapshot.index` and record `snapshot` as the log's base.

        Call only once the snapshot itself is durable (SnapshotStore.save returned).
        `snapshot.index` must be committed and its term must match the log; the metadata
        (with its membership) is what `load()` returns from then on. Crash-safe: a new
        base segment holding the live tail is renamed into place before anything older
        is deleted. Compacting again to the current snapshot just reclaims space (e.g.
        after a snapshot install).
        """
        with self._mutex:
            self._check_open()
            idx = self._index
            if snapshot != idx.snapshot:
                idx.check_compact(snapshot)
            self._active.check_usable()
            live = self._read_entries(snapshot.index + 1, idx.last_index() + 1)
            header_len = self._new_segment(
                base=True,
                body=_encode_batch(None, live, None) if live else b"",
                snapshot=snapshot,
            )
            idx.apply_compact(snapshot, self._active_seq, header_len if live else None)
            self._delete_before(self._active_seq)

    def first_index(self) -> int:
        with self._mutex:
            return self._index.first_index()

    def last_index(self) -> int:
        with self._mutex:
            return self._index.last_index()

    def hard_state(self) -> HardState:
        with self._mutex:
            return self._index.hard_state

    def snapshot_meta(self) -> SnapshotMeta:
        with self._mutex:
            return self._index.snapshot

    def term(self, index: int) -> int:
        """Term of entry `index` (or of the snapshot at its index); IndexError outside."""
        with self._mutex:
            t = self._index.term(index)
            if t is None:
                raise IndexError(
                    f"index {index} is outside the log [{self._index.snapshot.index}, {self._index.last_index()}]"
                )
            return t

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries lo..hi-1 read back from disk; with `max_bytes`, stop once the data
        exceeds it (always at least one entry), as etcd's Storage.Entries does."""
        with self._mutex:
            self._check_open()
            idx = self._index
            if not (idx.first_index() <= lo <= hi <= idx.last_index() + 1):
                raise IndexError(f"entries [{lo}, {hi}) outside the log [{idx.first_index()}, {idx.last_index() + 1})")
            return self._read_entries(lo, hi, max_bytes)

    def statistics(self) -> LogStatistics:
        with self._mutex:
            size = 0
            for seq in self._seqs:
                try:
                    size += (self.path / _segment_name(seq)).stat().st_size
                except FileNotFoundError:  # pragma: no cover - deleted by nobody but us
                    pass
            return LogStatistics(
                segments=len(self._seqs),
                size_bytes=size,
                first_index=self._index.first_index(),
                last_index=self._index.last_index(),
                saves=self._saves,
                syncs=self._syncs,
            )

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._close_files()
            self._dirlock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- recovery ------------------------------------------------------------------------

    def _recover(self) -> None:
        names = os.listdir(self.path)
        for n in names:
            if n.startswith(".tmp-"):  # a segment whose rename never happened
                (self.path / n).unlink()
        seqs = sorted(int(m.group(1)) for n in names if (m := _SEGMENT_RE.match(n)))
        self._seqs: list[int] = []
        if not seqs:
            self._index = LogIndex(HardState(), SnapshotMeta())
            self._active_seq = -1
            self._new_segment(base=True, body=b"")
            return
        base_pos = self._find_base(seqs)
        self._delete_before(seqs[base_pos], existing=seqs[:base_pos])
        seqs = seqs[base_pos:]
        for a, b in itertools.pairwise(seqs):
            if b != a + 1:
                raise StorageCorrupted(
                    str(self.path / _segment_name(a + 1)),
                    None,
                    f"segment {a + 1} is missing between {a} and {b}",
                )
        index: LogIndex | None = None
        tail_end = 0
        for pos, seq in enumerate(seqs):
            index, tail_end = self._replay_segment(seq, index, last=pos == len(seqs) - 1)
            self._seqs.append(seq)
        assert index is not None
        self._index = index
        path = self.path / _segment_name(seqs[-1])
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise _files.map_os_error(exc, path, "open segment") from exc
        self._active = AppendFile(path, fd, tail_end)
        self._active_seq = seqs[-1]

    def _find_base(self, seqs: list[int]) -> int:
        """Position in `seqs` of the newest segment whose header is a BASE."""
        for pos in range(len(seqs) - 1, -1, -1):
            path = self.path / _segment_name(seqs[pos])
            with open(path, "rb") as f:
                for _, payload in FrameReader(f, path):
                    flags_at = 1 + len(_MAGIC) + 8
                    if (
                        payload[:1] == bytes([_TAG_HEADER])
                        and len(payload) > flags_at
                        and payload[flags_at] & _HEADER_BASE
                    ):
                        return pos
                    break
        raise StorageCorrupted(str(self.path), None, "no base segment: the log's beginning is missing")

    def _replay_segment(self, seq: int, index: LogIndex | None, last: bool) -> tuple[LogIndex, int]:
        path = self.path / _segment_name(seq)
        with open(path, "rb") as f:
            reader = FrameReader(f, path)
            first = True
            try:
                for offset, payload in reader:
                    index = self._replay_record(path, seq, offset, payload, index, first)
                    first = False
            except StorageCorrupted as exc:
                nxt = index.last_index() + 1 if index is not None else None
                raise StorageCorrupted(str(path), nxt, exc.detail) from exc
        nxt = index.last_index() + 1 if index is not None else None
        if first or index is None:  # segments are renamed into place with their header
            raise StorageCorrupted(str(path), nxt, f"segment has no valid header ({reader.torn})")
        if reader.torn is not None:
            if not last:
                raise StorageCorrupted(
                    str(path),
                    nxt,
                    f"{reader.torn} in a segment that is not the last one",
                )
            log.warning(
                "raft log %s: cutting off a torn final record (%s); it was never acknowledged",
                path,
                reader.torn,
            )
            self._truncate_file(path, reader.end)
        return index, reader.end

    def _replay_record(
        self,
        path: Path,
        seq: int,
        offset: int,
        payload: bytes,
        index: LogIndex | None,
        first: bool,
    ) -> LogIndex:
        nxt = index.last_index() + 1 if index is not None else None
        try:
            r = Reader(payload)
            tag = r.u8()
            if first:
                if tag != _TAG_HEADER or r.raw(len(_MAGIC)) != _MAGIC:
                    raise ValueError("segment does not start with a log header")
                if r.u64() != seq:
                    raise ValueError("segment header names a different sequence number")
                flags = r.u8()
                hs, snap = r.hard_state(), r.snapshot_meta()
                r.done()
                if index is None:
                    if not flags & _HEADER_BASE:
                        raise ValueError("replay must start at a base segment")
                    return LogIndex(hs, snap)
                if (hs, snap) != (index.hard_state, index.snapshot):
                    raise ValueError("segment header disagrees with the state replayed from earlier segments")
                return index
            if index is None or tag != _TAG_BATCH:
                raise ValueError(f"unexpected record tag {tag}")
            flags = r.u8()
            hs_opt = r.hard_state() if flags & _HAS_HS else None
            snap_opt = r.snapshot_meta() if flags & _HAS_SNAP else None
            entries = r.entries()
            r.done()
            index.check_batch(hs_opt, entries, snap_opt)
            index.apply_batch(hs_opt, entries, snap_opt, seq, offset)
            return index
        except (ValueError, UnicodeDecodeError, RaftInvariantError) as exc:
            raise StorageCorrupted(str(path), nxt, f"record at byte {offset}: {exc}") from exc

    def _truncate_file(self, path: Path, size: int) -> None:
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _files.map_os_error(exc, path, "truncate torn tail") from exc

    # ---- segments ------------------------------------------------------------------------

    def _new_segment(self, *, base: bool, body: bytes, snapshot: SnapshotMeta | None = None) -> int:
        """Make segment active+1 (header of the current state, or of `snapshot` for a
        base, then `body`) durable under its final name, and make it the active one.

        Returns the header's length. On failure nothing changed (a temp file may remain
        and is removed at the next open).
        """
        seq = self._active_seq + 1
        path = self.path / _segment_name(seq)
        tmp = self.path / f".tmp-{path.name}"
        header = _encode_header(seq, self._index.hard_state, snapshot or self._index.snapshot, base=base)
        fd = -1
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            _files.write_all(fd, header + body, 0)
            _files.fdatasync(fd)
            os.replace(tmp, path)
            _files.fsync_dir(self.path)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            try:
                tmp.unlink()
            except OSError:
                pass  # the original error is what the caller must see; the next open removes it
            raise _files.map_os_error(exc, path, "create segment") from exc
        self._syncs += 2
        old = getattr(self, "_active", None)
        if old is not None:
            old.close()
        self._active = AppendFile(path, fd, len(header) + len(body))
        self._active_seq = seq
        self._seqs.append(seq)
        return len(header)

    def _delete_before(self, seq: int, existing: list[int] | None = None) -> None:
        """Delete segments older than base segment `seq` (they are superseded by it)."""
        doomed = [s for s in (self._seqs if existing is None else existing) if s < seq]
        if not doomed:
            return
        for key in [k for k in self._cache if k[0] < seq]:
            del self._cache[key]
        try:
            for s in doomed:
                f = self._readers.pop(s, None)
                if f is not None:
                    f.close()
                (self.path / _segment_name(s)).unlink()
                if s in self._seqs:
                    self._seqs.remove(s)
            _files.fsync_dir(self.path)
        except OSError as exc:
            # The base segment is durable, so these files are already dead: replay never
            # reads them, and the next open deletes them. Not worth failing the caller.
            log.warning("raft log %s: could not delete superseded segments: %s", self.path, exc)

    # ---- reading entries back ------------------------------------------------------------

    def _read_entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        out: list[Entry] = []
        size = 0
        i = lo
        idx = self._index
        while i < hi:
            run = idx.locate(i)
            batch = self._read_batch(run.seq, run.offset)
            start = i - batch[0].index
            for e in batch[start : start + min(run.last, hi - 1) - i + 1]:
                if e.index != i or e.term != idx.terms[i - idx.base]:
                    raise StorageCorrupted(
                        str(self.path / _segment_name(run.seq)),
                        i,
                        "entry read back does not match the log index",
                    )
                size += len(e.data)
                if max_bytes is not None and out and size > max_bytes:
                    return out
                out.append(e)
                i += 1
        return out

    def _read_batch(self, seq: int, offset: int) -> list[Entry]:
        key = (seq, offset)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        path = self.path / _segment_name(seq)
        f = self._readers.get(seq)
        try:
            if f is None:
                f = self._readers[seq] = open(path, "rb")  # noqa: SIM115 - cached, closed in close()
            head = os.pread(f.fileno(), HEADER_SIZE, offset)
            length = int.from_bytes(head[0:4], "little")
            payload = os.pread(f.fileno(), length, offset + HEADER_SIZE)
        except OSError as exc:
            raise _files.map_os_error(exc, path, "read entries") from exc
        if (
            len(head) != HEADER_SIZE
            or crc32c(head[:8]) != int.from_bytes(head[8:12], "little")
            or len(payload) != length
            or crc32c(payload) != int.from_bytes(head[4:8], "little")
        ):
            raise StorageCorrupted(str(path), None, f"record at byte {offset} fails its checksum on read")
        try:
            r = Reader(payload)
            if r.u8() != _TAG_BATCH:
                raise ValueError("not a batch record")
            flags = r.u8()
            if flags & _HAS_HS:
                r.hard_state()
            if flags & _HAS_SNAP:
                r.snapshot_meta()
            entries = r.entries()
        except ValueError as exc:
            raise StorageCorrupted(str(path), None, f"record at byte {offset}: {exc}") from exc
        self._cache[key] = entries
        if len(self._cache) > 16:
            self._cache.popitem(last=False)
        return entries

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"raft log {self.path} is closed")

    def _close_files(self) -> None:
        for f in self._readers.values():
            f.close()
        self._readers.clear()
        self._cache.clear()
        active = getattr(self, "_active", None)
        if active is not None:
            active.close()
