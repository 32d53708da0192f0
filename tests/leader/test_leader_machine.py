"""A LeaderActor on a state machine object: applied, snapshotted, restored after a restart.

The README's `Counter` example, run: the machine is handed to `start_raft`; the shell
persists, snapshots (every `snapshot_interval` entries) and compacts around it, and on
restart restores the machine from the snapshot file and replays the log after it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.leader import LeaderActor, LeaderOptions
from global_kv.raft import Entry, Snapshot
from global_kv.state import Applied

NODE = "machine@localhost"


class Counter:
    def __init__(self) -> None:
        self.applied_index, self.count, self.restored_from = 0, 0, 0

    def apply(self, entries: Sequence[Entry]) -> Sequence[Applied]:
        self.count += sum(1 for x in entries if x.data == b"+1")  # not the no-ops and conf changes
        self.applied_index = entries[-1].index
        return ()

    def snapshot(self) -> tuple[int, Iterable[bytes]]:
        return self.applied_index, (str(self.count).encode(),)

    def restore(self, snapshot: Snapshot) -> None:
        self.applied_index, self.count = snapshot.meta.index, int(snapshot.data or b"0")
        self.restored_from = snapshot.meta.index


class Counting(LeaderActor):
    async def init(self, options: LeaderOptions) -> None:
        self.counter = Counter()
        await self.start_raft(options, self.counter)

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        if request == "+1":
            return self.propose_commands([b"+1"])
        if request == "leader?":
            return self.is_leader()
        if request == "state":
            c = self.counter
            return c.count, c.applied_index, c.restored_from, self.raft.first_index
        raise ValueError(request)


async def _until_leader(node: e.Node) -> None:
    while not await node.call("solo", "leader?"):
        await trio.sleep(0.01)


async def _until_applied(node: e.Node, index: int) -> tuple[int, int, int, int]:
    for _ in range(500):
        state = await node.call("solo", "state")
        if state[1] >= index:
            return state  # type: ignore[no-any-return]
        await trio.sleep(0.01)
    raise AssertionError(f"index {index} never applied")


async def test_the_machine_is_applied_snapshotted_and_restored_after_a_restart(tmp_path: Path) -> None:
    opts = LeaderOptions(
        cluster_id="count", bootstrap=(ProcessID("solo", NODE),), snapshot_interval=5, data_dir=str(tmp_path)
    )
    with trio.fail_after(30):
        async with e.start_node(NODE) as node:
            await node.spawn(Counting, opts, name="solo")
            await _until_leader(node)
            for _ in range(12):
                last = await node.call("solo", "+1")
            count, applied, restored, compacted = await _until_applied(node, last)
            assert count == 12 and restored == 0 and compacted > 1  # compacted behind a snapshot
        async with e.start_node(NODE) as node:
            await node.spawn(Counting, opts, name="solo")
            await _until_leader(node)
            count, applied, restored, _ = await _until_applied(node, last)
            # Restored from the last snapshot file, then the entries after it replayed: no
            # command applied twice, none lost.
            assert restored >= compacted - 1 > 0 and count == 12
