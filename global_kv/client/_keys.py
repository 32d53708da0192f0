"""How a client names keys: `str` (encoded as UTF-8) or `bytes`, for the client and `ops`."""

from __future__ import annotations

__all__ = ["Key", "as_key"]

Key = str | bytes


def as_key(key: Key) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return key
    raise TypeError(f"keys are str or bytes, got {type(key).__name__}")
