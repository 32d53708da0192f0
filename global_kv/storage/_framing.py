"""Checksummed, length-framed records in an append-only file, and their crash-aware reader.

On-disk frame (little endian)::

    u32 payload_length | u32 crc32c(payload) | u32 crc32c(the previous 8 bytes) | payload

The header has its own checksum so that a flipped bit in a length can never pass for
a torn write (a corrupt length pointing past the end of the file would otherwise look
exactly like an interrupted append and be silently cut off).

Reading classifies the end of a file:

- clean: the last frame ends exactly at the end of the file;
- torn: an incomplete header, a payload cut short (its header is valid), or a zero-filled
  remainder. These are what an interrupted append leaves; the caller truncates them
  with a warning;
- corrupt: anything else (a header or payload checksum mismatch followed by data) raises
  `StorageCorrupted`. A complete final frame whose payload fails its checksum is also
  corruption unless the caller passes `lenient_tail_crc=True`: a synced record that
  rots must not be dropped as if it had never been acknowledged.

This module never returns a payload that failed its checksum.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from crc32c import crc32c

from .._errors import StorageCorrupted, StorageError
from . import _files

__all__ = ["HEADER_SIZE", "MAX_PAYLOAD", "AppendFile", "FrameReader", "encode_frame"]

_LEN_CRC = struct.Struct("<II")
_CRC = struct.Struct("<I")
HEADER_SIZE = 12
MAX_PAYLOAD = 1 << 31  # 2 GiB: a sanity bound, far above any record we write


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """One frame around `payload`."""
    head = _LEN_CRC.pack(len(payload), crc32c(payload))
    return head + _CRC.pack(crc32c(head)) + bytes(payload)


class FrameReader:
    """Iterate the valid frames of a file; afterwards `end` and `torn` describe its tail.

    `end` is the offset just past the last valid frame; `torn` is None for a clean end,
    else a sentence saying what was found after `end` (the caller decides to cut it).
    """

    def __init__(
        self,
        f: BinaryIO,
        path: str | os.PathLike[str],
        *,
        start: int = 0,
        lenient_tail_crc: bool = False,
    ) -> None:
        self._f = f
        self.path = os.fspath(path)
        self._size = os.fstat(f.fileno()).st_size
        self._lenient = lenient_tail_crc
        self.end = start
        self.torn: str | None = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        f, size = self._f, self._size
        off = self.end
        f.seek(off)
        while True:
            remaining = size - off
            if remaining == 0:
                return
            if remaining < HEADER_SIZE:
                self.torn = f"incomplete record header ({remaining} bytes) at byte {off}"
                return
            head = f.read(HEADER_SIZE)
            length, pcrc = _LEN_CRC.unpack_from(head)
            (hcrc,) = _CRC.unpack_from(head, 8)
            if crc32c(head[:8]) != hcrc:
                if self._zeros_from(off):
                    self.torn = f"zero-filled tail of {remaining} bytes at byte {off}"
                    return
                raise StorageCorrupted(self.path, None, f"record header checksum mismatch at byte {off}")
            if length > MAX_PAYLOAD:
                raise StorageCorrupted(
                    self.path,
                    None,
                    f"record length {length} out of bounds at byte {off}",
                )
            if remaining - HEADER_SIZE < length:
                self.torn = f"record at byte {off} needs {length} payload bytes, only {remaining - HEADER_SIZE} present"
                return
            payload = f.read(length)
            if crc32c(payload) != pcrc:
                if self._lenient and off + HEADER_SIZE + length == size:
                    self.torn = f"final record at byte {off} fails its checksum"
                    return
                raise StorageCorrupted(self.path, None, f"record payload checksum mismatch at byte {off}")
            yield off, payload
            off += HEADER_SIZE + length
            self.end = off

    def _zeros_from(self, off: int) -> bool:
        f = self._f
        f.seek(off)
        while True:
            block = f.read(1 << 16)
            if not block:
                return True
            if block.count(0) != len(block):
                return False


class AppendFile:
    """An append-only file of frames with all-or-nothing appends.

    A failed write is cut back (ftruncate) so the file never keeps a partial record in
    the middle. A failed fsync poisons the file: after fsync reports an error the page
    cache may have dropped the dirty pages, so nobody can say what is on disk; every
    later call raises until the store is reopened (reopening re-reads the truth).
    """

    def __init__(self, path: str | os.PathLike[str], fd: int, size: int) -> None:
        self.path = os.fspath(path)
        self.fd = fd
        self.size = size
        self.failed: str | None = None

    def append(self, data: bytes, *, sync: bool) -> int:
        """Write `data` (whole frames) at the end; fdatasync if `sync`. Returns its offset."""
        self.check_usable()
        off = self.size
        try:
            _files.write_all(self.fd, data, off)
        except OSError as exc:
            self._cut_back(off, exc)
            raise _files.map_os_error(exc, self.path, "append") from exc
        if sync:
            try:
                _files.fdatasync(self.fd)
            except OSError as exc:
                self.failed = f"fdatasync failed ({exc}); state on disk is unknown"
                raise _files.map_os_error(exc, self.path, "fdatasync") from exc
        self.size = off + len(data)
        return off

    def sync(self) -> None:
        self.check_usable()
        try:
            _files.fdatasync(self.fd)
        except OSError as exc:
            self.failed = f"fdatasync failed ({exc}); state on disk is unknown"
            raise _files.map_os_error(exc, self.path, "fdatasync") from exc

    def check_usable(self) -> None:
        if self.failed is not None:
            raise StorageError(
                f"{self.path} is unusable after an earlier failure: {self.failed}; close and reopen the store"
            )

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def _cut_back(self, off: int, cause: OSError) -> None:
        try:
            os.ftruncate(self.fd, off)
        except OSError as exc:
            self.failed = f"append failed ({cause}) and cutting back the partial record failed ({exc})"
