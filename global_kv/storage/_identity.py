"""Who a data dir belongs to: its cluster id, node and replica name, in a checksummed file.

Written once, on the first start on an empty (or older, unmarked) data dir, atomically
(temp file, fsync, rename, directory fsync), and checked at every later start: a replica
started on the data dir of another node, another replica or another cluster refuses to
start (`DataDirMismatch`) instead of mixing two histories or silently talking to nobody.

The file is one line of JSON with a CRC-32C over the other fields, so a torn or edited
file is reported (`StorageCorrupted`), never guessed at. This module never changes a file
that exists; it only creates a missing one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from crc32c import crc32c

from .._errors import DataDirMismatch, StorageCorrupted, StorageError
from . import _files
from ._files import map_os_error

__all__ = ["IDENTITY_FILE", "DataDirIdentity", "ensure_identity", "read_identity"]

IDENTITY_FILE = "IDENTITY"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class DataDirIdentity:
    """The owner of a data dir: `cluster_id`, `node` (name@host) and `replica` (its registered name)."""

    cluster_id: str
    node: str
    replica: str

    def as_tuple(self) -> tuple[str, str, str]:
        return self.cluster_id, self.node, self.replica


def _body(identity: DataDirIdentity) -> dict[str, object]:
    return {
        "format": _FORMAT,
        "cluster_id": identity.cluster_id,
        "node": identity.node,
        "replica": identity.replica,
    }


def _checksum(body: dict[str, object]) -> int:
    return crc32c(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _encode(identity: DataDirIdentity) -> bytes:
    body = _body(identity)
    return (json.dumps({**body, "crc32c": _checksum(body)}, sort_keys=True) + "\n").encode()


def read_identity(data_dir: str | os.PathLike[str]) -> DataDirIdentity | None:
    """The identity recorded in `data_dir`, or None if it has none yet.

    Raises `StorageCorrupted` if the file is there but unreadable as one (torn, edited).
    """
    path = Path(data_dir) / IDENTITY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise map_os_error(exc, path, "read identity") from exc
    try:
        record = json.loads(raw)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        crc = record.pop("crc32c")
        if record.get("format") != _FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r}")
        fields = (record["cluster_id"], record["node"], record["replica"])
        if not all(isinstance(f, str) and f for f in fields):
            raise ValueError("cluster_id, node and replica must be non-empty strings")
        if crc != _checksum(record):
            raise ValueError("checksum mismatch")
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageCorrupted(str(path), None, f"the identity file is unreadable ({exc})") from exc
    return DataDirIdentity(*fields)


def ensure_identity(data_dir: str | os.PathLike[str], expected: DataDirIdentity) -> bool:
    """Check that `data_dir` belongs to `expected`, recording it there if it has no identity yet.

    Returns True if the identity was written now (a first start). Raises `DataDirMismatch`
    if the data dir belongs to another cluster, node or replica, `StorageCorrupted` for an
    unreadable identity file, `StorageError` if it cannot be written.
    """
    directory = Path(data_dir)
    found = read_identity(directory)
    if found is not None:
        if found != expected:
            raise DataDirMismatch(os.fspath(directory), found.as_tuple(), expected.as_tuple())
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise map_os_error(exc, directory, "create data dir") from exc
    if not directory.is_dir():
        raise StorageError(f"data dir {directory} is not a directory")
    _files.atomic_write_file(directory / IDENTITY_FILE, _encode(expected))
    return True
