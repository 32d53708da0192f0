"""One authenticated link at run time: queue -> frames -> websocket -> frames -> controls.

A `Link` owns three tasks for one websocket after its handshake: the sender
drains the peer's `OutQueue` into frames (every control queued while the previous
frame was being written goes into the next one: coalescing), the receiver decodes
frames and hands controls to the node in order, and the heartbeat pings so a
silent peer (a partition, a frozen host) is noticed even when nothing is sent.
The first of them to end decides the link's end reason.

This module must never raise into the network because a peer misbehaved: a bad
payload is logged and dropped (or answered), a bad frame closes this link only.
It does not decide which links exist; that is `_network`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio
import trio.lowlevel

from ._errors import FramingError
from ._protocol import (
    FRAME_OVERHEAD,
    Control,
    DecodeProblem,
    Reply,
    build_frame,
    decode_frame,
    encode_control,
)
from ._websocket import ConnectionClosed, UpgradeRefused, WebSocket

__all__ = ["IO_ERRORS", "ActiveLink", "LinkStatistics", "OutQueue", "describe_error"]

log = logging.getLogger("ergo_py.net")

# What a network operation may raise because of the peer or the network, never because of a bug.
IO_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ConnectionClosed,
    UpgradeRefused,
)

# flush_now frames at most this many queued bytes in the caller's task.
_FLUSH_NOW_LIMIT = 256 * 1024

# RFC 6455 close codes used by this protocol.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008


def describe_error(exc: BaseException) -> str:
    """A one-line account of a network error and its causes (an SSL failure hides in __cause__)."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionClosed):
            text = f"connection closed ({cur.reason.code} {cur.reason.name}"
            text += f": {cur.reason.reason})" if cur.reason.reason else ")"
        else:
            text = str(cur) or type(cur).__name__
        if text not in parts:
            parts.append(text)
        cur = cur.__cause__ or cur.__context__
    return ": ".join(parts)


class OutQueue:
    """Encoded controls waiting for a link, in the order they were sent."""

    __slots__ = ("items", "nbytes")

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.nbytes = 0

    def push(self, item: bytes) -> None:
        self.items.append(item)
        self.nbytes += len(item)

    def take_frame(self, limit: int) -> tuple[list[bytes], list[bytes]]:
        """The items for the next frame (at most `limit` bytes), and items too large to ever fit."""
        items = self.items
        frame: list[bytes] = []
        too_large: list[bytes] = []
        size = FRAME_OVERHEAD
        while items:
            n = len(items[0])
            if size + n > limit:
                if frame:
                    break
                too_large.append(items.popleft())
                self.nbytes -= n
                continue
            frame.append(items.popleft())
            size += n
            self.nbytes -= n
        return frame, too_large

    def clear(self) -> int:
        """Drop everything; returns how many controls were dropped."""
        n = len(self.items)
        self.items.clear()
        self.nbytes = 0
        return n

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class LinkStatistics:
    """Counters of one network, summed over its links."""

    frames_sent: int = 0
    controls_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    controls_received: int = 0
    bytes_received: int = 0
    controls_dropped: int = 0


class ActiveLink:
    """The running half of an established link (the handshake is already done)."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        local_name: str,
        peer_name: str,
        peer_creation: int,
        queue: OutQueue,
        send_limit: int,
        deliver: Callable[[str, Control], None],
        heartbeat_interval: float,
        heartbeat_timeout: float,
        stats: LinkStatistics,
        remote: str,
    ) -> None:
        self.ws = ws
        self.local_name = local_name
        self.peer_name = peer_name
        self.peer_creation = peer_creation
        self.queue = queue
        self.send_limit = send_limit
        self._deliver = deliver
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._stats = stats
        self.remote = remote
        self.reason: str | None = None
        self._scope = trio.CancelScope()
        self._lot = trio.lowlevel.ParkingLot()
        self._close_code = CLOSE_GOING_AWAY
        self._close_text = ""
        self.done = trio.Event()

    def __repr__(self) -> str:
        return f"<ActiveLink {self.local_name} -> {self.peer_name} ({self.remote})>"

    def wake(self) -> None:
        """Something was queued: let the sender build a frame."""
        if self._lot:
            self._lot.unpark()

    def close(self, reason: str, code: int = CLOSE_GOING_AWAY, text: str | None = None) -> None:
        """End the link now (it stops at its next checkpoint); the first reason given wins.

        `reason` is for this node (on_link_down, logs); `text` is what the peer
        is told in the websocket close frame (default: `reason`).
        """
        if self.reason is None:
            self.reason = reason
            self._close_code = code
            self._close_text = reason if text is None else text
        self._scope.cancel()

    async def run(self, on_end: Callable[[str], None]) -> None:
        """Run until the link ends, then call `on_end(reason)` before saying goodbye to the peer.

        Only bugs (and Cancelled from outside) escape.
        """
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, self._sender)
                    nursery.start_soon(self._guard, self._receiver)
                    if self._heartbeat_interval > 0:
                        nursery.start_soon(self._guard, self._heartbeat)
            if self.reason is None:
                self.reason = "link closed"
            # The node hears of it now, not after the goodbye below (a dead peer would delay it).
            on_end(self.reason)
        finally:
            # Tell the peer why, briefly; a dead peer must not hold us up.
            with trio.move_on_after(1.0) as cleanup:
                cleanup.shield = True
                try:
                    await self.ws.aclose(self._close_code, self._close_text[:120])
                except IO_ERRORS:
                    pass
            self.done.set()

    async def _guard(self, task: Callable[[], object]) -> None:
        try:
            await task()  # type: ignore[misc]
        except IO_ERRORS as exc:
            self.close(self._lost_reason(exc))

    def _lost_reason(self, exc: BaseException) -> str:
        if isinstance(exc, ConnectionClosed):
            code, text = exc.reason.code, exc.reason.reason
            if code == 1009:
                return f"link closed: a frame exceeded max_message_size ({text or 'message too big'})"
            if not exc.by_peer:
                return f"protocol error from the peer: {text}"
            if code == 1006:
                return "connection lost"
            return f"closed by the peer ({code} {exc.reason.name}{': ' + text if text else ''})"
        return f"connection lost: {describe_error(exc)}"

    async def _sender(self) -> None:
        queue, ws = self.queue, self.ws
        while True:
            if not queue.items:
                if ws.has_tail:
                    await ws.flush()  # what flush_now could not write at once
                    continue
                await self._lot.park()
                continue
            # One pass of the scheduler lets every runnable task add to this frame.
            await trio.lowlevel.checkpoint()
            frame = self._next_frame()
            if frame is not None:
                await ws.send_message(frame)

    def _next_frame(self) -> bytes | None:
        items, too_large = self.queue.take_frame(self.send_limit)
        stats = self._stats
        for item in too_large:
            stats.controls_dropped += 1
            log.error(
                "dropped a %d-byte control to %s: over the peer's max_message_size (%d)",
                len(item),
                self.peer_name,
                self.send_limit,
            )
        if not items:
            return None
        frame = build_frame(items)
        stats.frames_sent += 1
        stats.controls_sent += len(items)
        stats.bytes_sent += len(frame)
        return frame

    def flush_now(self) -> bool:
        """Write the queued controls from synchronous code, without the sender task, if the
        websocket can (`can_send_nowait`); True if nothing is left for the sender. What the
        socket did not take at once is the sender's to finish."""
        queue, ws = self.queue, self.ws
        if not queue.items:
            return not ws.has_tail
        if self.reason is not None or not ws.can_send_nowait():
            return False
        if queue.nbytes > _FLUSH_NOW_LIMIT:
            self.wake()  # framing (and masking) that much is the sender's, which yields meanwhile
            return False
        while queue.items and ws.can_send_nowait():
            frame = self._next_frame()
            if frame is not None:
                ws.send_nowait(frame)
        if queue.items or ws.has_tail:
            self.wake()
            return False
        return True

    async def _receiver(self) -> None:
        ws, stats = self.ws, self._stats
        peer, local, deliver = self.peer_name, self.local_name, self._deliver
        while True:
            data = await ws.get_message()
            stats.frames_received += 1
            stats.bytes_received += len(data)
            if type(data) is not bytes:
                self._protocol_error("a text message where a binary frame was expected")
                return
            try:
                results = decode_frame(data, sender_node=peer, receiver_node=local)
            except FramingError as exc:
                self._protocol_error(str(exc))
                return
            stats.controls_received += len(results)
            for result in results:
                if self.reason is not None:
                    return  # closed meanwhile (for example by a handler): deliver nothing more
                if type(result) is DecodeProblem:
                    self._problem(result)
                else:
                    deliver(peer, result)  # type: ignore[arg-type]

    def _problem(self, problem: DecodeProblem) -> None:
        self._stats.controls_dropped += 1
        error = problem.error
        type_part = f"type {error.type_name!r}" if error.type_name else "payload"
        log.error(
            "dropped a %s from %s (%s): %s %s",
            problem.kind,
            self.peer_name,
            self.remote,
            type_part,
            error.detail,
        )
        if problem.deliver is not None:
            self._deliver(self.peer_name, problem.deliver)
        if problem.answer is not None:
            self._answer(problem.answer)

    def _answer(self, reply: Reply) -> None:
        try:
            item = encode_control(reply)
        except Exception as exc:  # an error reply is built from our own registered types
            raise AssertionError(f"cannot encode our own error reply: {exc}") from exc
        self.queue.push(item)
        self.wake()

    def _protocol_error(self, detail: str) -> None:
        log.error("closing the link to %s (%s): %s", self.peer_name, self.remote, detail)
        self.close(f"protocol error from the peer: {detail}", CLOSE_PROTOCOL_ERROR, detail)

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self._heartbeat_interval)
            with trio.move_on_after(self._heartbeat_timeout) as scope:
                await self.ws.ping()
            if scope.cancelled_caught:
                log.warning(
                    "no heartbeat answer from %s (%s) within %s s; closing the link",
                    self.peer_name,
                    self.remote,
                    self._heartbeat_timeout,
                )
                self.close(f"heartbeat timeout ({self._heartbeat_timeout} s)")
                return
