"""The client side of a watch: a receiver process, and resuming at another member.

`GlobalClient.watch` spawns a `WatchReceiver` on the client's node: the member sends the
watch's batches to it (one-way messages, in order), and it hands them to the iterating
task through a channel. The receiver monitors the member's `global` process; if that
member goes (crash, restart, lost link), the iterator creates the watch again at another
member, starting right after the last revision it delivered, so the stream has no gap and
no duplicate. It acknowledges each batch once the caller has taken it, which is what
lets the member send more (flow control lives in `global_kv.replica._watches`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import trio

import ergo_py

from ..protocol import WatchAck, WatchCanceled, WatchEvents

__all__ = ["MemberGone", "Registered", "Watch", "WatchBatch", "WatchProgress", "WatchReceiver"]


@dataclass(frozen=True, slots=True)
class Registered:
    """The stream's first item: a member has the watch, at its revision `revision`."""

    revision: int


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """With `batched=True`: the events of one or more whole revisions, up to `revision`."""

    revision: int
    events: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class WatchProgress:
    """A progress notification: no event at or below `revision` is still to come."""

    revision: int


@dataclass(frozen=True, slots=True)
class MemberGone:
    """The member serving the watch is gone (told to the iterating task)."""

    member: Any


class Watch:
    """What `GlobalClient.watch` returns: an async iterator of `WatchEvent` (and
    `WatchProgress`), and an async context manager that registers the watch on entry and
    ends it on exit."""

    def __init__(self, stream: AsyncGenerator[Any, None]) -> None:
        self._stream = stream
        self._registered = False
        self.revision = 0  # the first serving member's revision when it registered the watch

    async def _register(self) -> None:
        if not self._registered:
            first = await self._stream.__anext__()
            assert isinstance(first, Registered)
            self._registered = True
            self.revision = first.revision

    async def __aenter__(self) -> Watch:
        await self._register()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Any:
        await self._register()
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass(frozen=True, slots=True)
class _Serve:
    member: ergo_py.ProcessID


@dataclass(frozen=True, slots=True)
class _Ack:
    member: ergo_py.ProcessID
    watch_id: int
    revision: int


class WatchReceiver(ergo_py.Actor):
    """Receives one watch's batches for the task iterating it; ends with its owner."""

    async def init(self, out: trio.MemorySendChannel[Any], owner: ergo_py.PID) -> None:  # type: ignore[override]
        self.out = out
        self.member: ergo_py.ProcessID | None = None
        self.monitor(owner)
        self.owner = owner

    async def handle_message(self, from_: Any, message: Any) -> None:
        if isinstance(message, (WatchEvents, WatchCanceled)):
            self._hand_over(message)  # bounded by the member's window of unacknowledged batches
        elif isinstance(message, _Serve):
            self.member = message.member
            self.monitor(message.member)
        elif isinstance(message, _Ack):
            self.send(message.member, WatchAck(message.watch_id, message.revision))
        elif isinstance(message, ergo_py.MessageDownProcessID):
            self._hand_over(MemberGone(message.process_id))
        elif isinstance(message, ergo_py.MessageDownPID) and message.pid == self.owner:
            self.stop(ergo_py.NORMAL)

    def _hand_over(self, message: Any) -> None:
        try:
            self.out.send_nowait(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.stop(ergo_py.NORMAL)  # the watch was closed: nobody reads any more


def serve(member: ergo_py.ProcessID) -> _Serve:
    return _Serve(member)


def ack(member: ergo_py.ProcessID, watch_id: int, revision: int) -> _Ack:
    return _Ack(member, watch_id, revision)
