"""Compaction and InstallSnapshot (Raft §7), chunked; restarts from a snapshot."""

from __future__ import annotations

import pytest
from raft_harness import Cluster, config, elect

from global_kv._errors import CompactionRejected
from global_kv.raft import (
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    Role,
    Snapshot,
)

IDS = ["a", "b", "c"]


def _lagging_c(chunk: int = 10, entries: int = 6) -> tuple[Cluster, bytes]:
    """c misses `entries` writes while a compacts them away behind a snapshot."""
    c = elect(IDS, "a", config(snapshot_chunk_size=chunk))
    c.isolate("c")
    for n in range(entries):
        c.propose("a", b"w%d" % n)
    a = c.nodes["a"]
    data = b"state machine at %d|" % a.applied_index + b"z" * 25
    meta = a.compact(a.applied_index, data)
    assert meta.conf.voters == ("a", "b", "c") and a.first_index == meta.index + 1
    return c, data


def test_compaction_is_checked() -> None:
    c = elect(IDS, "a")
    a = c.nodes["a"]
    with pytest.raises(CompactionRejected, match="only 2 is applied"):
        a.compact(3, b"")
    a.compact(2, b"s")
    with pytest.raises(CompactionRejected, match="already compacted up to 2"):
        a.compact(2, b"s")


def test_a_follower_behind_the_log_gets_the_snapshot_in_chunks() -> None:
    c, data = _lagging_c(chunk=10)
    c.heal()
    c.sent.clear()
    c.tick(n=4)
    chunks = [m for m in c.sent if isinstance(m, InstallSnapshot)]
    assert [m.offset for m in chunks] == list(range(0, len(data), 10))
    assert chunks[-1].done and not any(m.done for m in chunks[:-1])
    (snap,) = c.snapshots["c"]
    assert snap.data == data and snap.meta.index == c.nodes["a"].snapshot_meta.index
    assert c.stores["c"].snapshot == snap and c.stores["c"].entries == []
    c.propose("a", b"after")
    assert c.data_applied("c") == [b"after"]
    assert c.nodes["c"].applied_index == c.nodes["a"].applied_index


def test_lost_and_duplicated_chunks_are_recovered() -> None:
    c, data = _lagging_c(chunk=8)
    c.heal()
    seen: dict[int, int] = {}

    def flaky(m: Message) -> bool:
        if isinstance(m, InstallSnapshot):
            seen[m.offset] = seen.get(m.offset, 0) + 1
            if m.offset == 16 and seen[m.offset] == 1:
                return False  # the first copy of the third chunk is lost
            if m.offset == 8 and seen[8] == 1:
                c.queue.append(m)  # and the second one arrives twice
        return True

    c.filter = flaky
    c.tick(n=12)
    assert c.snapshots["c"] and c.snapshots["c"][0].data == data
    assert seen[16] >= 2
    replies = [m for m in c.sent if isinstance(m, InstallSnapshotResponse)]
    assert any(m.offset == 16 for m in replies)  # "I have 16 bytes" after the duplicate


def test_a_new_compaction_during_a_transfer_restarts_it() -> None:
    c, _ = _lagging_c(chunk=4)
    c.heal()
    c.filter = lambda m: not (isinstance(m, InstallSnapshot) and m.offset >= 12)
    c.tick(n=3)
    c.isolate("c")
    c.propose("a", b"more")
    a = c.nodes["a"]
    newer = b"newer state|" + b"q" * 20
    a.compact(a.applied_index, newer)
    c.heal()
    c.filter = None
    c.tick(n=12)
    assert [s.data for s in c.snapshots["c"]] == [newer]


def test_a_snapshot_of_entries_the_follower_already_has_only_commits() -> None:
    c = Cluster.from_logs({"a": (2, [2, 2]), "b": (2, [2, 2, 2]), "c": (2, [])})
    b = c.nodes["b"]
    assert b.commit_index == 1
    b.step(InstallSnapshot(2, "a", "b", 3, 2, ("a", "b", "c"), (), 0, b"state at 3", True))
    rd = b.ready()
    assert rd.snapshot is None  # Log Matching: b holds (3, 2), so everything before it
    assert b.commit_index == 3 and b.last_index == 4  # its entry 4 survives
    assert [e.index for e in rd.committed_entries] == [
        1,
        2,
        3,
    ]  # restarted: applies from 0
    (ack,) = rd.persisted_messages
    assert isinstance(ack, AppendEntriesResponse) and ack.index == 3


def test_restart_from_a_snapshot_and_the_entries_after_it() -> None:
    c = elect(IDS, "a")
    for n in range(4):
        c.propose("a", b"%d" % n)
    b = c.nodes["b"]
    b.compact(4, b"snapshot of b at 4")
    c.stores["b"].snapshot = Snapshot(b.snapshot_meta, b"snapshot of b at 4")
    del c.stores["b"].entries[:4]
    before = (b.term, b.commit_index, b.last_index, b.conf)
    c.crash("b")
    b2 = c.restart("b")
    assert (b2.term, b2.commit_index, b2.last_index, b2.conf) == before
    assert b2.applied_index == 4 and b2.role is Role.FOLLOWER
    rd = b2.ready()
    assert [e.index for e in rd.committed_entries] == [
        5,
        6,
    ]  # re-delivered after the snapshot
