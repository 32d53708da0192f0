"""Client sessions for exactly-once writes (Raft dissertation §6.3), by log index only.

A session remembers, per client, the results of requests the client may still retry
(sequence numbers at or above its acknowledgement) and the index of the last entry
that used it. Sessions are kept in an ordered dict by that index, so expiring the
ones idle for more than N entries pops from the front: amortised O(1) per entry, and
the same on every replica because it depends only on log indexes, never on a clock.

Every change is written through the caller's batch (a meta record per session, one
record per cached result) so that a restart or a snapshot restore rebuilds the same
table. This module must never decide whether a request is a duplicate (that is
`_machine`), and never write to the engine except through the batch it is given.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cbor2

from .._errors import RaftInvariantError, StorageCorrupted
from ._keys import (
    SESSION_PREFIX,
    parse_session_key,
    session_meta_key,
    session_prefix,
    session_result_key,
)
from ._locks import Writes
from ._results import Result, decode_result, encode_result

if TYPE_CHECKING:
    from ..storage._engine import StorageEngine

__all__ = ["Session", "SessionInfo", "SessionTable"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A read-only view of one session: its last-used entry, its acknowledgement, and the
    sequence numbers whose results it still caches."""

    client_id: str
    last_index: int
    ack: int
    cached: tuple[int, ...]


class Session:
    __slots__ = ("ack", "client_id", "last_index", "prefix", "results")

    def __init__(self, client_id: str, last_index: int, ack: int) -> None:
        self.client_id = client_id
        self.prefix = session_prefix(client_id)
        self.last_index = last_index
        self.ack = ack
        self.results: dict[int, Result] = {}

    def info(self) -> SessionInfo:
        return SessionInfo(self.client_id, self.last_index, self.ack, tuple(sorted(self.results)))


class SessionTable:
    """Sessions ordered by last use (oldest first)."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    @classmethod
    def load(cls, engine: StorageEngine) -> SessionTable:
        """The table as stored in `engine` (StorageCorrupted if a record is damaged)."""
        found: dict[str, Session] = {}
        results: list[tuple[str, int, bytes]] = []
        with engine.prefix_scan(SESSION_PREFIX) as records:
            for stored_key, data in records:
                try:
                    client_id, seq = parse_session_key(stored_key)
                    if seq is None:
                        last_index, ack = cbor2.loads(data)
                        if type(last_index) is not int or type(ack) is not int:
                            raise ValueError("meta fields must be ints")
                        found[client_id] = Session(client_id, last_index, ack)
                    else:
                        results.append((client_id, seq, data))
                except Exception as exc:
                    raise StorageCorrupted("state sessions", None, f"bad session record {stored_key!r}: {exc}") from exc
        for client_id, seq, data in results:
            session = found.get(client_id)
            if session is None or seq < session.ack:
                raise StorageCorrupted(
                    "state sessions", None, f"cached result {seq} of {client_id!r} outside a live session"
                )
            session.results[seq] = decode_result(data)
        table = cls()
        for session in sorted(found.values(), key=lambda s: s.last_index):
            table._by_id[session.client_id] = session
        return table

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, client_id: str) -> Session | None:
        return self._by_id.get(client_id)

    def infos(self) -> list[SessionInfo]:
        return [self._by_id[c].info() for c in sorted(self._by_id)]

    def cached_results(self) -> int:
        return sum(len(s.results) for s in self._by_id.values())

    def open(self, client_id: str, index: int, ack: int, writes: Writes) -> Session:
        if client_id in self._by_id:
            raise RaftInvariantError(f"session {client_id!r} opened twice")
        session = Session(client_id, index, ack)
        self._by_id[client_id] = session
        self._write_meta(session, writes)
        return session

    def touch(self, session: Session, index: int, ack: int, writes: Writes) -> None:
        """`session` is used by the entry at `index` carrying acknowledgement `ack`."""
        if index <= session.last_index:
            raise RaftInvariantError(f"session {session.client_id!r} used at {index} after {session.last_index}")
        session.last_index = index
        self._by_id.move_to_end(session.client_id)  # indexes only grow: stays ordered
        if ack > session.ack:
            session.ack = ack
            for seq in [s for s in session.results if s < ack]:
                del session.results[seq]
                writes.delete(session_result_key(session.prefix, seq))
        self._write_meta(session, writes)

    def record(self, session: Session, seq: int, result: Result, writes: Writes) -> None:
        if seq < session.ack or seq in session.results:
            raise RaftInvariantError(f"result {seq} of {session.client_id!r} recorded twice or below ack")
        session.results[seq] = result
        writes.put(session_result_key(session.prefix, seq), encode_result(result))

    def close(self, client_id: str, writes: Writes) -> bool:
        """Drop a session and its cached results; False if there was none."""
        session = self._by_id.pop(client_id, None)
        if session is None:
            return False
        self._erase(session, writes)
        return True

    def expire(self, index: int, idle_entries: int, writes: Writes) -> None:
        """Drop every session last used more than `idle_entries` entries before `index`."""
        by_id = self._by_id
        while by_id:
            oldest = next(iter(by_id.values()))
            if index - oldest.last_index <= idle_entries:
                return
            by_id.popitem(last=False)
            self._erase(oldest, writes)

    @staticmethod
    def _erase(session: Session, writes: Writes) -> None:
        writes.delete(session_meta_key(session.prefix))
        for seq in session.results:
            writes.delete(session_result_key(session.prefix, seq))

    @staticmethod
    def _write_meta(session: Session, writes: Writes) -> None:
        writes.put(session_meta_key(session.prefix), cbor2.dumps([session.last_index, session.ack]))
