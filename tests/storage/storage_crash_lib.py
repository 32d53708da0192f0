"""Shared by the crash tests and the writer subprocess they kill (`crash_writer.py`).

Both sides generate the same operations from the same seed and starting state, so the
test can compute every state the writer passed through and check that what reopens is
exactly the last acknowledged state or the one after it (the operation in flight).
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from global_kv.raft import ConfState, Entry, EntryType, HardState, SnapshotMeta

CONF = ConfState(voters=("n1", "n2", "n3"))
WRITER = Path(__file__).with_name("crash_writer.py")


def entry_data(index: int, term: int) -> bytes:
    h = hashlib.blake2b(b"%d/%d" % (index, term), digest_size=16).digest()
    return h * (h[0] % 24 * 16)  # 0..6 KB


def snapshot_chunks(index: int) -> list[bytes]:
    h = hashlib.blake2b(b"snap%d" % index, digest_size=32).digest()
    return [h * (1000 + i * 300) for i in range(h[0] % 5 + 1)]


# ---- the Raft log ----------------------------------------------------------------------------


@dataclass
class LogModel:
    hs: HardState = field(default_factory=HardState)
    snap: SnapshotMeta = field(default_factory=SnapshotMeta)
    entries: list[tuple[int, int]] = field(default_factory=list)  # (index, term)

    def last(self) -> int:
        return self.entries[-1][0] if self.entries else self.snap.index

    def term_at(self, i: int) -> int:
        return self.snap.term if i == self.snap.index else self.entries[i - self.snap.index - 1][1]

    def key(self) -> tuple:
        return (self.hs, self.snap, tuple(self.entries))


def make_entries(first: int, n: int, term: int) -> list[Entry]:
    return [Entry(i, term, EntryType.NORMAL, entry_data(i, term)) for i in range(first, first + n)]


def next_log_op(rng: random.Random, m: LogModel) -> tuple:
    term = m.hs.term or 1
    r = rng.random()
    if r < 0.45:
        return (
            "save",
            HardState(term, m.hs.vote or "n1", m.hs.commit),
            m.last() + 1,
            rng.randint(1, 30),
            term,
            None,
        )
    if r < 0.6 and m.last() > m.hs.commit:
        start = rng.randint(m.hs.commit + 1, m.last())
        return (
            "save",
            HardState(term + 1, f"n{rng.randint(1, 3)}", m.hs.commit),
            start,
            rng.randint(1, 10),
            term + 1,
            None,
        )
    if r < 0.8 and m.last() > m.hs.commit:
        return (
            "save",
            HardState(term, m.hs.vote, rng.randint(m.hs.commit + 1, m.last())),
            0,
            0,
            term,
            None,
        )
    if r < 0.9 and m.hs.commit > m.snap.index:
        i = rng.randint(m.snap.index + 1, m.hs.commit)
        return ("compact", SnapshotMeta(i, m.term_at(i), CONF))
    meta = SnapshotMeta(m.last() + rng.randint(1, 20), term, CONF)  # a leader's snapshot we lack
    return (
        "save",
        HardState(term, m.hs.vote, meta.index),
        meta.index + 1,
        rng.randint(0, 3),
        term,
        meta,
    )


def apply_log_op(op: tuple, m: LogModel) -> LogModel:
    out = LogModel(m.hs, m.snap, list(m.entries))
    if op[0] == "compact":
        meta = op[1]
        out.entries = [e for e in out.entries if e[0] > meta.index]
        out.snap = meta
        return out
    _, hs, first, n, term, meta = op
    if meta is not None:
        out.entries = []
        out.snap = meta
    out.hs = hs
    if n:
        out.entries = [e for e in out.entries if e[0] < first] + [(i, term) for i in range(first, first + n)]
    return out


def log_model_of(state) -> LogModel:
    for e in state.entries:
        assert e.data == entry_data(e.index, e.term), f"entry {e.index} has wrong data"
    return LogModel(state.hard_state, state.snapshot, [(e.index, e.term) for e in state.entries])


# ---- the engines -----------------------------------------------------------------------------


def batch_keys(b: int) -> list[bytes]:
    return [b"b%06d-%02d" % (b, j) for j in range(b % 7 + 1)]


def batch_value(key: bytes) -> bytes:
    return hashlib.blake2b(key).digest() * (key[-1] % 40 + 1)


def engine_batch(b: int) -> tuple[dict[bytes, bytes], list[bytes]]:
    """Batch number b (applied at index b) puts its keys and deletes those of batch b-3."""
    return {k: batch_value(k) for k in batch_keys(b)}, (batch_keys(b - 3) if b > 3 else [])


def engine_state(applied: int) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for b in range(1, applied + 1):
        puts, dels = engine_batch(b)
        for k in dels:
            out.pop(k, None)
        out.update(puts)
    return out


# ---- running and killing the writer ------------------------------------------------------------


@dataclass
class WriterRun:
    acks: int  # operations the writer reported durable
    finished: bool  # it ran all its operations (not killed)


def run_writer(args: list[str], rng: random.Random, kill_after: int | None, timeout: float = 30.0) -> WriterRun:
    """Run the writer; SIGKILL it after `kill_after` acks (+ a random few ms), or let a
    kill hook inside it fire. Always reaps it, even if this function fails."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    buf = b""
    acks = 0
    finished = False
    try:
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        killed = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"writer {args} did not finish in {timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            acks = buf.count(b"ACK ")
            finished = b"DONE" in buf
            if not killed and kill_after is not None and acks >= kill_after:
                time.sleep(rng.uniform(0, 0.004))
                proc.send_signal(signal.SIGKILL)
                killed = True
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        err = proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
        if proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"writer failed with {proc.returncode}:\n{err}")
        return WriterRun(acks=acks, finished=finished)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
