"""The writer process the crash tests SIGKILL: `crash_writer.py MODE DIR SEED OPS [HOOK]`.

MODE is "log" (Raft log + snapshot store) or "engine:<name>". After each operation has
returned (is durable) it prints "ACK <n>". HOOK=N makes it kill itself at the N-th call
into the storage file layer (a pwrite is cut to a random prefix first), which lands
kills inside appends, segment creation, renames and deletions deterministically.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import storage_crash_lib as lib

from global_kv.storage import RaftLogStore, SnapshotStore, _files, open_engine


def install_hook(n: int, rng: random.Random) -> None:
    calls = [0]
    real_pwrite, real_sync, real_dirsync = (
        _files.pwrite,
        _files.fdatasync,
        _files.fsync_dir,
    )

    def tick() -> bool:
        calls[0] += 1
        return calls[0] >= n

    def pwrite(fd, data, off):
        if tick():
            real_pwrite(fd, bytes(data[: rng.randint(0, len(data) - 1)]), off)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_pwrite(fd, data, off)

    def fdatasync(fd):
        if tick():
            os.kill(os.getpid(), signal.SIGKILL)
        return real_sync(fd)

    def fsync_dir(path):
        if tick():
            os.kill(os.getpid(), signal.SIGKILL)
        return real_dirsync(path)

    _files.pwrite, _files.fdatasync, _files.fsync_dir = pwrite, fdatasync, fsync_dir


def run_log(root: Path, rng: random.Random, ops: int) -> None:
    log = RaftLogStore(root / "log", segment_bytes=16 << 10)
    store = SnapshotStore(root / "snaps")
    model = lib.log_model_of(log.load())

    def save_snapshot(meta):
        # Durable before the log forgets (compact) or jumps (install). A crash between the
        # two can leave the store ahead of the log; a newer snapshot then stands in.
        newest = store.latest()
        if newest is None or (newest.index, newest.term) < (meta.index, meta.term):
            store.save(meta, lib.snapshot_chunks(meta.index))

    for k in range(ops):
        op = lib.next_log_op(rng, model)
        if op[0] == "compact":
            save_snapshot(op[1])
            log.compact(op[1])
        else:
            _, hs, first, n, term, meta = op
            if meta is not None:
                save_snapshot(meta)
            log.save(hs, lib.make_entries(first, n, term), snapshot=meta)
        model = lib.apply_log_op(op, model)
        print(f"ACK {k}", flush=True)


def run_engine(name: str, root: Path, ops: int) -> None:
    options = {"checkpoint_bytes": 32 << 10} if name == "hybrid" else {}
    engine = open_engine(name, root, **options)
    start = engine.applied_index()
    for k in range(ops):
        b = start + k + 1
        puts, dels = lib.engine_batch(b)
        engine.write_batch(puts=puts, deletes=dels, applied_index=b)
        print(f"ACK {k}", flush=True)


def main() -> None:
    mode, root, seed, ops = (
        sys.argv[1],
        Path(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    if len(sys.argv) > 5:
        install_hook(int(sys.argv[5]), random.Random(seed ^ 0x5EED))
    if mode == "log":
        run_log(root, random.Random(seed), ops)
    else:
        run_engine(mode.split(":", 1)[1], root, ops)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
