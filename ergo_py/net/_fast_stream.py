"""A TCP stream for links that does not yield to the scheduler after every call that did not block.

trio's `SocketStream` makes every `send_all` and `receive_some` a full checkpoint: a
call that succeeds at once still ends with a pass through the scheduler (and so an
epoll call), and a receive that had to wait takes two. That is the right default for
code that might loop without yielding. A link's tasks already yield where it matters
(the sender once per frame, to coalesce), so this stream calls the socket directly and
waits only when the kernel says it would block; a receiver fed without pause still
yields every `_YIELD_EVERY` reads, so a flooding peer cannot starve the node.

Only for plain TCP: over TLS the `SSLStream` is used as it is.
"""

from __future__ import annotations

import os

import trio
import trio.lowlevel

__all__ = ["FastSocketStream"]

_YIELD_EVERY = 16


class FastSocketStream:
    """`send_all`, `receive_some` and `aclose` of a connected `trio.SocketStream`, leaner."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.transport = stream
        self.socket = stream.socket
        self._reads = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of `data`; callers serialise their sends (the websocket's lock)."""
        sock = self.socket
        view = memoryview(data)
        while view:
            fd = sock.fileno()  # checked before every call: a closed socket's number may be reused
            if fd < 0:
                raise trio.ClosedResourceError("the stream is closed")
            try:
                sent = os.write(fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"cannot send: {exc}") from exc
            view = view[sent:]

    def write_nowait(self, data: bytes | memoryview) -> int:
        """Write what the socket takes now, without waiting: the number of bytes written (0 if
        it would block or the socket is broken; the next `send_all` then says why)."""
        fd = self.socket.fileno()
        if fd < 0:
            return 0
        try:
            return os.write(fd, data)
        except OSError:  # BlockingIOError included
            return 0

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """What the socket has (up to `max_bytes`), waiting only if it has nothing; b"" at EOF."""
        sock = self.socket
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the stream is closed")
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                self._reads = 0
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"cannot receive: {exc}") from exc
            self._reads += 1
            if self._reads >= _YIELD_EVERY:
                self._reads = 0
                # Shielded: a cancellation here would lose the bytes just read.
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def aclose(self) -> None:
        await self.transport.aclose()
