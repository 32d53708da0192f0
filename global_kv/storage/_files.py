"""The file layer under the durable log, the hybrid engine's WAL and the snapshot store.

Every byte that global_kv persists itself goes through these few functions, so that
(1) an OSError is mapped to our exceptions in one place (ENOSPC/EDQUOT become
`StorageFull`, anything else `StorageError`), (2) durability steps (fdatasync, the
directory fsync after a create/rename/unlink) are spelled once, and (3) tests can
inject faults (a short write followed by ENOSPC, a failing fsync) by replacing the
module attributes `pwrite` / `fdatasync`.

This module must never swallow an OSError, and never report a write as done before
the bytes were handed to the kernel in full.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .._errors import StorageError, StorageFull

__all__ = [
    "DirLock",
    "atomic_write_file",
    "fsync_dir",
    "map_os_error",
    "write_all",
]

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# Indirections that fault-injection tests replace (monkeypatch) to simulate a full disk
# or a failing device at exactly this layer.
pwrite = os.pwrite
fdatasync = os.fdatasync


def map_os_error(exc: OSError, path: str | os.PathLike[str], action: str) -> StorageError:
    """The exception to raise (`from exc`) for an OSError while doing `action` on `path`."""
    where = os.fspath(path)
    if exc.errno in _FULL_ERRNOS:
        return StorageFull(where, f"{action} failed: {exc.strerror or exc}")
    return StorageError(f"{action} failed for {where}: {exc}")


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of `data` at `offset`, looping over short writes.

    A short write followed by an error leaves a partial record on disk; callers cut the
    file back to `offset` when this raises (see `RecordFile.append`).
    """
    view = memoryview(data)
    while view:
        n = pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - pwrite to a regular file never returns 0 for n > 0
            raise OSError(errno.EIO, "pwrite wrote nothing")
        view = view[n:]
        offset += n


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a create, rename or unlink inside `path` durable (POSIX needs the dir fsynced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never half.

    temp file + fsync + rename + directory fsync: the classic sequence.
    """
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - best effort cleanup; the original error wins
            pass
        raise map_os_error(exc, path, "atomic write") from exc


class DirLock:
    """An exclusive advisory lock on a directory (a `LOCK` file), held while a store is open.

    Two writers on one log would interleave records and corrupt it; flock conflicts
    between processes and between two opens in one process, so both are refused.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise map_os_error(exc, self.path, "open lock file") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StorageError(
                    f"{directory} is already open (locked by another store or process); close the other user first"
                ) from exc
            raise map_os_error(exc, self.path, "lock") from exc

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
