"""LevelDBStorage: the default durable engine (LevelDB through plyvel, an LSM tree).

Layout under `path`: `ACTIVE` names the live database directory (`db-<n>`); data keys
are stored as b"d" + key and the applied index under b"m" + b"applied", so one
LevelDB write batch carries an entry's effects and its index atomically.

A restore streams the snapshot into a fresh `db-<n+1>` and then switches `ACTIVE`
(temp file + fsync + rename + directory fsync): atomic, and the state is never held
twice in memory. Leftover directories of an interrupted restore are removed on open.

Checksums: LevelDB frames its log records and table blocks with CRC32C; the engine
opens with `paranoid_checks` and reads with `verify_checksums`, so damage surfaces as
`StorageCorrupted` instead of a skipped record.

Durability: with `sync=False` (default) a write survives a crash of the process as soon
as it returns (LevelDB has written its log), and `sync()` makes it survive power loss;
a Raft replica recovers anything newer from the Raft log via `applied_index()`. Pass
`sync=True` to fsync every write.

This module must never let a plyvel exception escape unmapped.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plyvel  # type: ignore[import-untyped]

from .._errors import StorageCorrupted, StorageError, StorageFull
from . import _files
from ._engine import Pairs, StorageEngine

__all__ = ["LevelDBStorage"]

_DATA = b"d"
_DATA_END = b"e"
_APPLIED = b"mapplied"
_DB_RE = re.compile(r"^db-(\d+)$")
_BATCH_BYTES = 4 << 20


def _dir_size(path: Path) -> int:
    total = 0
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


class LevelDBStorage(StorageEngine):
    name = "leveldb"
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = False,
        cache_bytes: int = 32 << 20,
        write_buffer_bytes: int = 16 << 20,
        bloom_filter_bits: int = 10,
        compression: str | None = "snappy",
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._sync_writes = sync
        self._options: dict[str, Any] = {
            "create_if_missing": True,
            "lru_cache_size": cache_bytes,
            "write_buffer_size": write_buffer_bytes,
            "bloom_filter_bits": bloom_filter_bits,
            "compression": compression,
            # Fail loudly on a damaged log or table instead of skipping records.
            "paranoid_checks": True,
        }
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "create engine directory") from exc
        self._dirlock = _files.DirLock(self.path)
        try:
            self._active_name = self._read_active()
            self._db = self._open_db(self.path / self._active_name)
            self._remove_leftovers()
        except BaseException:
            self._dirlock.release()
            raise

    # ---- open / layout ----------------------------------------------------------------------

    def _read_active(self) -> str:
        active = self.path / "ACTIVE"
        try:
            name = active.read_text().strip()
        except FileNotFoundError:
            name = "db-1"
            db = self._open_db(self.path / name)
            db.close()
            _files.atomic_write_file(active, name.encode())
            return name
        except OSError as exc:
            raise _files.map_os_error(exc, active, "read") from exc
        if not _DB_RE.match(name) or not (self.path / name).is_dir():
            raise StorageCorrupted(str(active), None, f"names a missing database {name!r}")
        return name

    def _open_db(self, path: Path) -> plyvel.DB:
        with self._mapped(path, "open"):
            return plyvel.DB(str(path), **self._options)

    def _remove_leftovers(self) -> None:
        for entry in os.listdir(self.path):
            if _DB_RE.match(entry) and entry != self._active_name:
                shutil.rmtree(self.path / entry, ignore_errors=True)

    @contextlib.contextmanager
    def _mapped(self, where: Path | None, action: str) -> Iterator[None]:
        path = str(where or self.path)
        try:
            yield
        except plyvel.CorruptionError as exc:
            raise StorageCorrupted(path, None, f"LevelDB: {exc}") from exc
        except plyvel.IOError as exc:
            text = str(exc)
            if "No space left" in text or "Disk quota" in text:
                raise StorageFull(path, f"LevelDB {action}: {text}") from exc
            if "already held" in text:
                raise StorageError(f"{path} is already open by another process or store") from exc
            raise StorageError(f"LevelDB {action} failed for {path}: {text}") from exc
        except (plyvel.Error, RuntimeError) as exc:
            raise StorageError(f"LevelDB {action} failed for {path}: {exc}") from exc

    # ---- hooks ------------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        with self._mapped(None, "get"):
            value: bytes | None = self._db.get(_DATA + key, verify_checksums=True)
            return value

    def _applied(self) -> int:
        with self._mapped(None, "get"):
            raw = self._db.get(_APPLIED, verify_checksums=True)
        return int.from_bytes(raw, "big") if raw else 0

    def _write(self, puts: dict[bytes, bytes], deletes: list[bytes], applied_index: int | None) -> None:
        with self._mapped(None, "write"):
            wb = self._db.write_batch(sync=self._sync_writes)
            for key in deletes:
                wb.delete(_DATA + key)
            for key, value in puts.items():
                wb.put(_DATA + key, value)
            if applied_index is not None:
                wb.put(_APPLIED, applied_index.to_bytes(8, "big"))
            wb.write()

    def _scan(
        self, start: bytes | None, end: bytes | None, limit: int | None
    ) -> tuple[Pairs, Callable[[], None] | None]:
        with self._mapped(None, "scan"):
            it = self._db.iterator(
                start=_DATA + (start or b""),
                stop=_DATA + end if end is not None else _DATA_END,
                verify_checksums=True,
            )
        return self._strip(it), it.close

    def _view(self) -> tuple[Pairs, int, Callable[[], None] | None]:
        with self._mapped(None, "snapshot"):
            snap = self._db.snapshot()
            raw = snap.get(_APPLIED, verify_checksums=True)
            it = snap.iterator(start=_DATA, stop=_DATA_END, verify_checksums=True, fill_cache=False)

        def release() -> None:
            it.close()
            snap.close()

        return self._strip(it), int.from_bytes(raw, "big") if raw else 0, release

    def _strip(self, it: Any) -> Pairs:
        while True:
            with self._mapped(None, "iterate"):
                try:
                    key, value = next(it)
                except StopIteration:
                    return
            yield key[1:], value

    def _restore(self, pairs: Pairs, last_index: int) -> None:
        n = int(self._active_name.split("-")[1]) + 1
        new_name = f"db-{n}"
        new_path = self.path / new_name
        shutil.rmtree(new_path, ignore_errors=True)
        new_db = self._open_db(new_path)
        try:
            with self._mapped(new_path, "restore"):
                wb = new_db.write_batch()
                pending = 0
                for key, value in pairs:
                    wb.put(_DATA + key, value)
                    pending += len(key) + len(value)
                    if pending >= _BATCH_BYTES:
                        wb.write()
                        wb = new_db.write_batch()
                        pending = 0
                wb.put(_APPLIED, last_index.to_bytes(8, "big"))
                wb.write()
                new_db.write_batch(sync=True).write()  # everything before is now durable
            _files.atomic_write_file(self.path / "ACTIVE", new_name.encode())
        except BaseException:
            new_db.close()
            shutil.rmtree(new_path, ignore_errors=True)
            raise
        old_db, old_name = self._db, self._active_name
        self._db, self._active_name = new_db, new_name
        old_db.close()
        shutil.rmtree(self.path / old_name, ignore_errors=True)

    def _compact(self) -> None:
        with self._mapped(None, "compact"):
            self._db.compact_range()

    def _size(self) -> int:
        try:
            return _dir_size(self.path / self._active_name)
        except OSError as exc:
            raise _files.map_os_error(exc, self.path, "size") from exc

    def _sync(self) -> None:
        with self._mapped(None, "sync"):
            self._db.write_batch(sync=True).write()

    def _close(self) -> None:
        try:
            with self._mapped(None, "close"):
                self._db.close()
        finally:
            self._dirlock.release()
