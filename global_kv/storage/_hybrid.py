"""HybridStorage: a write-ahead log plus an in-memory table, checkpointed to disk.

Writes append one checksummed record to the WAL and then update the in-memory table;
reads never touch the disk. When the WAL passes `checkpoint_bytes` (or on `compact()`),
the table is written as a checkpoint in the engine-independent snapshot format and the
WAL starts over. Files under `path`:

    checkpoint-<gen>.kv   the state after every write of WAL generations < gen
    wal-<gen>.log         writes since checkpoint <gen> (generation 0 has no checkpoint)

A checkpoint goes: temp file -> fsync -> new empty WAL (fsynced) -> rename of the
checkpoint -> directory fsync (the commit point), and only then are the previous
generation's files deleted; recovery opens the newest checkpoint plus its WAL and
deletes the rest, so a crash at any point reopens to a consistent state. A checkpoint
needs room for a second copy of the state: if the disk is full it is postponed (with a
warning) and writes keep going to the WAL while it has room.

Recovery cuts a torn final WAL record with a warning; any other damage raises
StorageCorrupted. (With `sync=False` a complete final record failing its checksum also
counts as torn: it was never fsynced, and a Raft replica replays it from its log.)

Durability: `sync=False` (default) hands each record to the kernel before returning
(survives a process crash); `sync=True` fdatasyncs each write. The whole state lives in
memory: pick this engine for small, hot, write-heavy state, not for data larger than RAM.

It must never update the table before the WAL append succeeded.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

from .._errors import StorageCorrupted, StorageError, StorageFull
from . import _files
from ._codec import Reader
from ._engine import Pairs
from ._framing import AppendFile, FrameReader, encode_frame
from ._kv_stream import KVStreamDecoder, encode_kv_stream
from ._memory import _TableEngine
from ._sorted_table import SortedTable

__all__ = ["HybridStorage"]

log = logging.getLogger("global_kv.storage")

_WAL_MAGIC = b"GKVHWAL1"
_TAG_HEADER = 1
_TAG_WRITE = 2
_HAS_APPLIED = 1
_II = struct.Struct("<II")
_I = struct.Struct("<I")
_Q = struct.Struct("<Q")
_CKPT_RE = re.compile(r"^checkpoint-(\d{16})\.kv$")
_WAL_RE = re.compile(r"^wal-(\d{16})\.log$")


def _ckpt_name(gen: int) -> str:
    return f"checkpoint-{gen:016d}.kv"


def _wal_name(gen: int) -> str:
    return f"wal-{gen:016d}.log"


def _encode_write(puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> bytes:
    parts = [bytes([_TAG_WRITE, _HAS_APPLIED if applied_index is not None else 0])]
    if applied_index is not None:
        parts.append(_Q.pack(applied_index))
    parts.append(_I.pack(len(puts)))
    for key, value in puts.items():
        parts.append(_II.pack(len(key), len(value)))
        parts.append(key)
        parts.append(value)
    parts.append(_I.pack(len(deletes)))
    for key in deletes:
        parts.append(_I.pack(len(key)))
        parts.append(key)
    return encode_frame(b"".join(parts))


class HybridStorage(_TableEngine):
    name = "hybrid"
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = False,
        checkpoint_bytes: int = 64 << 20,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._sync_writes = sync
        self.checkpoint_bytes = checkpoint_bytes
        self._next_checkpoint = checkpoint_bytes
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "create engine directory") from exc
        self._dirlock = _files.DirLock(self.path)
        self._wal: AppendFile | None = None
        try:
            try:
                self._recover()
            except OSError as exc:
                raise _files.map_os_error(exc, self.path, "open hybrid engine") from exc
        except BaseException:
            if self._wal is not None:
                self._wal.close()
            self._dirlock.release()
            raise

    # ---- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        names = os.listdir(self.path)
        ckpts = sorted(int(m.group(1)) for n in names if (m := _CKPT_RE.match(n)))
        gen = ckpts[-1] if ckpts else 0
        for n in names:
            if n.startswith(".tmp-"):
                (self.path / n).unlink()
        if gen:
            path = self.path / _ckpt_name(gen)
            with open(path, "rb") as f:
                decoder = KVStreamDecoder(iter(lambda: f.read(1 << 20), b""), str(path))
                self._table = SortedTable.from_sorted(decoder.pairs())
                assert decoder.last_index is not None
                self._applied_index = decoder.last_index
        wal_path = self.path / _wal_name(gen)
        if wal_path.exists():
            size = self._replay_wal(wal_path, gen)
            fd = os.open(wal_path, os.O_RDWR)
            self._wal = AppendFile(wal_path, fd, size)
        else:
            self._wal = self._create_wal(gen)
        self._gen = gen
        self._delete_older(gen)
        for n in names:
            m = _WAL_RE.match(n)
            if m and int(m.group(1)) > gen:  # created by a checkpoint that never committed
                (self.path / n).unlink()

    def _replay_wal(self, path: Path, gen: int) -> int:
        with open(path, "rb") as f:
            reader = FrameReader(f, path, lenient_tail_crc=not self._sync_writes)
            first = True
            for offset, payload in reader:
                try:
                    r = Reader(payload)
                    tag = r.u8()
                    if first:
                        if tag != _TAG_HEADER or r.raw(len(_WAL_MAGIC)) != _WAL_MAGIC or r.u64() != gen:
                            raise ValueError("WAL does not start with its header")
                        r.done()
                        first = False
                        continue
                    if tag != _TAG_WRITE:
                        raise ValueError(f"unknown record tag {tag}")
                    flags = r.u8()
                    applied = r.u64() if flags & _HAS_APPLIED else None
                    puts = {}
                    for _ in range(r.u32()):
                        klen, vlen = _II.unpack(r.raw(_II.size))
                        key = r.raw(klen)
                        puts[key] = r.raw(vlen)
                    deletes = [r.raw(r.u32()) for _ in range(r.u32())]
                    r.done()
                except ValueError as exc:
                    raise StorageCorrupted(
                        str(path),
                        self._applied_index,
                        f"record at byte {offset}: {exc}",
                    ) from exc
                self._apply_to_table(puts, deletes, applied)
        if reader.torn is not None or first:
            log.warning(
                "hybrid WAL %s: cutting off a torn tail (%s)",
                path,
                reader.torn or "no header",
            )
            if first:
                path.unlink()
                _files.fsync_dir(self.path)
                wal = self._create_wal(gen)
                wal.close()
                return wal.size
            with open(path, "rb+") as f:
                f.truncate(reader.end)
                os.fsync(f.fileno())
        return reader.end

    def _create_wal(self, gen: int) -> AppendFile:
        path = self.path / _wal_name(gen)
        header = encode_frame(bytes([_TAG_HEADER]) + _WAL_MAGIC + _Q.pack(gen))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise _files.map_os_error(exc, path, "create WAL") from exc
        wal = AppendFile(path, fd, 0)
        try:
            wal.append(header, sync=True)
            _files.fsync_dir(self.path)
        except (OSError, StorageError) as exc:
            wal.close()
            try:
                path.unlink()
            except OSError:
                pass  # the original error matters; recovery removes a headerless WAL
            if isinstance(exc, OSError):
                raise _files.map_os_error(exc, path, "create WAL") from exc
            raise
        return wal

    def _delete_older(self, gen: int) -> None:
        doomed = [
            n for n in os.listdir(self.path) if ((m := _CKPT_RE.match(n) or _WAL_RE.match(n)) and int(m.group(1)) < gen)
        ]
        if not doomed:
            return
        try:
            for n in doomed:
                (self.path / n).unlink()
            _files.fsync_dir(self.path)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "delete old checkpoint") from exc

    # ---- checkpoints ------------------------------------------------------------------------

    def _checkpoint(self, table: SortedTable, applied_index: int, pairs: Pairs | None = None) -> None:
        """Write `pairs` (default: `table`) as checkpoint gen+1 and switch to a new WAL.

        `table` must be the state those pairs describe; it becomes the live table only
        once the checkpoint is durable. The rename of the checkpoint is the commit point:
        the new (empty) WAL exists before it, so nothing after it can fail the call.
        """
        gen = self._gen + 1
        final = self.path / _ckpt_name(gen)
        tmp = self.path / f".tmp-{final.name}"
        if pairs is None:
            pairs = ((k, table.data[k]) for k in table.all_keys())
        new_wal: AppendFile | None = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                off = 0
                for chunk in encode_kv_stream(pairs, applied_index):
                    _files.write_all(fd, chunk, off)
                    off += len(chunk)
                _files.fdatasync(fd)
            finally:
                os.close(fd)
            new_wal = self._create_wal(gen)
            os.replace(tmp, final)
            _files.fsync_dir(self.path)
        except BaseException as exc:
            for leftover in (
                tmp,
                self.path / _wal_name(gen) if new_wal is not None else None,
            ):
                if leftover is not None:
                    try:
                        leftover.unlink()
                    except OSError:
                        pass  # best effort; recovery deletes temp files and orphan WALs
            if new_wal is not None:
                new_wal.close()
            if isinstance(exc, OSError):
                raise _files.map_os_error(exc, final, "write checkpoint") from exc
            raise
        # Committed: the checkpoint and its empty WAL are durable and *are* the state.
        self._next_checkpoint = self.checkpoint_bytes
        old_wal, self._wal = self._wal, new_wal
        if old_wal is not None:
            old_wal.close()
        self._gen = gen
        self._table = table
        self._applied_index = applied_index
        try:
            self._delete_older(gen)
        except StorageError as exc:
            log.warning("hybrid engine %s: could not delete old generation: %s", self.path, exc)

    # ---- hooks ------------------------------------------------------------------------------

    def _active_wal(self) -> AppendFile:
        if self._wal is None:
            raise StorageError(f"hybrid engine {self.path} has no usable WAL after an earlier failure; reopen it")
        return self._wal

    def _write(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        wal = self._active_wal()
        if wal.size >= self._next_checkpoint:
            try:
                self._checkpoint(self._table, self._applied_index)
            except StorageFull as exc:
                # A checkpoint needs room for a second copy of the state; the write itself
                # may still fit in the WAL. Try again after another checkpoint_bytes.
                self._next_checkpoint = wal.size + self.checkpoint_bytes
                log.warning("hybrid engine %s: checkpoint postponed: %s", self.path, exc)
            wal = self._active_wal()
        wal.append(_encode_write(puts, deletes, applied_index), sync=self._sync_writes)
        self._apply_to_table(puts, deletes, applied_index)

    def _restore(self, pairs: Pairs, last_index: int) -> None:
        building = SortedTable()
        # The fresh table is filled as the checkpoint file is written: one pass over the
        # stream, and the old table stays live until the new checkpoint is durable.
        gen_pairs = _tee_into(pairs, building)
        self._checkpoint(building, last_index, gen_pairs)

    def _compact(self) -> None:
        self._active_wal()
        self._checkpoint(self._table, self._applied_index)

    def _size(self) -> int:
        total = 0
        try:
            for n in os.listdir(self.path):
                if _CKPT_RE.match(n) or _WAL_RE.match(n):
                    total += (self.path / n).stat().st_size
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "size") from exc
        return total

    def _sync(self) -> None:
        self._active_wal().sync()

    def _close(self) -> None:
        try:
            if self._wal is not None and self._wal.failed is None:
                self._wal.sync()
        finally:
            if self._wal is not None:
                self._wal.close()
            self._table = SortedTable()
            self._dirlock.release()


def _tee_into(pairs: Pairs, table: SortedTable) -> Pairs:
    """Yield `pairs` while appending them to `table` (they come sorted)."""
    put: Callable[[bytes, bytes], None] = table.put
    for key, value in pairs:
        put(key, value)
        yield key, value
