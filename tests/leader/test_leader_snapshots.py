"""LeaderActor snapshots: built a step at a time between messages, then written (and the
log compacted) by a helper process, while the replica keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.leader import LeaderActor, LeaderOptions
from global_kv.raft import Entry, EntryType, Snapshot

NODE = "snap@localhost"
CHUNKS = 12
CHUNK_SECONDS = 0.004  # each chunk costs more than one step's budget (2 ms)


class SlowSnapshots(LeaderActor):
    """Counts applied commands; serializing its state is slow (a chunk costs 4 ms)."""

    async def init(self, options: LeaderOptions, events: list[tuple[str, int]]) -> None:
        self.events = events
        self.applied_commands = 0
        self.saved: list[Snapshot] = []
        await super().init(options)

    async def raft_apply(self, entries: Sequence[Entry]) -> None:
        self.applied_commands += sum(1 for x in entries if x.type == EntryType.NORMAL and x.data)

    def raft_snapshot_chunks(self) -> tuple[int, Iterable[bytes]]:
        index = self.raft.applied_index
        self.events.append(("snapshot-start", index))

        def chunks() -> Iterator[bytes]:
            for i in range(CHUNKS):
                time.sleep(CHUNK_SECONDS)  # a slow serializer: holds the event loop
                self.events.append(("chunk", i))
                yield b"%d:%d;" % (index, i)

        return index, chunks()

    async def raft_save_snapshot(self, snapshot: Snapshot) -> None:
        self.events.append(("saving", snapshot.meta.index))
        await trio.sleep(0.1)  # a slow disk
        self.saved.append(snapshot)
        self.events.append(("saved", snapshot.meta.index))

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        if request == "propose":
            self.propose_commands([b"x"])
            return None
        if request == "leader?":
            return self.is_leader()
        if request == "ping":
            self.events.append(("ping", self.raft.applied_index))
            return None
        if request == "state":
            return (
                self.raft.first_index,
                self.raft.applied_index,
                [s.meta.index for s in self.saved],
                [s.data for s in self.saved],
            )
        raise ValueError(request)


async def test_snapshot_is_built_and_written_while_the_replica_serves_and_covers_its_own_index() -> None:
    events: list[tuple[str, int]] = []
    opts = LeaderOptions(cluster_id="snap", bootstrap=(ProcessID("solo", NODE),), snapshot_interval=20)
    with trio.fail_after(20):
        async with e.start_node(NODE) as node:
            await node.spawn(SlowSnapshots, opts, events, name="solo")
            while not await node.call("solo", "leader?"):
                await trio.sleep(0.01)
            # Propose and ping until the first snapshot is saved (bounded: 2,000 rounds).
            for _ in range(2000):
                await node.call("solo", "propose")
                await node.call("solo", "ping")
                if any(kind == "saved" for kind, _ in events):
                    break
            else:
                raise AssertionError(f"no snapshot was saved: {events[-10:]}")
            first_index, applied, saved_at, saved_data = await node.call("solo", "state")

    start = next(i for i, (kind, _) in enumerate(events) if kind == "snapshot-start")
    end = next(i for i, (kind, _) in enumerate(events) if kind == "chunk" and events[i][1] == CHUNKS - 1)
    index = events[start][1]
    # The replica kept answering calls (and applying entries) while the snapshot was built.
    during = [at for kind, at in events[start:end] if kind == "ping"]
    assert len(during) >= 2, events[start : end + 1]
    assert max(during) > index
    # ... and while it was written to disk.
    saving = next(i for i, (kind, _) in enumerate(events) if kind == "saving")
    saved = next(i for i, (kind, _) in enumerate(events) if kind == "saved")
    assert sum(1 for kind, _ in events[saving:saved] if kind == "ping") >= 2, events[saving : saved + 1]
    # The snapshot covers the index it was started at, not the later applied index, and
    # holds every chunk in order; the log now starts right after it.
    assert saved_at == [index]
    assert saved_data == [b"".join(b"%d:%d;" % (index, i) for i in range(CHUNKS))]
    assert first_index == index + 1
    assert applied > index
