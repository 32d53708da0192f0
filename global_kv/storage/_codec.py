"""Binary encoding of the Raft records we persist: hard state, snapshot metadata, entries.

A fixed little-endian layout with `struct`, not CBOR or pickle: it is stable across
versions of every library, fast to encode one Ready at a time, and easy to read in a
hex dump. Checksums live in the framing layer (`_framing`); this module only turns
values into bytes and back, and a decode of bytes that passed their checksum but do not
parse raises `ValueError` (the caller names the file and index in a `StorageCorrupted`).

It must never accept trailing garbage or an unknown entry type silently.
"""

from __future__ import annotations

import struct

from ..raft import ConfState, Entry, EntryType, HardState, SnapshotMeta

__all__ = ["Reader", "Writer"]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")
_ENTRY = struct.Struct("<QQBI")  # index, term, type, data length
_NONE_STR = 0xFFFF
_MAX_STR = 0xFFFE


class Writer:
    """Appends encoded values to a bytearray."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> None:
        self.buf += _U8.pack(v)

    def u32(self, v: int) -> None:
        self.buf += _U32.pack(v)

    def u64(self, v: int) -> None:
        self.buf += _U64.pack(v)

    def raw(self, data: bytes) -> None:
        self.buf += data

    def str_or_none(self, s: str | None) -> None:
        if s is None:
            self.buf += _U16.pack(_NONE_STR)
            return
        b = s.encode("utf-8")
        if len(b) > _MAX_STR:
            raise ValueError(f"node id too long to persist ({len(b)} bytes)")
        self.buf += _U16.pack(len(b))
        self.buf += b

    def hard_state(self, hs: HardState) -> None:
        self.buf += _QQ.pack(hs.term, hs.commit)
        self.str_or_none(hs.vote)

    def snapshot_meta(self, m: SnapshotMeta) -> None:
        self.buf += _QQ.pack(m.index, m.term)
        for group in (m.conf.voters, m.conf.learners):
            self.u32(len(group))
            for node in group:
                self.str_or_none(node)

    def entries(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        self.u32(len(entries))
        pack = _ENTRY.pack
        buf = self.buf
        for e in entries:
            data = e.data
            buf += pack(e.index, e.term, int(e.type), len(data))
            buf += data


class Reader:
    """Reads values from bytes; every short read or bad value raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.off = 0

    def _take(self, st: struct.Struct) -> tuple[int, ...]:
        try:
            vals = st.unpack_from(self.data, self.off)
        except struct.error as exc:
            raise ValueError(f"record truncated at byte {self.off}") from exc
        self.off += st.size
        return vals

    def u8(self) -> int:
        return self._take(_U8)[0]

    def u32(self) -> int:
        return self._take(_U32)[0]

    def u64(self) -> int:
        return self._take(_U64)[0]

    def raw(self, n: int) -> bytes:
        end = self.off + n
        if end > len(self.data):
            raise ValueError(f"record truncated at byte {self.off}")
        b = self.data[self.off : end]
        self.off = end
        return b

    def str_or_none(self) -> str | None:
        (n,) = self._take(_U16)
        if n == _NONE_STR:
            return None
        return self.raw(n).decode("utf-8")

    def _node(self) -> str:
        s = self.str_or_none()
        if s is None:
            raise ValueError("missing node id in membership")
        return s

    def hard_state(self) -> HardState:
        term, commit = self._take(_QQ)
        return HardState(term=term, vote=self.str_or_none(), commit=commit)

    def snapshot_meta(self) -> SnapshotMeta:
        index, term = self._take(_QQ)
        voters = tuple(self._node() for _ in range(self.u32()))
        learners = tuple(self._node() for _ in range(self.u32()))
        return SnapshotMeta(index=index, term=term, conf=ConfState(voters=voters, learners=learners))

    def entries(self) -> list[Entry]:
        count = self.u32()
        out: list[Entry] = []
        data = self.data
        unpack = _ENTRY.unpack_from
        size = _ENTRY.size
        for _ in range(count):
            try:
                index, term, etype, n = unpack(data, self.off)
            except struct.error as exc:
                raise ValueError(f"entry header truncated at byte {self.off}") from exc
            start = self.off + size
            end = start + n
            if end > len(data):
                raise ValueError(f"entry {index} data truncated")
            try:
                kind = EntryType(etype)
            except ValueError as exc:
                raise ValueError(f"entry {index} has unknown type {etype}") from exc
            out.append(Entry(index, term, kind, data[start:end]))
            self.off = end
        return out

    def done(self) -> None:
        if self.off != len(self.data):
            raise ValueError(f"{len(self.data) - self.off} unexpected trailing bytes in record")
