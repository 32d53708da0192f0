"""Watches served by any member from its applied state, in revision order, with no gap.

A watch is a range, a position (the last revision it was sent) and a watcher process.
After every apply, and whenever a watcher acknowledges, the member reads the history it
has not sent yet (`StateMachine.events`, whole revisions: a transaction's events arrive
together) and sends it as `WatchEvents` messages. Live events and catching up from an
old revision are the same path, so they cannot disagree.

Flow control keeps every watch bounded: at most `WINDOW` batches go unacknowledged;
a watcher that falls behind is simply not sent more until it acknowledges, and then
catches up from the history (nothing is buffered for it here, nothing is skipped). If
the history it needs is compacted meanwhile, the watch is cancelled with the reason
("compacted") and the compacted revision, as etcd does. A watch with progress notify gets
an empty batch (its revision: nothing at or below it is still to come) when it has been
idle and caught up for `progress_interval`.

The driver delivers `Notify` effects as one-way messages and monitors watchers
(`WatchWatcher` / `UnwatchWatcher`), reporting a dead one with `watcher_down`. Messages
from one process to another arrive in order, so a watcher sees its batches in order.
Pure: no clock (every method is given `now`), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import Compacted
from ..protocol import (
    ResponseHeader,
    WatchCanceled,
    WatchCancelRequest,
    WatchCreateRequest,
    WatchCreateResponse,
    WatchEvents,
)
from ..state import WatchEvent, covers
from ._effects import Notify, UnwatchWatcher, WatchWatcher

if TYPE_CHECKING:
    from ._global_replica import GlobalReplica

__all__ = ["WatchService"]

WINDOW = 4  # batches a watcher may leave unacknowledged
BATCH_EVENTS = 1000
BATCH_BYTES = 1 << 20


@dataclass(slots=True)
class _Watch:
    id: int
    watcher: Any
    key: bytes
    range_end: bytes
    sent: int  # every event at or below this revision was sent (or filtered out)
    prev_kv: bool
    no_put: bool
    no_delete: bool
    progress: bool
    unacked: int = 0
    last_sent: float = 0.0


class WatchService:
    def __init__(self, replica: GlobalReplica, progress_interval: float) -> None:
        self.replica = replica
        self.progress_interval = progress_interval
        self.watches: dict[int, _Watch] = {}
        self._of: dict[Any, set[int]] = {}  # watcher -> its watch ids
        self._next_id = 1
        self.events_sent = 0

    def create(self, caller: Any, ref: Any, request: WatchCreateRequest, now: float) -> None:
        sm = self.replica.sm
        current = sm.revision
        start = request.start_revision
        if start and start - 1 < sm.compact_revision:
            raise Compacted(sm.compact_revision)
        # A start past this member's revision (a lagging member, a resumed watch) waits for it.
        watch = _Watch(
            self._next_id,
            request.watcher,
            request.key,
            request.range_end,
            (start - 1) if start else current,
            request.prev_kv,
            "noput" in request.filters,
            "nodelete" in request.filters,
            request.progress_notify,
            last_sent=now,
        )
        self._next_id += 1
        self.watches[watch.id] = watch
        ids = self._of.setdefault(watch.watcher, set())
        if not ids:
            self.replica.effects.append(WatchWatcher(watch.watcher))
        ids.add(watch.id)
        self.replica.reply(
            caller, ref, WatchCreateResponse(ResponseHeader(current, self.replica.term, self.replica.id), watch.id)
        )
        self.pump(now)

    def cancel(self, request: WatchCancelRequest) -> bool:
        watch = self.watches.get(request.watch_id)
        if watch is None or watch.watcher != request.watcher:
            return False
        self._drop(watch)
        return True

    def ack(self, watcher: Any, watch_id: int, revision: int, now: float) -> None:
        watch = self.watches.get(watch_id)
        if watch is None or watch.watcher != watcher:
            return
        watch.unacked = max(0, watch.unacked - 1)
        self.pump(now)

    def watcher_down(self, watcher: Any) -> None:
        for watch_id in list(self._of.get(watcher, ())):
            self._drop(self.watches[watch_id], monitored=False)

    def pump(self, now: float) -> None:
        """Send every watch what it has not had, as far as its window allows."""
        sm = self.replica.sm
        current = sm.revision
        while self.watches:
            # Watches at the same position share one read of the history.
            by_position: dict[int, list[_Watch]] = {}
            for watch in self.watches.values():
                if watch.sent < current and watch.unacked < WINDOW:
                    by_position.setdefault(watch.sent, []).append(watch)
            if not by_position:
                return
            for after, group in sorted(by_position.items()):
                try:
                    events, covered = sm.events(after, max_events=BATCH_EVENTS, max_bytes=BATCH_BYTES)
                except Compacted as exc:
                    for watch in group:
                        self._notify(watch, WatchCanceled(watch.id, "compacted", exc.compact_revision))
                        self._drop(watch)
                    continue
                for watch in group:
                    mine = [self._event(watch, e) for e in events if self._wants(watch, e)]
                    watch.sent = covered
                    if mine:
                        watch.unacked += 1
                        watch.last_sent = now
                        self.events_sent += len(mine)
                        self._notify(watch, WatchEvents(watch.id, covered, tuple(mine), self.replica.id))

    def check(self, now: float) -> None:
        """Progress notifications for idle, caught-up watches that asked for them."""
        current = self.replica.sm.revision
        for watch in self.watches.values():
            if (
                watch.progress
                and watch.sent >= current
                and watch.unacked < WINDOW
                and now - watch.last_sent >= self.progress_interval
            ):
                watch.unacked += 1
                watch.last_sent = now
                self._notify(watch, WatchEvents(watch.id, current, (), self.replica.id))

    def count(self) -> int:
        return len(self.watches)

    def _wants(self, watch: _Watch, event: WatchEvent) -> bool:
        if watch.no_put and event.type == "put" or watch.no_delete and event.type == "delete":
            return False
        return covers(watch.key, watch.range_end, event.kv.key)

    def _event(self, watch: _Watch, event: WatchEvent) -> WatchEvent:
        if not watch.prev_kv:
            return event
        return WatchEvent(event.type, event.kv, self.replica.sm.previous(event.kv))

    def _notify(self, watch: _Watch, message: Any) -> None:
        self.replica.effects.append(Notify(watch.watcher, message))

    def _drop(self, watch: _Watch, monitored: bool = True) -> None:
        del self.watches[watch.id]
        ids = self._of.get(watch.watcher)
        if ids is not None:
            ids.discard(watch.id)
            if not ids:
                del self._of[watch.watcher]
                if monitored:
                    self.replica.effects.append(UnwatchWatcher(watch.watcher))
