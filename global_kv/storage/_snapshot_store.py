"""Durable snapshots of the state machine: written atomically, read back as a stream.

A snapshot file `snapshot-<index>-<term>.snap` is a sequence of checksummed frames
(`_framing`): a header with the SnapshotMeta (index, term, membership), the data
chunks exactly as the writer gave them, and an end frame with the chunk count, byte
count and a CRC32C over all the data. It is written as a temp file, fsynced, renamed
into place and the directory fsynced; only after that are older snapshots deleted
(keeping `retain` of them). So a crash at any point leaves the previous snapshot, or
the new one complete, never a half file under a final name.

Data is streamed both ways (`SnapshotWriter.write`, `SnapshotReader.chunks`): a large
state never has to sit in memory as one blob. The data is opaque here (the KV engines'
format is in `_kv_stream`; the state machine may wrap it with its lock table).

This module must never hand out a chunk that failed its checksum, and never delete a
snapshot before a newer one is durable.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from crc32c import crc32c

from .._errors import RaftInvariantError, StorageCorrupted, StorageError
from ..raft import SnapshotMeta
from . import _files
from ._codec import Reader, Writer
from ._framing import FrameReader, encode_frame

__all__ = ["SnapshotInfo", "SnapshotReader", "SnapshotStore", "SnapshotWriter"]

log = logging.getLogger("global_kv.storage")

_MAGIC = b"GKVSNAPF"
_VERSION = 1
_TAG_HEADER = 1
_TAG_DATA = 2
_TAG_END = 3
_END = struct.Struct("<QQI")
_NAME_RE = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
_tmp_counter = itertools.count()


def _name(meta: SnapshotMeta) -> str:
    return f"snapshot-{meta.index:020d}-{meta.term:020d}.snap"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    meta: SnapshotMeta
    path: Path
    size_bytes: int


class SnapshotStore:
    """The snapshots of one replica in directory `path`, newest last."""

    def __init__(self, path: str | os.PathLike[str], *, retain: int = 1) -> None:
        if retain < 1:
            raise ValueError("retain must be at least 1")
        self.path = Path(path)
        self.retain = retain
        self._mutex = threading.RLock()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "create snapshot directory") from exc
        self._dirlock = _files.DirLock(self.path)
        self._closed = False
        try:
            for n in os.listdir(self.path):
                if n.startswith(".tmp-"):  # an interrupted save: never committed
                    (self.path / n).unlink()
            self._prune()
        except OSError as exc:
            self._dirlock.release()
            raise _files.map_os_error(exc, self.path, "clean snapshot directory") from exc
        except BaseException:
            self._dirlock.release()
            raise

    def create(self, meta: SnapshotMeta) -> SnapshotWriter:
        """Start writing a snapshot; `commit()` makes it durable and the newest."""
        with self._mutex:
            self._check_open()
            newest = self._newest_name()
            if newest is not None and (meta.index, meta.term) < newest:
                raise RaftInvariantError(
                    f"snapshot ({meta.index}, term {meta.term}) is older than the newest stored one {newest}"
                )
            return SnapshotWriter(self, meta)

    def save(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> SnapshotInfo:
        """Write a whole snapshot from `chunks` (e.g. an engine's `snapshot_chunks()`)."""
        with self.create(meta) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def latest(self) -> SnapshotMeta | None:
        """Metadata of the newest snapshot (its header is verified), or None."""
        reader = self.open_latest()
        if reader is None:
            return None
        with reader:
            return reader.meta

    def list_snapshots(self) -> list[SnapshotMeta]:
        """Metadata of every stored snapshot, oldest first."""
        with self._mutex:
            self._check_open()
            out = []
            for _, name in self._names():
                with SnapshotReader(self.path / name) as r:
                    out.append(r.meta)
            return out

    def open(self, meta: SnapshotMeta) -> SnapshotReader | None:
        """A streaming reader of the snapshot with exactly `meta`'s index and term, or None."""
        with self._mutex:
            self._check_open()
            for key, name in self._names():
                if key == (meta.index, meta.term):
                    return SnapshotReader(self.path / name)
            return None

    def open_latest(self) -> SnapshotReader | None:
        """A streaming reader of the newest snapshot, or None if there is none."""
        with self._mutex:
            self._check_open()
            names = self._names()
            if not names:
                return None
            return SnapshotReader(self.path / names[-1][1])

    def close(self) -> None:
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._dirlock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"snapshot store {self.path} is closed")

    def _names(self) -> list[tuple[tuple[int, int], str]]:
        out = []
        for n in os.listdir(self.path):
            m = _NAME_RE.match(n)
            if m:
                out.append(((int(m.group(1)), int(m.group(2))), n))
        out.sort()
        return out

    def _newest_name(self) -> tuple[int, int] | None:
        names = self._names()
        return names[-1][0] if names else None

    def _prune(self) -> None:
        names = self._names()
        doomed = names[: max(0, len(names) - self.retain)]
        for _, n in doomed:
            (self.path / n).unlink()
        if doomed:
            _files.fsync_dir(self.path)

    def _committed(self, tmp: Path, meta: SnapshotMeta) -> Path:
        final = self.path / _name(meta)
        with self._mutex:
            self._check_open()
            os.replace(tmp, final)
            _files.fsync_dir(self.path)
            try:
                self._prune()
            except OSError as exc:  # the new snapshot is durable; old ones go next time
                log.warning(
                    "snapshot store %s: could not delete old snapshots: %s",
                    self.path,
                    exc,
                )
        return final


class SnapshotWriter:
    """Writes one snapshot to a temp file; nothing is visible until `commit()`.

    Use as a context manager: leaving the block without `commit()` (or with an
    exception) deletes the temp file.
    """

    def __init__(self, store: SnapshotStore, meta: SnapshotMeta) -> None:
        self.meta = meta
        self._store = store
        self._tmp = store.path / f".tmp-{_name(meta)}-{os.getpid()}-{next(_tmp_counter)}"
        self._fd = -1
        self._off = 0
        self._count = 0
        self._bytes = 0
        self._crc = 0
        self._done = False
        w = Writer()
        w.u8(_TAG_HEADER)
        w.raw(_MAGIC)
        w.u8(_VERSION)
        w.snapshot_meta(meta)
        try:
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            self._append(encode_frame(w.buf))
        except OSError as exc:
            self.abort()
            raise _files.map_os_error(exc, self._tmp, "create snapshot") from exc

    def write(self, chunk: bytes) -> None:
        """Append one chunk of snapshot data (any size; empty chunks are skipped)."""
        if self._done:
            raise StorageError("snapshot writer is already committed or aborted")
        if not chunk:
            return
        try:
            self._append(encode_frame(bytes([_TAG_DATA]) + chunk))
        except OSError as exc:
            self.abort()
            raise _files.map_os_error(exc, self._store.path / _name(self.meta), "write snapshot") from exc
        self._count += 1
        self._bytes += len(chunk)
        self._crc = crc32c(chunk, self._crc)

    def commit(self) -> SnapshotInfo:
        """Make the snapshot durable and the newest; then delete older ones."""
        if self._done:
            raise StorageError("snapshot writer is already committed or aborted")
        final = self._store.path / _name(self.meta)
        try:
            self._append(encode_frame(bytes([_TAG_END]) + _END.pack(self._count, self._bytes, self._crc)))
            _files.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
            final = self._store._committed(self._tmp, self.meta)
        except OSError as exc:
            self.abort()
            raise _files.map_os_error(exc, final, "commit snapshot") from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        return SnapshotInfo(self.meta, final, self._off)

    def abort(self) -> None:
        """Discard the temp file (idempotent)."""
        self._done = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # it will be removed when the store is next opened
            log.warning("snapshot store: could not delete %s: %s", self._tmp, exc)

    def _append(self, data: bytes) -> None:
        _files.write_all(self._fd, data, self._off)
        self._off += len(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()


class SnapshotReader:
    """Streams one stored snapshot; `meta` is read (and checked) on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f = open(path, "rb")  # noqa: SIM115 - owned by the reader, closed in close()
        except OSError as exc:
            raise _files.map_os_error(exc, path, "open snapshot") from exc
        self._frames = iter(FrameReader(self._f, path))
        try:
            _, payload = next(self._frames)
            r = Reader(payload)
            if r.u8() != _TAG_HEADER or r.raw(len(_MAGIC)) != _MAGIC:
                raise ValueError("not a snapshot file")
            if r.u8() != _VERSION:
                raise ValueError("unknown snapshot format version")
            self.meta = r.snapshot_meta()
            r.done()
        except StopIteration:
            self._f.close()
            raise StorageCorrupted(str(path), None, "snapshot file is empty or its header is torn") from None
        except ValueError as exc:
            self._f.close()
            raise StorageCorrupted(str(path), None, f"bad snapshot header: {exc}") from exc
        except BaseException:
            self._f.close()
            raise
        if (self.meta.index, self.meta.term) != tuple(
            int(g)
            for g in _NAME_RE.match(path.name).groups()  # type: ignore[union-attr]
        ):
            self._f.close()
            raise StorageCorrupted(
                str(path),
                self.meta.index,
                "snapshot header disagrees with its file name",
            )

    def chunks(self) -> Iterator[bytes]:
        """The data chunks, each verified; the end frame is checked after the last one."""
        index = self.meta.index
        count = size = crc = 0
        for _, payload in self._frames:
            tag = payload[0] if payload else -1
            if tag == _TAG_DATA:
                chunk = payload[1:]
                count += 1
                size += len(chunk)
                crc = crc32c(chunk, crc)
                yield chunk
            elif tag == _TAG_END:
                if len(payload) != 1 + _END.size or _END.unpack_from(payload, 1) != (
                    count,
                    size,
                    crc,
                ):
                    raise StorageCorrupted(
                        str(self.path),
                        index,
                        "snapshot end frame does not match its data",
                    )
                if next(self._frames, None) is not None:
                    raise StorageCorrupted(str(self.path), index, "data after the snapshot end frame")
                return
            else:
                raise StorageCorrupted(str(self.path), index, f"unknown frame tag {tag}")
        raise StorageCorrupted(str(self.path), index, "snapshot file is truncated (no end frame)")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
