"""LMDBStorage: a copy-on-write B+tree engine (the `lmdb` package), the seed's BoltStorage.

LMDB is Bolt's ancestor: one memory-mapped file, MVCC read transactions that never
block the writer, and crash safety by never overwriting live pages. Reads are the
fastest of the durable engines; each write transaction costs a page copy-up and, with
`sync=True` (the default, LMDB's own), an fsync: batch writes with `write_batch`.

Two named databases: `data` (the keys) and `meta` (the applied index), written in one
transaction. The map grows by doubling when full (the map size is virtual address
space, not disk; 16 GiB to start). A restore streams pairs into one write transaction
with append-mode puts (the snapshot format guarantees sorted keys), committed only at
the end.

Every stored value is prefixed with a CRC32C of its key and value, verified on every
read: LMDB 0.9 has no page checksums of its own.

Why `sync=True` by default here, unlike LevelDB: without it LMDB may leave a *corrupt*
file after a power loss (its docs: MDB_NOSYNC), not just lose recent writes.

This module must never let an lmdb exception escape unmapped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
from crc32c import crc32c

from .._errors import StorageCorrupted, StorageError, StorageFull
from . import _files
from ._engine import MAX_KEY_SIZE, Pairs, StorageEngine

__all__ = ["LMDBStorage"]

_APPLIED = b"applied"
_MAX_GROWTH = 16
_NEARLY_FULL = (
    1 << 20
)  # bytes free below which an LMDB EIO is reported as a full disk  # doublings per write before a full map is reported


def _seal(key: bytes, value: bytes) -> bytes:
    """Stored form of a value: crc32c(key, value) then the value (LMDB 0.9 has no
    page checksums, so we carry our own per record)."""
    return crc32c(value, crc32c(key)).to_bytes(4, "little") + value


class LMDBStorage(StorageEngine):
    name = "lmdb"
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = True,
        map_size: int = 16 << 30,
        max_readers: int = 126,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._sync_writes = sync
        self._map_size = map_size
        self._max_readers = max_readers
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "create engine directory") from exc
        self._dirlock = _files.DirLock(self.path)
        try:
            self._open_env()
        except BaseException:
            self._dirlock.release()
            raise

    def _open_env(self) -> None:
        with self._mapped("open"):
            self._env = lmdb.open(
                str(self.path),
                map_size=self._map_size,
                max_dbs=2,
                max_readers=self._max_readers,
                sync=self._sync_writes,
                metasync=self._sync_writes,
                readahead=False,
                meminit=False,
            )
            self._data = self._env.open_db(b"data")
            self._meta = self._env.open_db(b"meta")
            self._map_size = self._env.info()["map_size"]

    @contextlib.contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        path = str(self.path)
        try:
            yield
        except (lmdb.CorruptedError, lmdb.InvalidError, lmdb.PageNotFoundError) as exc:
            raise StorageCorrupted(path, None, f"LMDB {action}: {exc}") from exc
        except lmdb.MapFullError as exc:
            raise StorageFull(path, f"LMDB map of {self._map_size} bytes is full") from exc
        except lmdb.Error as exc:
            text = str(exc)
            if "No space left" in text or "Disk quota" in text or self._disk_nearly_full(text):
                raise StorageFull(path, f"LMDB {action}: {text}") from exc
            raise StorageError(f"LMDB {action} failed for {path}: {text}") from exc

    def _disk_nearly_full(self, text: str) -> bool:
        """LMDB reports a short page write (what ENOSPC causes) as EIO; tell the two apart
        by looking at the free space left on the file system."""
        if "Input/output error" not in text:
            return False
        try:
            st = os.statvfs(self.path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < _NEARLY_FULL

    def _write_txn(self, fn: Callable[[Any], None], action: str) -> None:
        """Run `fn(txn)` in a write transaction; on a full map, double it and retry."""
        for _ in range(_MAX_GROWTH):
            try:
                with self._mapped(action), self._env.begin(write=True) as txn:
                    fn(txn)
                return
            except StorageFull as exc:
                if not isinstance(exc.__cause__, lmdb.MapFullError):
                    raise
                self._grow()
        with self._mapped(action), self._env.begin(write=True) as txn:
            fn(txn)

    def _grow(self) -> None:
        with self._mapped("grow map"):
            try:
                self._env.set_mapsize(self._map_size * 2)
            except lmdb.Error as exc:
                raise StorageFull(
                    str(self.path),
                    f"the LMDB map ({self._map_size} bytes) is full and cannot grow while "
                    f"read transactions are open ({exc}); close iterators and retry",
                ) from exc
            self._map_size = self._env.info()["map_size"]

    # ---- hooks ------------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        with self._mapped("get"), self._env.begin(db=self._data) as txn:
            stored: bytes | None = txn.get(key)
        return None if stored is None else self._open_sealed(key, stored)

    def _applied(self) -> int:
        with self._mapped("get"), self._env.begin(db=self._meta) as txn:
            raw = txn.get(_APPLIED)
        return self._decode_applied(raw)

    def _decode_applied(self, raw: bytes | None) -> int:
        return int.from_bytes(self._open_sealed(_APPLIED, raw), "big") if raw else 0

    def _open_sealed(self, key: bytes, stored: bytes) -> bytes:
        value = stored[4:]
        if len(stored) < 4 or crc32c(value, crc32c(key)) != int.from_bytes(stored[:4], "little"):
            raise StorageCorrupted(
                str(self.path / "data.mdb"),
                None,
                f"record for key {key[:64]!r} fails its checksum",
            )
        return value

    def _write(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        def fn(txn: Any) -> None:
            for key in deletes:
                txn.delete(key, db=self._data)
            for key, value in puts.items():
                txn.put(key, _seal(key, value), db=self._data)
            if applied_index is not None:
                txn.put(
                    _APPLIED,
                    _seal(_APPLIED, applied_index.to_bytes(8, "big")),
                    db=self._meta,
                )

        self._write_txn(fn, "write")

    def _read_pairs(self, txn: Any, start: bytes | None, end: bytes | None) -> Pairs:
        with self._mapped("scan"):
            cur = txn.cursor(db=self._data)
            # LMDB refuses a seek key longer than its key limit; no key is that long, so
            # seeking to the cut bound and skipping what sorts below `start` is the same.
            ok = cur.set_range(start[:MAX_KEY_SIZE]) if start else cur.first()
        while ok:
            with self._mapped("iterate"):
                key, stored = cur.item()
                if end is not None and key >= end:
                    return
                ok = cur.next()
            if start is None or key >= start:
                yield key, self._open_sealed(key, stored)

    def _scan(
        self, start: bytes | None, end: bytes | None, limit: int | None
    ) -> tuple[Pairs, Callable[[], None] | None]:
        with self._mapped("scan"):
            txn = self._env.begin(db=self._data)
        return self._read_pairs(txn, start, end), txn.abort

    def _view(self) -> tuple[Pairs, int, Callable[[], None] | None]:
        with self._mapped("snapshot"):
            txn = self._env.begin()
            raw = txn.get(_APPLIED, db=self._meta)
        return self._read_pairs(txn, None, None), self._decode_applied(raw), txn.abort

    def _restore(self, pairs: Pairs, last_index: int) -> None:
        def fn(txn: Any) -> None:
            txn.drop(self._data, delete=False)
            cur = txn.cursor(db=self._data)
            for key, value in pairs:
                cur.put(key, _seal(key, value), append=True)
            txn.put(_APPLIED, _seal(_APPLIED, last_index.to_bytes(8, "big")), db=self._meta)

        # No retry here: `pairs` is a one-shot stream. Grow the map so that the caller's
        # retry (with a fresh stream) has room, and report the failure.
        try:
            with self._mapped("restore"), self._env.begin(write=True) as txn:
                fn(txn)
        except StorageFull as exc:
            if isinstance(exc.__cause__, lmdb.MapFullError):
                self._grow()
            raise

    def _compact(self) -> None:
        """Rewrite the file without free pages (LMDB never shrinks it by itself)."""
        self._invalidate_views("the LMDB file was compacted")
        tmp = self.path / "compact.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            with self._mapped("compact"):
                self._env.copy(str(tmp), compact=True)
            with open(tmp / "data.mdb", "rb+") as f:
                os.fsync(f.fileno())
            self._env.close()
            os.replace(tmp / "data.mdb", self.path / "data.mdb")
            _files.fsync_dir(self.path)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "compact") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if self._env_closed():
                self._open_env()

    def _env_closed(self) -> bool:
        try:
            self._env.info()
        except lmdb.Error:
            return True
        return False

    def _size(self) -> int:
        try:
            return (self.path / "data.mdb").stat().st_size
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "size") from exc

    def _sync(self) -> None:
        with self._mapped("sync"):
            self._env.sync(True)

    def _close(self) -> None:
        try:
            with self._mapped("close"):
                self._env.close()
        finally:
            self._dirlock.release()
