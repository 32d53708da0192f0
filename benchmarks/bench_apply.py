"""Benchmark the state machine's apply: what one committed write costs a replica.

    .venv/bin/python benchmarks/bench_apply.py [--batches 1000] [--batch 16] [--keys 10000]
        [--engines memory,leveldb,lmdb,hybrid] [--json benchmarks/results/apply.json]

Per engine: `StateMachine.apply` of `--batches` batches of `--batch` puts (100-byte
values) to random keys of `--keys` preloaded ones, as a replica applies the entries of
one Ready, and the same for `DeleteRange` + put pairs; µs per committed write and
writes/s, then the engine records the history added. The number every replica pays per
write, before any network or fsync: compare it across versions with the same arguments
(the revisions and history of issue 16 are measured this way). Temp dirs, removed after.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from _report import write_report

from global_kv.raft import Entry, EntryType
from global_kv.state import Command, DeleteRange, Put, StateMachine, encode_command, encode_value
from global_kv.storage import open_engine

RESULTS = Path(__file__).resolve().parent / "results"


def _entries(start: int, ops: list[object]) -> list[Entry]:
    return [
        Entry(start + i, 1, EntryType.NORMAL, encode_command(Command(None, 0, 0, op)))  # type: ignore[arg-type]
        for i, op in enumerate(ops)
    ]


def measure(engine_name: str, batches: int, batch: int, keys: int, seed: int = 1) -> list[dict[str, object]]:
    rng = random.Random(seed)
    value = encode_value(b"x" * 100)
    rows = []
    with tempfile.TemporaryDirectory() as where:
        engine = open_engine(engine_name, where) if engine_name != "memory" else open_engine("memory")
        try:
            sm = StateMachine(engine)
            index = 0
            for first in range(0, keys, 500):  # preload
                ops: list[object] = [Put(b"key%07d" % k, value) for k in range(first, min(keys, first + 500))]
                sm.apply(_entries(index + 1, ops))
                index += len(ops)
            for name, make in (
                ("put", lambda: [Put(b"key%07d" % rng.randrange(keys), value) for _ in range(batch)]),
                (
                    "delete_range+put",
                    lambda: [
                        op
                        for _ in range(batch // 2)
                        for k in [b"key%07d" % rng.randrange(keys)]
                        for op in (DeleteRange(k), Put(k, value))
                    ],
                ),
            ):
                work = []
                for _ in range(batches):
                    ops = make()
                    work.append(_entries(index + 1, ops))
                    index += len(ops)
                writes = sum(len(w) for w in work)
                started = time.perf_counter()
                for entries in work:
                    sm.apply(entries)
                seconds = time.perf_counter() - started
                rows.append(
                    {
                        "engine": engine_name,
                        "workload": name,
                        "batch": batch,
                        "writes": writes,
                        "us_per_write": round(seconds / writes * 1e6, 2),
                        "writes_per_s": round(writes / seconds),
                        "revision": sm.revision,
                    }
                )
        finally:
            engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--engines", default="memory,leveldb,lmdb,hybrid")
    parser.add_argument("--json", default=str(RESULTS / "apply.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'engine':<8} {'workload':<18} {'us/write':>9} {'writes/s':>10}")
    for name in args.engines.split(","):
        for row in measure(name, args.batches, args.batch, args.keys):
            rows.append(row)
            print(f"{row['engine']:<8} {row['workload']:<18} {row['us_per_write']:>9} {row['writes_per_s']:>10,}")
    write_report(args.json, rows)


if __name__ == "__main__":
    main()
