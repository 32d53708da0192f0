"""Locks from the client's side: `LockHandle`, and `FencedResource` for the protected side.

A lock is owned by the client's process: if that process dies (or its node is cut
off from the leader), the cluster releases the lock and grants it to the next
waiter. Every grant carries a fencing token, strictly greater than every earlier
grant's; pass it along with the work the lock protects, and let the protected
resource refuse older tokens (`FencedResource`), so a holder that was paused past
its TTL cannot corrupt anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import StaleToken

if TYPE_CHECKING:
    from ._client import GlobalClient

__all__ = ["LockHandle", "FencedResource"]


@dataclass
class LockHandle:
    """A held lock: `key`, fencing `token`, and the client that holds it."""

    key: bytes
    token: int
    ttl: float
    client: "GlobalClient"
    released: bool = False

    async def unlock(self) -> None:
        """Release the lock (only this token can). Raises StaleToken/LockNotHeld if it was lost."""
        if not self.released:
            await self.client.unlock(self.key, self.token)
            self.released = True

    async def refresh(self, ttl: float | None = None) -> None:
        """Extend the TTL (from now) with this token; raises StaleToken/LockNotHeld if it was lost."""
        await self.client.refresh(self.key, self.token, self.ttl if ttl is None else ttl)
        if ttl is not None:
            self.ttl = ttl


class FencedResource:
    """The protected side of fencing: accept an operation only with the highest token seen.

    Use one per protected resource (typically inside the actor that owns it):
    `resource.check(token)` raises `StaleToken` for a token lower than the highest it
    has accepted, and remembers the token otherwise.
    """

    def __init__(self, key: bytes | str = b"") -> None:
        self.key = key.encode() if isinstance(key, str) else key
        self.highest = 0
        self.accepted = 0
        self.rejected = 0

    def check(self, token: int) -> None:
        if token < self.highest:
            self.rejected += 1
            raise StaleToken(self.key, token, self.highest)
        self.highest = token
        self.accepted += 1
