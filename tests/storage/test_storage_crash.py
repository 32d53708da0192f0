"""Crash safety: SIGKILL a writer process at random points, reopen, check what survived.

For the Raft log (with snapshots and compaction) and the durable engines, the state that
reopens must be exactly the last state the writer acknowledged, or the next one (the
operation in flight when it died): every acknowledged write is there, nothing is half
applied. Kills come from two sources: the test's SIGKILL after a random number of acks
plus a random delay, and a hook inside the writer that dies at the N-th call into the
storage file layer (after a partial pwrite, before an fsync, before a directory fsync).

Rounds per test default to a CI-sized handful; set GKV_STORAGE_CRASH_ROUNDS=50 (say) for
a long run.
"""

from __future__ import annotations

import os
import random

import pytest

from global_kv.storage import RaftLogStore, SnapshotStore, open_engine
from tests.storage import storage_crash_lib as lib

ROUNDS = int(os.environ.get("GKV_STORAGE_CRASH_ROUNDS", "0"))


def rounds(default: int) -> int:
    return ROUNDS or default


def check_log_round(root, seed: int, kill_rng: random.Random, kill_after: int | None, hook: int | None) -> None:
    with RaftLogStore(root / "log", segment_bytes=16 << 10) as log:
        states = [lib.log_model_of(log.load())]
    ops = 40
    run = lib.run_writer(
        ["log", str(root), str(seed), str(ops)] + ([str(hook)] if hook is not None else []),
        kill_rng,
        kill_after,
    )
    op_rng = random.Random(seed)  # the writer's operations, replayed here
    for _ in range(min(run.acks + 1, ops)):
        states.append(lib.apply_log_op(lib.next_log_op(op_rng, states[-1]), states[-1]))
    with RaftLogStore(root / "log", segment_bytes=16 << 10) as log:
        got = lib.log_model_of(log.load())  # also checks every entry's bytes
        assert got.key() in {s.key() for s in states[run.acks : run.acks + 2]}, (
            f"seed {seed} hook {hook}: reopened state is neither the acknowledged one "
            f"(after {run.acks} ops) nor the next"
        )
        log_snap = log.snapshot_meta()
    with SnapshotStore(root / "snaps") as store:
        assert not [p for p in (root / "snaps").iterdir() if p.name.startswith(".tmp-")]
        assert len(store.list_snapshots()) <= 1
        latest = store.latest()
        if log_snap.index:
            assert latest is not None and latest.index >= log_snap.index, "log compacted past its snapshot"
        if latest is not None:
            with store.open_latest() as reader:
                assert list(reader.chunks()) == lib.snapshot_chunks(latest.index)
    if run.finished:
        assert run.acks == ops


def test_raft_log_survives_kills_at_random_times(tmp_path):
    rng = random.Random(1)
    for r in range(rounds(4)):
        check_log_round(
            tmp_path,
            seed=100 + r,
            kill_rng=rng,
            kill_after=rng.randint(1, 25),
            hook=None,
        )


def test_raft_log_survives_kills_inside_the_file_layer(tmp_path):
    rng = random.Random(2)
    for r in range(rounds(8)):
        check_log_round(
            tmp_path,
            seed=200 + r,
            kill_rng=rng,
            kill_after=None,
            hook=rng.randint(1, 90),
        )


def check_engine_round(name: str, root, kill_rng: random.Random, kill_after: int | None, hook: int | None) -> None:
    options = {"checkpoint_bytes": 32 << 10} if name == "hybrid" else {}
    with open_engine(name, root, **options) as e:
        start = e.applied_index()
    ops = 60
    run = lib.run_writer(
        [f"engine:{name}", str(root), "0", str(ops)] + ([str(hook)] if hook is not None else []),
        kill_rng,
        kill_after,
    )
    with open_engine(name, root, **options) as e:
        applied = e.applied_index()
        assert applied in (start + run.acks, start + run.acks + 1), (
            name,
            start,
            run.acks,
            applied,
        )
        assert dict(e.range()) == lib.engine_state(applied)


@pytest.mark.parametrize("name", ["leveldb", "lmdb", "hybrid"])
def test_engines_survive_kills_at_random_times(tmp_path, name):
    rng = random.Random(3)
    for _ in range(rounds(2)):
        check_engine_round(name, tmp_path, rng, kill_after=rng.randint(1, 40), hook=None)


def test_hybrid_engine_survives_kills_inside_the_file_layer(tmp_path):
    rng = random.Random(4)
    for _ in range(rounds(5)):
        check_engine_round("hybrid", tmp_path, rng, kill_after=None, hook=rng.randint(1, 80))
