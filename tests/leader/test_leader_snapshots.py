"""LeaderActor snapshots: built a step at a time between messages, then written (and the
log compacted) by a helper process, while the replica keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.leader import LeaderActor, LeaderOptions
from global_kv.raft import Entry, EntryType, Snapshot, SnapshotMeta
from global_kv.state import Applied
from global_kv.storage import SnapshotStore

NODE = "snap@localhost"
CHUNKS = 12
CHUNK_SECONDS = 0.004  # each chunk costs more than one step's budget (2 ms)


class SlowMachine:
    """Counts applied commands; serializing its state is slow (a chunk costs 4 ms)."""

    def __init__(self, events: list[tuple[str, int]]) -> None:
        self.events = events
        self.commands = 0
        self._applied = 0

    @property
    def applied_index(self) -> int:
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> Sequence[Applied]:
        self.commands += sum(1 for x in entries if x.type == EntryType.NORMAL and x.data)
        self._applied = entries[-1].index
        return ()

    def snapshot(self) -> tuple[int, Iterable[bytes]]:
        index = self._applied
        self.events.append(("snapshot-start", index))

        def chunks() -> Iterator[bytes]:
            for i in range(CHUNKS):
                time.sleep(CHUNK_SECONDS)  # a slow serializer: holds the event loop
                self.events.append(("chunk", i))
                yield b"%d:%d;" % (index, i)

        return index, chunks()

    def restore(self, snapshot: Snapshot) -> None:
        self._applied = snapshot.meta.index


class SlowSnapshots(LeaderActor):
    async def init(self, options: LeaderOptions, events: list[tuple[str, int]]) -> None:
        self.events = events
        await self.start_raft(options, SlowMachine(events))

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
            return self.raft.first_index, self.raft.applied_index
        raise ValueError(request)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Snapshot files take 100 ms to write (in the replica's worker thread)."""
    saved: list[tuple[int, bytes]] = []
    save = SnapshotStore.save

    def slow_save(self: SnapshotStore, meta: SnapshotMeta, chunks: Iterable[bytes]) -> Any:
        data = b"".join(chunks)
        time.sleep(0.1)
        saved.append((meta.index, data))
        return save(self, meta, [data])

    monkeypatch.setattr(SnapshotStore, "save", slow_save)
    return saved


async def test_snapshot_is_built_and_written_while_the_replica_serves_and_covers_its_own_index(
    tmp_path: Path, slow_disk: list[tuple[int, bytes]]
) -> None:
    events: list[tuple[str, int]] = []
    opts = LeaderOptions(
        cluster_id="snap", bootstrap=(ProcessID("solo", NODE),), snapshot_interval=20, data_dir=str(tmp_path)
    )
    with trio.fail_after(20):
        async with e.start_node(NODE) as node:
            await node.spawn(SlowSnapshots, opts, events, name="solo")
            while not await node.call("solo", "leader?"):
                await trio.sleep(0.01)
            # Propose and ping until the first snapshot is saved (bounded: 2,000 rounds).
            for _ in range(2000):
                await node.call("solo", "propose")
                await node.call("solo", "ping")
                if slow_disk:
                    break
            else:
                raise AssertionError(f"no snapshot was saved: {events[-10:]}")
            first_index, applied = await node.call("solo", "state")
            saved_at = [index for index, _ in slow_disk]
            saved_data = [data for _, data in slow_disk]

    start = next(i for i, (kind, _) in enumerate(events) if kind == "snapshot-start")
    end = next(i for i, (kind, _) in enumerate(events) if kind == "chunk" and events[i][1] == CHUNKS - 1)
    index = events[start][1]
    # The replica kept answering calls (and applying entries) while the snapshot was built.
    during = [at for kind, at in events[start:end] if kind == "ping"]
    assert len(during) >= 2, events[start : end + 1]
    assert max(during) > index
    # ... and while it was written to disk (the file took 100 ms; pings went on after the
    # last chunk, and the save was seen only after several of them).
    assert sum(1 for kind, _ in events[end:] if kind == "ping") >= 2, events[end:]
    # The snapshot covers the index it was started at, not the later applied index, and
    # holds every chunk in order; the log now starts right after it.
    assert saved_at == [index]
    assert saved_data == [b"".join(b"%d:%d;" % (index, i) for i in range(CHUNKS))]
    assert first_index == index + 1
    assert applied > index
