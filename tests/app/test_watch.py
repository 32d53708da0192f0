"""Watches on a 3-node cluster: every change after a revision exactly once, in order, a
transaction's events together, served by any member, resumed at another member after the
one serving it stops, refused below the compacted revision, and a slow reader that loses
nothing."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from global_kv import Compacted
from global_kv.client import WatchProgress, open_client, ops

from .test_global_cluster import NAMES, cluster, leader_of


async def _take(events: Any, n: int, within: float = 10.0) -> list[Any]:
    out: list[Any] = []
    with trio.fail_after(within):
        async for event in events:
            out.append(event)
            if len(out) == n:
                break
    return out


async def test_a_watch_from_a_past_revision_sees_every_change_once_in_order_then_the_live_ones() -> None:
    with trio.fail_after(40):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as writer:
                first = await writer.put_kv("cfg/a", b"1")
                await writer.put_kv("cfg/b", b"2")
                await writer.put_kv("other", b"x")  # not in the range
                await writer.delete_range("cfg/a")
                await writer.txn(success=[ops.put("cfg/c", b"3"), ops.put("cfg/d", b"4")])
                leader = await leader_of(writer)
                follower = next(n for n in NAMES if n != leader)
                async with open_client(nodes[follower], [follower]) as reader:  # served by a follower
                    start = first.header.revision
                    async with reader.watch("cfg/", prefix=True, start_revision=start, prev_kv=True) as events:
                        past = await _take(events, 5)
                        assert [(e.type, e.kv.key, e.kv.mod_revision) for e in past] == [
                            ("put", b"cfg/a", start),
                            ("put", b"cfg/b", start + 1),
                            ("delete", b"cfg/a", start + 3),
                            ("put", b"cfg/c", start + 4),
                            ("put", b"cfg/d", start + 4),  # one transaction: one revision
                        ]
                        assert past[2].prev_kv is not None and past[2].prev_kv.value == b"1"
                        live = await writer.put_kv("cfg/e", b"5")
                        (event,) = await _take(events, 1)
                        assert (event.kv.key, event.kv.value, event.kv.mod_revision) == (
                            b"cfg/e",
                            b"5",
                            live.header.revision,
                        )


async def test_a_watch_resumes_at_another_member_without_a_gap_or_a_duplicate() -> None:
    with trio.fail_after(60):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as writer:
                leader = await leader_of(writer)
            serving = next(n for n in NAMES if n != leader)
            others = [n for n in NAMES if n != serving]
            order = [serving, *others]
            async with open_client(nodes[NAMES[0]], others, timeout=10) as writer:
                async with open_client(nodes[leader], order, timeout=10) as reader:
                    async with reader.watch("job/", prefix=True) as events:
                        got: list[int] = []

                        async def write(n: int, start: int) -> None:
                            for i in range(start, start + n):
                                await writer.put(f"job/{i}", b"%d" % i)

                        await write(10, 0)
                        got += [int(e.kv.key[4:]) for e in await _take(events, 10)]
                        await nodes[serving].application_stop("global")  # the member it watched
                        await write(10, 10)
                        got += [int(e.kv.key[4:]) for e in await _take(events, 10, within=20)]
                        assert got == list(range(20))


async def test_a_watch_below_the_compacted_revision_fails_and_progress_is_notified() -> None:
    with trio.fail_after(30):
        async with cluster(watch_progress_interval=200, lock_check_interval=50) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as client:
                first = await client.put_kv("k", b"1")
                last = await client.put_kv("k", b"2")
                await client.compact(last.header.revision)
                with pytest.raises(Compacted) as info:
                    await _take(client.watch("k", start_revision=first.header.revision), 1)
                assert info.value.compact_revision == last.header.revision
                async with client.watch("quiet", progress_notify=True) as events:
                    (progress,) = await _take(events, 1, within=5)
                    assert type(progress) is WatchProgress and progress.revision >= last.header.revision


async def test_a_slow_reader_gets_every_event_in_order() -> None:
    with trio.fail_after(60):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as writer:
                async with open_client(nodes[NAMES[1]], NAMES, timeout=10) as reader:
                    async with reader.watch("n/", prefix=True) as events:
                        async with trio.open_nursery() as nursery:

                            async def flood() -> None:
                                batch = [ops.put(f"n/{i:05d}", b"x" * 100) for i in range(50)]
                                for start in range(0, 3000, 50):
                                    await writer.txn(
                                        success=[ops.put(f"n/{start + j:05d}", b"x" * 100) for j in range(50)]
                                    )
                                del batch

                            nursery.start_soon(flood)
                            seen: list[int] = []
                            with trio.fail_after(50):
                                async for event in events:
                                    seen.append(int(event.kv.key[2:]))
                                    if len(seen) % 500 == 0:
                                        await trio.sleep(0.5)  # slower than the writer
                                    if len(seen) == 3000:
                                        break
                        assert seen == list(range(3000))
