"""The simulator's deterministic key-value state machine and its command encoding.

A stand-in for `global_kv.state` so the simulator depends only on the Raft core: it
applies put / delete / cas commands (reads go through ReadIndex and never enter the
log), snapshots to bytes and restores from them. Apply depends only on the entry and
the prior state: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from .._errors import RaftInvariantError
from ..raft import Entry, EntryType

__all__ = ["KVStateMachine", "encode_command"]

_NORMAL = EntryType.NORMAL


def encode_command(op_id: int, op: tuple[Any, ...]) -> bytes:
    """Entry data for a client write: its id (to recognise it) and the operation."""
    return json.dumps([op_id, *op], separators=(",", ":")).encode()


class KVStateMachine:
    """A dict of str -> str, advanced one committed entry at a time."""

    __slots__ = ("applied", "data")

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied = 0

    def apply(self, entry: Entry) -> Any:
        """Apply the next committed entry; returns the client-visible result."""
        if entry.index != self.applied + 1:
            raise RaftInvariantError(
                f"state machine at {self.applied} asked to apply entry {entry.index}: "
                "committed entries must arrive in order without gaps"
            )
        self.applied = entry.index
        if entry.type != _NORMAL:
            return None
        cmd = json.loads(entry.data)
        kind = cmd[1]
        data = self.data
        if kind == "put":
            data[cmd[2]] = cmd[3]
            return None
        if kind == "delete":
            data.pop(cmd[2], None)
            return None
        if kind == "cas":
            key, expected, new = cmd[2], cmd[3], cmd[4]
            if data.get(key) != expected:
                return False
            if new is None:
                data.pop(key, None)
            else:
                data[key] = new
            return True
        if kind == "barrier":
            return None
        raise RaftInvariantError(f"unknown command {cmd!r} at index {entry.index}")

    def snapshot(self) -> bytes:
        return json.dumps(
            {"applied": self.applied, "data": self.data}, sort_keys=True
        ).encode()

    def restore(self, blob: bytes, index: int) -> None:
        doc = json.loads(blob)
        if doc["applied"] != index:
            raise RaftInvariantError(
                f"snapshot data taken at {doc['applied']} installed as snapshot {index}"
            )
        self.data = dict(doc["data"])
        self.applied = index
