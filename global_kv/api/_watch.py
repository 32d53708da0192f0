"""etcd's Watch service: one bidirectional stream carries many watches.

Each created watch is a `GlobalClient.watch` (batched: a revision's events travel in one
WatchResponse, as etcd sends them) run in its own task; so a watch served here resumes
at another member, from the revision after the last it delivered, if this node's
replica restarts. Watch ids are the client's (`watch_id`) or the next free one from 0,
per stream, as etcd numbers them. Every response of the stream goes through one lock:
a message is never interleaved with another on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from google.protobuf.message import Message

from .._errors import Compacted, GlobalKVError
from ..client import GlobalClient, WatchBatch, WatchProgress
from ._convert import Headers, event_to_pb
from ._errors import COMPACTED, as_grpc_error
from ._grpc import Call, GrpcError
from ._pb import rpc_pb2

__all__ = ["WatchService"]

_FILTERS = {rpc_pb2.WatchCreateRequest.NOPUT: "noput", rpc_pb2.WatchCreateRequest.NODELETE: "nodelete"}
DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


@dataclass
class _Served:
    """One watch of a stream: its task's scope, and the revision up to which it delivered
    everything (0: not created yet)."""

    scope: trio.CancelScope
    revision: int = 0


class WatchService:
    def __init__(
        self, client: GlobalClient, headers: Headers, now: Callable[[], Awaitable[Any]], max_bytes: int
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes  # a fragmented watch's responses stay under this
        self.headers = headers
        self._now = now  # a header of this member's revision now

    async def watch(
        self,
        requests: AsyncIterator[rpc_pb2.WatchRequest],
        send: Callable[[Message], Awaitable[None]],
        call: Call,
    ) -> None:
        lock = trio.Lock()

        async def reply(message: rpc_pb2.WatchResponse) -> None:
            # Whole messages only: a watch canceled while it sends finishes that message first
            # (a half-written one would reset the stream, and every watch on it).
            with trio.CancelScope(shield=True):
                async with lock:
                    await send(message)

        watches: dict[int, _Served] = {}
        next_id = 0
        async with trio.open_nursery() as nursery:
            async for request in requests:
                which = request.WhichOneof("request_union")
                if which == "create_request":
                    create = request.create_request
                    watch_id = create.watch_id
                    if watch_id == 0:  # etcd's AutoWatchID: the next free id
                        while next_id in watches:
                            next_id += 1
                        watch_id = next_id
                        next_id += 1
                    if watch_id in watches:
                        await reply(self._refused(DUPLICATE_ID))
                        continue
                    served = _Served(trio.CancelScope())
                    watches[watch_id] = served
                    nursery.start_soon(self._serve_one, watch_id, create, served, reply, watches)
                elif which == "cancel_request":
                    watch_id = request.cancel_request.watch_id
                    ending = watches.pop(watch_id, None)
                    if ending is not None:
                        ending.scope.cancel()
                        await reply(
                            rpc_pb2.WatchResponse(header=await self._header(), watch_id=watch_id, canceled=True)
                        )
                elif which == "progress_request":
                    # A promise for the whole stream: no event at or below it is still to come on
                    # any of its watches (etcd >= 3.5.8), so the lowest revision they delivered to.
                    if watches and all(w.revision for w in watches.values()):
                        header = self.headers.at(min(w.revision for w in watches.values()))
                    elif watches:
                        continue  # a watch not created yet: etcd, too, answers only once all are in sync
                    else:
                        header = await self._header()
                    await reply(rpc_pb2.WatchResponse(header=header, watch_id=-1))
            await trio.sleep_forever()  # the client stopped sending: its watches go on until it hangs up

    def _responses(
        self, header: rpc_pb2.ResponseHeader, watch_id: int, events: list[Any], fragment: bool
    ) -> list[rpc_pb2.WatchResponse]:
        """One response for the events; with `fragment`, as many as keep each under the
        request size limit, all but the last marked `fragment` (clientv3 joins them)."""
        if not fragment or sum(e.ByteSize() for e in events) <= self.max_bytes:
            return [rpc_pb2.WatchResponse(header=header, watch_id=watch_id, events=events)]
        out: list[rpc_pb2.WatchResponse] = []
        part: list[Any] = []
        size = 0
        for event in events:
            if part and size + event.ByteSize() > self.max_bytes:
                out.append(rpc_pb2.WatchResponse(header=header, watch_id=watch_id, events=part, fragment=True))
                part, size = [], 0
            part.append(event)
            size += event.ByteSize()
        out.append(rpc_pb2.WatchResponse(header=header, watch_id=watch_id, events=part))
        return out

    async def _header(self) -> rpc_pb2.ResponseHeader:
        """This member's revision now, or a bare header if it cannot say (its replica is
        restarting): an answer on the stream must not end the stream's other watches."""
        try:
            return await self._now()  # type: ignore[no-any-return]
        except GrpcError:
            return self.headers.at(0)

    def _refused(self, reason: str) -> rpc_pb2.WatchResponse:
        """A create refused before any watch exists (a duplicate id): etcd's InvalidWatchID."""
        return rpc_pb2.WatchResponse(
            header=self.headers.at(0), watch_id=-1, created=True, canceled=True, cancel_reason=reason
        )

    async def _serve_one(
        self,
        watch_id: int,
        create: rpc_pb2.WatchCreateRequest,
        served: _Served,
        reply: Callable[[rpc_pb2.WatchResponse], Awaitable[None]],
        watches: dict[int, _Served],
    ) -> None:
        created = False

        async def cancel(**fields: Any) -> None:
            """As etcd: a watch is created (once), then canceled, with why."""
            header = await self._header()
            if not created:
                await reply(rpc_pb2.WatchResponse(header=header, watch_id=watch_id, created=True))
            await reply(rpc_pb2.WatchResponse(header=header, watch_id=watch_id, canceled=True, **fields))

        with served.scope:
            try:
                watch = self.client.watch(
                    create.key or b"\x00",  # etcd reads an empty key as \x00 (with range_end \x00: all)
                    create.range_end,
                    start_revision=create.start_revision,
                    prev_kv=create.prev_kv,
                    filters=[_FILTERS[f] for f in create.filters if f in _FILTERS],
                    progress_notify=create.progress_notify,
                    batched=True,
                )
                async with watch:
                    await reply(
                        rpc_pb2.WatchResponse(header=self.headers.at(watch.revision), watch_id=watch_id, created=True)
                    )
                    created = True
                    start = create.start_revision
                    served.revision = start - 1 if start else watch.revision
                    async for item in watch:
                        if isinstance(item, WatchBatch):
                            events = [event_to_pb(e, create.prev_kv) for e in item.events]
                            header = self.headers.at(item.revision)
                            for response in self._responses(header, watch_id, events, create.fragment):
                                await reply(response)
                        elif isinstance(item, WatchProgress):
                            await reply(rpc_pb2.WatchResponse(header=self.headers.at(item.revision), watch_id=watch_id))
            except Compacted as exc:
                await cancel(compact_revision=exc.compact_revision, cancel_reason=COMPACTED)
            except GlobalKVError as exc:
                await cancel(cancel_reason=as_grpc_error(exc).message)
            finally:
                if watches.get(watch_id) is served:
                    del watches[watch_id]
