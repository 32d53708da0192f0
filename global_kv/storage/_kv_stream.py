"""The engine-independent snapshot format of a key-value engine: a checksummed byte stream.

Every engine writes its snapshot in this one format, so a snapshot taken from LevelDB
restores into LMDB, memory or hybrid, and the hybrid engine uses it for its on-disk
checkpoints. Layout (little endian)::

    header: b"GKVSNAP1" | u64 last_index | u32 crc32c(previous 16 bytes)
    block:  u8 kind | u32 length | u32 crc32c(kind, length, payload) | payload
      kind 1 (data): repeated  u32 key_len | u32 value_len | key | value
      kind 2 (end):  u64 pair_count | u64 data_bytes   -- nothing may follow it

Keys are strictly increasing (bytewise) across the stream, which lets B+tree engines
load it with appends, and is checked on both ends.

The decoder accepts the stream cut into chunks at any boundaries (a network transfer
may re-chunk it) and holds at most one block in memory. It must never yield a pair
from a block that failed its checksum, and a stream without its end block is corrupt
(so a restore that consumes pairs as they come can still refuse to commit).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from crc32c import crc32c

from .._errors import StorageCorrupted

__all__ = ["MAGIC", "KVStreamDecoder", "encode_kv_stream"]

MAGIC = b"GKVSNAP1"
_HEADER = struct.Struct("<8sQ")
_CRC = struct.Struct("<I")
_BLOCK = struct.Struct("<BI")
_PAIR = struct.Struct("<II")
_END = struct.Struct("<QQ")
_KIND_DATA = 1
_KIND_END = 2
_MAX_BLOCK = 1 << 31


def _block(kind: int, payload: bytes | bytearray) -> bytes:
    head = _BLOCK.pack(kind, len(payload))
    crc = crc32c(payload, crc32c(head))
    return head + _CRC.pack(crc) + bytes(payload)


def encode_kv_stream(
    pairs: Iterable[tuple[bytes, bytes]], last_index: int, chunk_size: int = 1 << 20
) -> Iterator[bytes]:
    """Yield the stream for `pairs` (which must come in strictly increasing key order)."""
    head = _HEADER.pack(MAGIC, last_index)
    yield head + _CRC.pack(crc32c(head))
    buf = bytearray()
    count = 0
    total = 0
    prev: bytes | None = None
    pack = _PAIR.pack
    for key, value in pairs:
        if prev is not None and key <= prev:
            raise ValueError(f"snapshot keys out of order: {key!r} after {prev!r}")
        prev = key
        buf += pack(len(key), len(value))
        buf += key
        buf += value
        count += 1
        total += len(key) + len(value)
        if len(buf) >= chunk_size:
            yield _block(_KIND_DATA, buf)
            buf = bytearray()
    if buf:
        yield _block(_KIND_DATA, buf)
    yield _block(_KIND_END, _END.pack(count, total))


class KVStreamDecoder:
    """Read a stream produced by `encode_kv_stream` from chunks of any size.

    `last_index` is available right after construction (it reads the header);
    `pairs()` yields the pairs and raises StorageCorrupted on any damage, including a
    missing end block, only after yielding the pairs of the intact blocks before it.
    """

    def __init__(self, chunks: Iterable[bytes], source: str = "snapshot stream") -> None:
        self.source = source
        self._it = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self.last_index: int | None = None
        head = self._take(_HEADER.size + _CRC.size, "header")
        magic, last_index = _HEADER.unpack_from(head)
        if magic != MAGIC:
            raise StorageCorrupted(source, None, "not a key-value snapshot (bad magic)")
        if crc32c(head[: _HEADER.size]) != _CRC.unpack_from(head, _HEADER.size)[0]:
            raise StorageCorrupted(source, None, "snapshot header checksum mismatch")
        self.last_index = last_index

    def pairs(self) -> Iterator[tuple[bytes, bytes]]:
        count = 0
        total = 0
        prev: bytes | None = None
        while True:
            head = self._take(_BLOCK.size + _CRC.size, "block header")
            kind, length = _BLOCK.unpack_from(head)
            if kind not in (_KIND_DATA, _KIND_END) or length > _MAX_BLOCK:
                self._corrupt(f"bad block header (kind {kind}, length {length})")
            payload = self._take(length, "block")
            if crc32c(payload, crc32c(head[: _BLOCK.size])) != _CRC.unpack_from(head, _BLOCK.size)[0]:
                self._corrupt("block checksum mismatch")
            if kind == _KIND_END:
                if length != _END.size or _END.unpack(payload) != (count, total):
                    self._corrupt(f"end block does not match the stream ({count} pairs, {total} bytes read)")
                if self._more():
                    self._corrupt("data after the end block")
                return
            off = 0
            mv = memoryview(payload)
            while off < length:
                if off + _PAIR.size > length:
                    self._corrupt("pair header split across a block boundary")
                klen, vlen = _PAIR.unpack_from(payload, off)
                off += _PAIR.size
                end = off + klen + vlen
                if end > length:
                    self._corrupt("pair runs past the end of its block")
                key = bytes(mv[off : off + klen])
                value = bytes(mv[off + klen : end])
                off = end
                if prev is not None and key <= prev:
                    self._corrupt(f"keys out of order: {key!r} after {prev!r}")
                prev = key
                count += 1
                total += klen + vlen
                yield key, value

    def _corrupt(self, detail: str) -> None:
        raise StorageCorrupted(self.source, self.last_index, detail)

    def _more(self) -> bool:
        if self._pos < len(self._buf):
            return True
        for chunk in self._it:
            if chunk:
                return True
        return False

    def _take(self, n: int, what: str) -> bytes:
        while len(self._buf) - self._pos < n:
            try:
                chunk = next(self._it)
            except StopIteration:
                raise StorageCorrupted(
                    self.source,
                    self.last_index,
                    f"stream ends inside a {what}; it is truncated",
                ) from None
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += chunk
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return out
