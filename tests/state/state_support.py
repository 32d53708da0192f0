"""Helpers shared by the state machine tests: PIDs, stored values, a log builder."""

from __future__ import annotations

from typing import Any

from ergo_py.ids import PID
from global_kv.raft import Entry, EntryType
from global_kv.state import (
    CAS,
    Applied,
    BatchDelete,
    BatchPut,
    Command,
    Delete,
    LockAcquire,
    LockExpire,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Op,
    Put,
    SessionClose,
    StateMachine,
    encode_command,
    encode_value,
)
from global_kv.storage import StorageEngine

A = PID("a@host", 1, 1)
B = PID("b@host", 2, 1)
C = PID("c@host", 3, 7)


def v(raw: bytes, compress: bool = False) -> bytes:
    """A stored value (threshold 1, so `compress=True` compresses anything compressible)."""
    return encode_value(raw, compress, 1)


class Log:
    """Builds committed entries with consecutive indexes (from `start`)."""

    def __init__(self, start: int = 1) -> None:
        self.next = start
        self.entries: list[Entry] = []

    def _add(self, entry_type: EntryType, data: bytes) -> Entry:
        entry = Entry(self.next, 1, entry_type, data)
        self.next += 1
        self.entries.append(entry)
        return entry

    def cmd(self, op: Op, client_id: str | None = None, seq: int = 0, ack: int = 0) -> Entry:
        if client_id is not None and seq == 0:
            raise ValueError("client commands need seq >= 1")
        return self._add(EntryType.NORMAL, encode_command(Command(client_id, seq, ack, op)))

    def noop(self) -> Entry:
        return self._add(EntryType.NOOP, b"")

    def conf(self) -> Entry:
        return self._add(EntryType.CONF_CHANGE, b"\x01opaque conf change")

    def noops(self, n: int) -> list[Entry]:
        return [self.noop() for _ in range(n)]


def apply1(sm: StateMachine, entry: Entry) -> Any:
    """Apply one NORMAL entry and return its result."""
    (applied,) = sm.apply([entry])
    assert applied.index == entry.index
    return applied.result


def scripted_log() -> list[Entry]:
    """A log touching every operation, lock rule and session rule."""
    log = Log()
    log.noop()
    log.cmd(Put(b"a", v(b"1")), "c1", 1, 1)
    log.cmd(LockAcquire(b"L1", A, 100), "c1", 2, 1)
    log.cmd(LockAcquire(b"L2", B, 0), "c2", 1, 1)
    log.cmd(LockAcquire(b"L1", B, 0), "c2", 2, 1)  # held
    log.cmd(Put(b"a", v(b"1")), "c1", 1, 1)  # duplicate
    log.cmd(CAS(b"a", v(b"1"), v(b"2" * 2000, compress=True)), "c1", 3, 2)
    log.conf()
    log.cmd(LockRefresh(b"L1", 3, 900), "c1", 4, 4)
    log.cmd(LockExpire(b"L1", 3, 3))  # refreshed since: kept
    log.cmd(BatchPut(((b"b", v(b"x")), (b"c", v(b"y")))), "c3", 1, 0)
    log.cmd(LockRelease(b"L2", 99))  # stale
    log.cmd(LockReleaseOwner(B))
    log.cmd(BatchDelete((b"b",)), "c3", 2, 2)
    log.cmd(SessionClose("c2"))
    log.cmd(LockExpire(b"L1", 3))
    log.cmd(LockAcquire(b"L1", B, 0), "c2", 3, 3)  # c2's session is gone
    log.noops(3)
    log.cmd(Delete(b"c"), "c1", 5, 5)
    return log.entries


def apply_in_splits(engine: StorageEngine, entries: list[Entry], size: int) -> tuple[StateMachine, list[Applied]]:
    sm = StateMachine(engine, session_expiry_entries=8)
    out: list[Applied] = []
    for i in range(0, len(entries), size):
        out += sm.apply(entries[i : i + size])
    return sm, out
