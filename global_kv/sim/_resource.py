"""The protected side of the lock workload: a store that fences writes by token.

`TokenFence` is the rule of `global_kv.client.FencedResource` (refuse a token lower than
the highest accepted, remember it otherwise), restated because the client package
imports the trio runtime, which the simulator must not; any object with that
`check(token)` contract can be plugged in instead (a test runs seeds with the client's
own class). `FencedStore` reports each accepted write to the lock monitor, which judges
it independently of the fence: a fence that forgets to check is caught, not trusted.

This module must never consult the lock table: a resource only sees tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ergo_py.ids import PID

from .._errors import StaleToken

__all__ = ["Fence", "FencedStore", "TokenFence"]


class Fence(Protocol):
    """`check(token)` raises StaleToken for a token it must refuse, else accepts it."""

    def check(self, token: int) -> None: ...


class TokenFence:
    """Accept an operation only with the highest token seen (FencedResource's rule)."""

    __slots__ = ("highest", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.highest = 0

    def check(self, token: int) -> None:
        if token < self.highest:
            raise StaleToken(self.key, token, self.highest)
        self.highest = token


class FencedStore:
    """One protected resource (one per lock key) and what it accepted and refused."""

    __slots__ = ("accepted", "fence", "key", "on_accept", "refused")

    def __init__(
        self,
        key: bytes,
        fence: Fence,
        on_accept: Callable[[bytes, int, PID], None],
    ) -> None:
        self.key = key
        self.fence = fence
        self.on_accept = on_accept
        self.accepted = 0
        self.refused = 0

    def write(self, token: int, writer: PID) -> bool:
        """A write fenced with `token`; False if the fence refused it."""
        try:
            self.fence.check(token)
        except StaleToken:
            self.refused += 1
            return False
        self.accepted += 1
        self.on_accept(self.key, token, writer)
        return True
