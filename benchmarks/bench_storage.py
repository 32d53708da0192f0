"""Benchmark the storage layer: engines, the durable Raft log, and the raw disk.

    .venv/bin/python benchmarks/bench_storage.py [--keys 100000] [--dir /some/disk]

Per engine: puts/s (one put per call, and batches of 100), gets/s (random order) and
range-scan rows/s over `--keys` keys with `--value-size`-byte values. For the Raft log:
entries/s appended with one fsync per save at batch sizes 1, 16 and 128, next to the raw
fsync rate of the same disk and LevelDB with sync writes (the alternative log format),
measured in alternating rounds in the same run (medians reported). Prints a table and
writes JSON to benchmarks/results/storage.json. Everything runs in a temp dir under
`--dir` (default: the system temp dir), which is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plyvel  # type: ignore[import-untyped]

from global_kv.raft import Entry, HardState
from global_kv.storage import RaftLogStore, StorageEngine, open_engine

RESULTS = Path(__file__).resolve().parent / "results"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_engine(
    label: str,
    make: Callable[[], StorageEngine],
    keys: list[bytes],
    value: bytes,
    sync_keys: int | None,
) -> dict[str, Any]:
    """puts/s, batched puts/s, gets/s, scan rows/s for one engine configuration."""
    n = len(keys) if sync_keys is None else min(sync_keys, len(keys))
    e = make()
    t = time.perf_counter()
    for k in keys[:n]:
        e.put(k, value)
    puts = rate(n, time.perf_counter() - t)
    row: dict[str, Any] = {"engine": label, "keys": n, "puts_per_s": puts}
    if sync_keys is None:
        t = time.perf_counter()
        for i in range(0, n, 100):
            e.batch_put({k: value for k in keys[i : i + 100]})
        row["batch100_puts_per_s"] = rate(n, time.perf_counter() - t)
        order = keys[:n]
        random.Random(2).shuffle(order)
        t = time.perf_counter()
        for k in order:
            if e.get(k) is None:
                raise AssertionError(f"{label}: lost {k!r}")
        row["gets_per_s"] = rate(n, time.perf_counter() - t)
        t = time.perf_counter()
        rows = sum(1 for _ in e.range())
        row["scan_rows_per_s"] = rate(rows, time.perf_counter() - t)
        if rows != n:
            raise AssertionError(f"{label}: scanned {rows} rows, expected {n}")
        e.sync()
        row["size_bytes"] = e.size()
    e.close()
    return row


def raw_fsync_rate(path: Path, seconds: float) -> float:
    fd = os.open(path / "raw-fsync", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            n += 1
        return rate(n, time.perf_counter() - t0)
    finally:
        os.close(fd)


def bench_log(path: Path, batch: int, seconds: float, value: bytes) -> dict[str, Any]:
    log = RaftLogStore(path)
    index = 0
    saves = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        entries = [Entry(index + i + 1, 1, data=value) for i in range(batch)]
        log.save(HardState(1, "n1", index), entries)
        index += batch
        saves += 1
    dt = time.perf_counter() - t0
    stats = log.statistics()
    log.close()
    if stats.syncs != saves + 2:  # + the initial segment's file and directory syncs
        raise AssertionError(f"expected one sync per save, got {stats.syncs} for {saves}")
    return {
        "batch": batch,
        "entries_per_s": rate(index, dt),
        "saves_per_s": rate(saves, dt),
    }


def bench_leveldb_log(path: Path, batch: int, seconds: float, value: bytes) -> dict[str, Any]:
    db = plyvel.DB(str(path), create_if_missing=True)
    index = 0
    saves = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        wb = db.write_batch(sync=True)
        for i in range(batch):
            wb.put((index + i + 1).to_bytes(8, "big"), value)
        wb.put(b"hardstate", index.to_bytes(8, "big"))
        wb.write()
        index += batch
        saves += 1
    dt = time.perf_counter() - t0
    db.close()
    return {
        "batch": batch,
        "entries_per_s": rate(index, dt),
        "saves_per_s": rate(saves, dt),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--sync-keys", type=int, default=2_000, help="puts for the fsync-per-write rows")
    ap.add_argument("--log-seconds", type=float, default=3.0, help="per batch size, split in rounds")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per batch size")
    ap.add_argument("--dir", default=None, help="where to create the temp dir (the disk to measure)")
    ap.add_argument("--out", default=str(RESULTS / "storage.json"))
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gkv-bench-storage-", dir=args.dir))
    value = random.Random(1).randbytes(args.value_size)
    keys = [b"key%010d" % i for i in range(args.keys)]
    random.Random(0).shuffle(keys)
    try:
        configs: list[tuple[str, Callable[[], StorageEngine], int | None]] = [
            ("memory", lambda: open_engine("memory"), None),
            ("leveldb", lambda: open_engine("leveldb", root / "e1"), None),
            (
                "lmdb sync=False",
                lambda: open_engine("lmdb", root / "e2", sync=False),
                None,
            ),
            ("hybrid", lambda: open_engine("hybrid", root / "e3"), None),
            (
                "leveldb sync=True",
                lambda: open_engine("leveldb", root / "e4", sync=True),
                args.sync_keys,
            ),
            (
                "lmdb (default sync=True)",
                lambda: open_engine("lmdb", root / "e5"),
                args.sync_keys,
            ),
            (
                "hybrid sync=True",
                lambda: open_engine("hybrid", root / "e6", sync=True),
                args.sync_keys,
            ),
        ]
        engines = []
        for label, make, sync_keys in configs:
            engines.append(bench_engine(label, make, keys, value, sync_keys))
            print(f"  measured {label}", file=sys.stderr)
        # The disk is shared and noisy: alternate the three measurements in short rounds
        # and report medians, so they see the same conditions.
        fsyncs: list[float] = []
        log_rows = []
        part = args.log_seconds / args.rounds
        for batch in (1, 16, 128):
            ours: list[float] = []
            ldb: list[float] = []
            for r in range(args.rounds):
                ours.append(bench_log(root / f"log-{batch}-{r}", batch, part, value)["entries_per_s"])
                ldb.append(bench_leveldb_log(root / f"ldb-{batch}-{r}", batch, part, value)["entries_per_s"])
                fsyncs.append(raw_fsync_rate(root, part))
            log_rows.append(
                {
                    "batch": batch,
                    "entries_per_s": statistics.median(ours),
                    "saves_per_s": statistics.median(ours) / batch,
                    "leveldb_sync_entries_per_s": statistics.median(ldb),
                }
            )
        fsync = statistics.median(fsyncs)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "params": {
            "keys": args.keys,
            "value_size": args.value_size,
            "sync_keys": args.sync_keys,
            "log_seconds": args.log_seconds,
            "rounds": args.rounds,
            "dir": str(args.dir or tempfile.gettempdir()),
        },
        "engines": engines,
        "raw_fdatasync_per_s": fsync,
        "raft_log": log_rows,
    }

    def fmt(x: Any) -> str:
        return f"{x:>12,.0f}" if isinstance(x, float) else f"{'-':>12}"

    print(f"\nEngines ({args.keys:,} keys, {args.value_size}-byte values; one operation per call)")
    print(f"{'engine':<26}{'puts/s':>12}{'batch100/s':>12}{'gets/s':>12}{'scan rows/s':>12}")
    for r in engines:
        print(
            f"{r['engine']:<26}{fmt(r['puts_per_s'])}{fmt(r.get('batch100_puts_per_s'))}"
            f"{fmt(r.get('gets_per_s'))}{fmt(r.get('scan_rows_per_s'))}"
        )
    print(f"\nRaft log: one fdatasync per save; raw fdatasync rate of this disk: {fsync:,.0f}/s")
    print(f"{'batch':>6}{'entries/s':>14}{'saves/s':>12}{'LevelDB sync entries/s':>26}")
    for r in log_rows:
        print(
            f"{r['batch']:>6}{r['entries_per_s']:>14,.0f}{r['saves_per_s']:>12,.0f}"
            f"{r['leveldb_sync_entries_per_s']:>26,.0f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
