"""The stored form of a user value: one header byte, then raw or zlib-compressed bytes.

The proposer encodes (it knows the compression settings); the state machine stores
what the log carries and decodes only where it must compare or return a value, so
replicas never compress (compression is not guaranteed byte-identical across zlib
versions, and the stored bytes must be identical everywhere). CAS compares decoded
values, so the same value compressed or not compares equal.

This module must never guess: an unknown header or a damaged zlib stream raises.
"""

from __future__ import annotations

import zlib

from .._errors import StorageCorrupted

__all__ = ["RAW", "ZLIB", "check_stored_value", "decode_value", "encode_value"]

RAW = 0x00
ZLIB = 0x01
_HEADERS = (RAW, ZLIB)


def encode_value(value: bytes, compress: bool = False, threshold: int = 1024, *, level: int = 6) -> bytes:
    """The stored form of `value`: compressed when asked, at least `threshold` bytes long,
    and only if compression actually makes it smaller (incompressible data stays raw)."""
    if type(value) is not bytes:
        raise TypeError(f"values are bytes, got {type(value).__name__}")
    if type(threshold) is not int or threshold < 0:
        raise ValueError(f"threshold must be a non-negative int, got {threshold!r}")
    if compress and len(value) >= threshold:
        packed = zlib.compress(value, level)
        if len(packed) < len(value):
            return bytes((ZLIB,)) + packed
    return bytes((RAW,)) + value


def decode_value(stored: bytes) -> bytes:
    """The user value in a stored value; StorageCorrupted if it is not a valid stored form."""
    if type(stored) is not bytes or not stored:
        raise StorageCorrupted("state value", None, f"not a non-empty bytes value: {stored!r:.40}")
    header = stored[0]
    if header == RAW:
        return stored[1:]
    if header == ZLIB:
        try:
            return zlib.decompress(stored[1:])
        except zlib.error as exc:
            raise StorageCorrupted("state value", None, f"damaged zlib stream: {exc}") from exc
    raise StorageCorrupted("state value", None, f"unknown value header 0x{header:02x}")


def check_stored_value(value: object, what: str = "value", *, deep: bool = False) -> bytes:
    """`value` if it looks like a stored value (bytes with a known header).

    `deep` also decompresses a zlib body: the proposer does that once, so a damaged
    value is refused before it enters the log; replicas check only the header.
    """
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes in stored form (encode_value), got {type(value).__name__}")
    if not value or value[0] not in _HEADERS:
        raise ValueError(f"{what} is not in stored form (no valid header byte); pass it through encode_value first")
    if deep and value[0] == ZLIB:
        try:
            zlib.decompress(value[1:])
        except zlib.error as exc:
            raise ValueError(f"{what} has a damaged zlib body: {exc}") from exc
    return value
