"""StateMachine: applies committed Raft entries to the KV store, locks and sessions.

Deterministic (ARCHITECTURE.md rule 2): the effect of an entry depends only on the
entry and the state before it, never on a clock, randomness or the host, so every
replica that applies the same log holds the same state. Time-based decisions (TTL
expiry, dead owners) arrive as ordinary entries proposed by the leader.

A batch of entries is applied with ONE atomic `engine.write_batch` that also records
the applied index, so a crash leaves either all of a batch or none of it, and a
restart replays exactly the entries after `applied_index`. Reads inside a batch see
the earlier entries' effects through an overlay. If anything fails mid-batch, the
in-memory tables are rebuilt from the engine, which the failed batch never touched.

This module must never read a clock, draw a random number, do I/O other than through
the engine it is given, or apply an entry it cannot fully decode.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ergo_py.ids import PID

from .._errors import Compacted, FutureRevision, MalformedCommand, RaftInvariantError, StorageCorrupted
from ..raft._log_types import Entry, EntryType
from ._commands import (
    CAS,
    BatchDelete,
    BatchPut,
    Command,
    CompactHistory,
    Delete,
    DeleteRange,
    KVPut,
    LeaseExpire,
    LeaseGrant,
    LeaseRefresh,
    LeaseRevoke,
    LockAcquire,
    LockExpire,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Op,
    Put,
    SessionClose,
    Txn,
    TxnOp,
    TxnRange,
)
from ._commands import decode_command as _decode_command
from ._keys import (
    LEASE_PREFIX,
    LOCK_PREFIX,
    SESSION_PREFIX,
    USER_END,
    USER_PREFIX,
    check_user_key,
    prefix_end,
    user_key,
)
from ._leases import Lease, LeaseTable
from ._locks import Lock, LockTable
from ._mvcc import (
    DEAD_PREFIX,
    HISTORY_PREFIX,
    KeyIndex,
    KeyValue,
    RangeResult,
    Revisions,
    RevisionWriter,
    WatchEvent,
    compact_history,
    decode_live,
    history_events,
    key_at,
)
from ._range import PLAIN as PLAIN_RANGE
from ._range import RangeOptions, key_order, too_large
from ._range import select as select_range
from ._results import (
    Applied,
    CASFailedResult,
    CompactedResult,
    DeleteResult,
    FutureRevisionResult,
    Granted,
    KeyNotFoundResult,
    LeaseExistsResult,
    LeaseGrantedResult,
    LeaseNotFoundResult,
    LeaseRevokedResult,
    LockHeldResult,
    LockNotHeldResult,
    Ok,
    PutResult,
    Released,
    Result,
    SessionExpiredResult,
    StaleTokenResult,
    TxnOpResult,
    TxnRefusedResult,
    TxnResult,
)
from ._sessions import SessionInfo, SessionTable
from ._txn import compare_holds, txn_conflict
from ._values import decode_value

if TYPE_CHECKING:
    from ..raft._ready import Snapshot
    from ..storage._engine import SnapshotStream, StorageEngine

__all__ = ["StateMachine", "StateStatistics"]

_NORMAL = EntryType.NORMAL
_DEAD_END = bytes((DEAD_PREFIX[0] + 1,))  # after every dead-key record
_NO_EFFECT = (EntryType.NOOP, EntryType.CONF_CHANGE)
# A current read of a range the key index holds at most this many keys of reads their
# live records one by one, not by an engine scan (why: `KeyIndex`).
_POINT_READS = 64
_OK = Ok()
# What one command's result may carry in keys and values (a transaction's ranges and
# prev_kvs, a delete's prev_kvs): checked before anything is applied, so a write is never
# applied and then refused for its answer. The same on every replica (results are cached
# by sessions), so a constant rather than a replica option.
MAX_RESULT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StateStatistics:
    """Counters for metrics: applied index and the size of the in-memory tables."""

    applied_index: int
    locks: int
    lock_owners: int
    sessions: int
    cached_results: int


class _Batch:
    """The writes of one apply call, readable before they reach the engine."""

    __slots__ = ("_engine", "changes")

    def __init__(self, engine: StorageEngine) -> None:
        self._engine = engine
        self.changes: dict[bytes, bytes | None] = {}  # None: delete

    def read(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self._engine.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = None

    def scan(self, low: bytes, high: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with low <= key < high as they are with this batch's writes, in key order."""
        changes = self.changes
        mine = sorted((k, v) for k, v in changes.items() if low <= k < high)
        with self._engine.range(low, high) as stored:
            for key, value in heapq.merge(mine, ((k, v) for k, v in stored if k not in changes)):
                if value is not None:
                    yield key, value

    def split(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        puts = {k: v for k, v in self.changes.items() if v is not None}
        deletes = [k for k, v in self.changes.items() if v is None]
        return puts, deletes


class _EngineView:
    """The engine as committed, read the way a `_Batch` is (reads between applies)."""

    __slots__ = ("read", "_engine")

    def __init__(self, engine: StorageEngine) -> None:
        self._engine = engine
        self.read = engine.get

    def scan(self, low: bytes, high: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._engine.range(low, high) as pairs:
            yield from pairs


_View = _Batch | _EngineView
_MAX_PROPOSED_BYTES = 32 << 20  # entry data whose commands `StateMachine.proposed` holds


class StateMachine:
    """The replicated KV + lock + session state, stored in one StorageEngine it owns.

    Open it on the engine at start (the tables are rebuilt from what is stored), feed
    it committed entries with `apply`, read with `get` / `range` / `prefix_scan`. The
    engine must not be written by anyone else. Not thread-safe: one owner (the actor
    shell, or the simulator) calls it.
    """

    def __init__(self, engine: StorageEngine, *, session_expiry_entries: int = 100_000) -> None:
        if type(session_expiry_entries) is not int or session_expiry_entries < 1:
            raise ValueError(f"session_expiry_entries must be a positive int, got {session_expiry_entries!r}")
        self._engine = engine
        self._session_expiry = session_expiry_entries
        self._locks = LockTable()
        self._leases = LeaseTable()
        self._sessions = SessionTable()
        self._revisions = Revisions()
        self._keys = KeyIndex()
        self._applied = 0
        self._broken: BaseException | None = None
        self._proposed: dict[bytes, Command] = {}  # see `proposed`
        self._proposed_bytes = 0
        self._load()

    # ---- applying -------------------------------------------------------------------------

    def proposed(self, data: bytes, command: Command) -> None:
        """The proposer's own `command`, whose entry data is `data` (`encode_command`): an
        entry holding those bytes is applied from it instead of decoding them again.

        Decoding is a pure function of the bytes, and every valid Command decodes from its
        encoding to an equal one (`tests/state/test_state_commands.py`), so whoever proposed
        the entry this is what any replica would apply; it saves the leader a decode per
        entry (the largest single cost of applying a transaction). Commands proposed but
        never applied (leadership lost) are dropped once too many bytes are held."""
        held = self._proposed
        if self._proposed_bytes > _MAX_PROPOSED_BYTES:
            held.clear()
            self._proposed_bytes = 0
        held[data] = command
        self._proposed_bytes += len(data)

    @property
    def applied_index(self) -> int:
        """The index of the last entry applied (0: none); the next entry must be this + 1."""
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> list[Applied]:
        """Apply committed entries in order; one `Applied` per NORMAL entry applied.

        Entries at or below `applied_index` are skipped (replay after a restart), NOOP and
        CONF_CHANGE entries only advance the index, and a gap raises RaftInvariantError.
        All effects and the new applied index are written in one atomic batch.
        """
        self._check_usable()
        start = cursor = self._applied
        batch = _Batch(self._engine)
        out: list[Applied] = []
        try:
            for entry in entries:
                index = entry.index
                if index <= cursor:
                    continue
                if index != cursor + 1:
                    raise RaftInvariantError(
                        f"gap in committed entries: entry {index} after {cursor}; "
                        "entries must be applied in order without holes"
                    )
                cursor = index
                self._sessions.expire(index, self._session_expiry, batch)
                if entry.type == _NORMAL:
                    out.append(self._apply_command(entry, batch))
                elif entry.type not in _NO_EFFECT:
                    raise RaftInvariantError(f"entry {index} has unknown type {entry.type!r}")
            if cursor > start:
                puts, deletes = batch.split()
                self._engine.write_batch(puts, deletes, applied_index=cursor)
        except BaseException:
            self._recover()
            raise
        self._applied = cursor
        return out

    def _apply_command(self, entry: Entry, batch: _Batch) -> Applied:
        index = entry.index
        cmd = self._proposed.pop(entry.data, None) if self._proposed else None
        if cmd is not None:
            self._proposed_bytes -= len(entry.data)
        else:
            try:
                cmd = _decode_command(entry.data)
            except MalformedCommand as exc:
                raise MalformedCommand(exc.detail, index) from exc
        client_id, seq = cmd.client_id, cmd.seq
        if client_id is None:
            return Applied(index, None, seq, self._execute(cmd.op, index, batch))
        sessions = self._sessions
        session = sessions.get(client_id)
        if session is None:
            if cmd.ack > 1:
                # The client has received results before, so its session existed and was
                # dropped: starting a new one could apply a retried request twice.
                return Applied(index, client_id, seq, SessionExpiredResult(client_id, seq))
            session = sessions.open(client_id, index, cmd.ack, batch)
        else:
            cached = session.results.get(seq)
            stale = cached is None and seq < session.ack
            sessions.touch(session, index, cmd.ack, batch)
            if cached is not None:
                return Applied(index, client_id, seq, cached)  # a retry: changes nothing
            if stale:
                return Applied(index, client_id, seq, SessionExpiredResult(client_id, seq))
        result = self._execute(cmd.op, index, batch)
        if sessions.get(client_id) is session and not _refused_acquire(cmd.op, result):
            sessions.record(session, seq, result, batch)  # not closed by this very command
        return Applied(index, client_id, seq, result)

    # ---- operations -----------------------------------------------------------------------

    def _execute(self, op: Op, index: int, batch: _Batch) -> Result:
        """The effect of `op` applied by the entry at `index` (a failure changes nothing)."""
        match op:
            case Put():
                writer = self._writer(batch)
                writer.put(op.key, op.value)
                writer.finish()
                return _OK
            case Delete():
                writer = self._writer(batch)
                writer.delete(op.key)
                writer.finish()
                return _OK
            case CAS():
                return self._cas(op, index, batch)
            case BatchPut():
                writer = self._writer(batch)
                for key, value in dict(op.items).items():  # a later duplicate wins
                    writer.put(key, value)
                writer.finish()
                return _OK
            case BatchDelete():
                writer = self._writer(batch)
                for key in dict.fromkeys(op.keys):
                    writer.delete(key)
                writer.finish()
                return _OK
            case LockAcquire():
                held = self._locks.get(op.key)
                if held is not None:
                    return LockHeldResult(op.key, held.owner, held.token)
                # The fencing token is this entry's index: unique and increasing across
                # keys, holders and leader changes, with no counter to keep.
                lock = self._locks.grant(op.key, op.owner, op.ttl_ms, index, batch)
                return Granted(lock.key, lock.token, lock.ttl_ms)
            case LockRelease() | LockExpire():
                found = self._holding(op.key, op.token)
                if not isinstance(found, Lock):
                    return found  # a retried or late release never frees a newer holder
                if isinstance(op, LockExpire) and op.refreshed_index not in (0, found.refreshed_index):
                    return LockHeldResult(found.key, found.owner, found.token)  # refreshed since
                self._locks.remove(found, batch)
                return Released(((found.key, found.token),))
            case LockRefresh():
                found = self._holding(op.key, op.token)
                if not isinstance(found, Lock):
                    return found
                lock = self._locks.refresh(found, op.ttl_ms, index, batch)
                return Granted(lock.key, lock.token, lock.ttl_ms)
            case LockReleaseOwner():
                # The owner is gone: its locks are released and its leases revoked.
                released = []
                for lock in self._locks.of(op.owner):
                    self._locks.remove(lock, batch)
                    released.append((lock.key, lock.token))
                for lease in self._leases.of(op.owner):
                    self._end_lease(lease, batch)
                return Released(tuple(released))
            case SessionClose():
                self._sessions.close(op.client_id, batch)
                return _OK
            case KVPut():
                refusal = self._put_refusal(op, batch)
                if refusal is not None:
                    return refusal
                writer = self._writer(batch)
                result = self._kv_put(op, writer)
                writer.finish()
                return result
            case DeleteRange():
                if op.prev_kv and self._prev_kvs_bytes(op, batch) > MAX_RESULT_BYTES:
                    return _prev_kvs_refused()
                writer = self._writer(batch)
                deleted = self._delete_range(op, writer, batch)
                revision = writer.finish()
                return DeleteResult(revision or self._revisions.revision, deleted.deleted, deleted.prev_kvs)
            case Txn():
                return self._txn(op, batch)
            case LeaseGrant():
                lease_id = op.lease_id or self._leases.new_id(index)
                if self._leases.get(lease_id) is not None:
                    return LeaseExistsResult(lease_id)
                lease = self._leases.grant(lease_id, op.ttl_ms, op.owner, index, batch)
                return LeaseGrantedResult(lease.id, lease.ttl_ms)
            case LeaseRefresh():
                live = self._leases.get(op.lease_id)
                if live is None:
                    return LeaseNotFoundResult(op.lease_id)
                lease = self._leases.refresh(live, index, batch)
                return LeaseGrantedResult(lease.id, lease.ttl_ms)
            case LeaseRevoke():
                live = self._leases.get(op.lease_id)
                return LeaseNotFoundResult(op.lease_id) if live is None else self._end_lease(live, batch)
            case LeaseExpire():
                live = self._leases.get(op.lease_id)
                if live is None:
                    return LeaseNotFoundResult(op.lease_id)
                if live.refreshed_index != op.refreshed_index:
                    return LeaseGrantedResult(live.id, live.ttl_ms)  # kept alive since
                return self._end_lease(live, batch)
            case CompactHistory():
                revisions = self._revisions
                if op.revision <= revisions.compact_revision:
                    return CompactedResult(revisions.compact_revision)
                if op.revision > revisions.revision:
                    return FutureRevisionResult(op.revision, revisions.revision)
                compact_history(revisions, self._keys, batch, op.revision)
                return _OK
        raise RaftInvariantError(f"no rule to apply {type(op).__name__}")  # Command validates op

    def _cas(self, op: CAS, index: int, batch: _Batch) -> Result:
        writer = self._writer(batch)
        record = writer.current(op.key)
        current = None if record is None else decode_value(record.stored)
        try:
            expected = None if op.expected is None else decode_value(op.expected)
        except StorageCorrupted as exc:  # only a proposer bypassing encode_command gets here
            raise MalformedCommand(f"CAS expected value: {exc.detail}", index) from exc
        if current != expected:  # decoded: compressed and raw forms of a value are equal
            return CASFailedResult(op.key, current)
        if op.new is not None:
            writer.put(op.key, op.new)
        elif record is not None:
            writer.delete(op.key)
        writer.finish()
        return _OK

    def _writer(self, batch: _Batch) -> RevisionWriter:
        return RevisionWriter(self._revisions, self._keys, batch, self._leases.keys)

    def _end_lease(self, lease: Lease, batch: _Batch) -> LeaseRevokedResult:
        """Delete the lease's keys, in one revision, and the lease."""
        writer = self._writer(batch)
        keys = sorted(self._leases.keys.get(lease.id, ()))
        for key in keys:
            writer.delete(key)
        self._leases.remove(lease, batch)
        revision = writer.finish()
        return LeaseRevokedResult(lease.id, revision or self._revisions.revision, len(keys))

    def _put_refusal(self, op: KVPut, batch: _Batch) -> Result | None:
        """Why a put cannot be applied (ignore_value of a missing key, a missing lease), or None."""
        if op.ignore_value and batch.read(user_key(op.key)) is None:
            return KeyNotFoundResult(op.key)
        if op.lease and not op.ignore_lease and self._leases.get(op.lease) is None:
            return LeaseNotFoundResult(op.lease)
        return None

    def _kv_put(self, op: KVPut, writer: RevisionWriter) -> PutResult:
        """Put, in the revision `writer` writes (an ignore_value key must exist)."""
        record = writer.current(op.key) if op.prev_kv or op.ignore_value or op.ignore_lease else None
        stored = record.stored if op.ignore_value and record is not None else op.value
        lease = record.lease if op.ignore_lease and record is not None else op.lease
        writer.put(op.key, stored, lease)
        return PutResult(writer.main, record.key_value(op.key) if op.prev_kv and record is not None else None)

    def _delete_range(self, op: DeleteRange, writer: RevisionWriter, batch: _Batch) -> DeleteResult:
        """Delete the range, in the revision `writer` writes (0: the caller's to fill in)."""
        low = user_key(op.key)
        high = _range_high(low, op.range_end)
        deleted: list[KeyValue] = []
        count = 0
        skip = len(USER_PREFIX)
        for k, raw in list(self._live(batch, low, high)):
            key = k[skip:]
            if op.prev_kv:
                deleted.append(decode_live(raw).key_value(key))
            writer.delete(key)
            count += 1
        return DeleteResult(0, count, tuple(deleted))

    # ---- transactions ----------------------------------------------------------------------

    def _txn(self, op: Txn, batch: _Batch) -> Result:
        """etcd's Txn, in one revision: as etcd, every compare (nested ones too) is decided
        on the state before the transaction, then the operations on that path are checked
        (ranges inside the history and under the byte budget, ignore_value keys present),
        and only then applied; a refusal changes nothing."""
        reason = txn_conflict(op)
        if reason is not None:
            return TxnRefusedResult(reason.split(":", 1)[0], reason)
        path: dict[int, bool] = {}
        self._txn_path(op, batch, path)
        refusal = self._txn_check(op, batch, path)
        if refusal is not None:
            return refusal
        writer = self._writer(batch)
        result = self._txn_run(op, batch, path, writer)
        revision = writer.finish()
        return _txn_revision(result, revision or self._revisions.revision)

    def _txn_path(self, txn: Txn, batch: _Batch, path: dict[int, bool]) -> None:
        """Which branch each transaction on the way runs (by id), decided on the state now."""
        now = self._revisions.revision
        succeeded = True
        for c in txn.compare:
            low = user_key(c.key)
            if not compare_holds(c, list(self._found(batch, low, _range_high(low, c.range_end), now))):
                succeeded = False
                break
        path[id(txn)] = succeeded
        for op in txn.success if succeeded else txn.failure:
            if type(op) is Txn:
                self._txn_path(op, batch, path)

    def _txn_check(self, txn: Txn, batch: _Batch, path: dict[int, bool]) -> Result | None:
        budget = MAX_RESULT_BYTES
        pending = [txn]
        while pending:
            node = pending.pop()
            for op in node.success if path[id(node)] else node.failure:
                if type(op) is Txn:
                    pending.append(op)
                elif type(op) is KVPut:
                    refusal = self._put_refusal(op, batch)
                    if refusal is not None:
                        return refusal
                    if op.prev_kv:
                        budget -= self._prev_kvs_bytes(DeleteRange(op.key), batch)
                elif type(op) is DeleteRange and op.prev_kv:
                    budget -= self._prev_kvs_bytes(op, batch)
                elif type(op) is TxnRange:
                    try:
                        self._read_revision(op.revision)
                    except Compacted as exc:
                        return CompactedResult(exc.compact_revision)
                    except FutureRevision as exc:
                        return FutureRevisionResult(exc.revision, exc.current_revision)
                    found = self._txn_range(op, batch, None)
                    budget -= sum(len(kv.key) + len(kv.value) for kv in found.kvs)
                if budget < 0:
                    reason = (
                        f"the ranges and prev_kvs of this txn answer over {MAX_RESULT_BYTES:,} bytes; "
                        "give the ranges a limit, range outside the txn, or ask for no prev_kv"
                    )
                    return TxnRefusedResult("range", reason, too_large=True)
        return None

    def _prev_kvs_bytes(self, op: DeleteRange, batch: _Batch) -> int:
        """What the prev_kvs of deleting `op`'s range would carry (the keys and values now),
        counted up to just past `MAX_RESULT_BYTES`."""
        low = user_key(op.key)
        total = 0
        skip = len(USER_PREFIX)
        live = self._live(batch, low, _range_high(low, op.range_end))
        try:
            for k, raw in live:
                total += len(k) - skip + len(decode_value(decode_live(raw).stored))
                if total > MAX_RESULT_BYTES:
                    break
        finally:
            live.close()  # (an engine scan left open holds its iterator)
        return total

    def _txn_run(self, txn: Txn, batch: _Batch, path: dict[int, bool], writer: RevisionWriter) -> TxnResult:
        succeeded = path[id(txn)]
        responses: list[TxnOpResult] = []
        for op in txn.success if succeeded else txn.failure:
            responses.append(self._txn_op(op, batch, path, writer))
        return TxnResult(0, succeeded, tuple(responses))

    def _txn_op(self, op: TxnOp, batch: _Batch, path: dict[int, bool], writer: RevisionWriter) -> TxnOpResult:
        if type(op) is KVPut:
            return self._kv_put(op, writer)
        if type(op) is DeleteRange:
            return self._delete_range(op, writer, batch)
        if type(op) is TxnRange:
            return self._txn_range(op, batch, writer)
        assert type(op) is Txn
        return self._txn_run(op, batch, path, writer)

    def _txn_range(self, op: TxnRange, batch: _Batch, writer: RevisionWriter | None) -> RangeResult:
        """A range inside a transaction: it sees the writes before it in the transaction."""
        now = self._revisions.revision if writer is None or not writer.sub else writer.main
        low = user_key(op.key)
        return self._select(
            batch, low, _range_high(low, op.range_end), op.revision or now, op.options, op.limit, None, now
        )

    def _holding(self, key: bytes, token: int) -> Lock | Result:
        """The lock if `token` holds `key`, else the failure to report."""
        held = self._locks.get(key)
        if held is None:
            return LockNotHeldResult(key)
        if held.token != token:
            return StaleTokenResult(key, token, held.token)
        return held

    # ---- reads ----------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The store's revision: the number of the last change (1 before any)."""
        return self._revisions.revision

    @property
    def compact_revision(self) -> int:
        """History at or below this revision is compacted (0: none)."""
        return self._revisions.compact_revision

    def get(self, key: bytes) -> bytes | None:
        """The (decoded) value of `key`, or None."""
        self._check_usable()
        raw = self._engine.get(user_key(check_user_key(key)))
        return None if raw is None else decode_value(decode_live(raw).stored)

    def get_kv(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """`key` with its revisions and version at `revision` (0: now), or None if it did
        not exist then. Compacted / FutureRevision for a revision outside the history."""
        self._check_usable()
        at = self._read_revision(revision)
        engine = self._engine
        return key_at(engine.get, self._keys, key, engine.get(user_key(check_user_key(key))), at)

    def range_kv(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        max_bytes: int | None = None,
        options: RangeOptions = PLAIN_RANGE,
    ) -> RangeResult:
        """The keys in [key, range_end) at `revision` (0: now), etcd's way: an empty
        `range_end` means `key` alone, b"\\x00" every key from `key` on; at most `limit` keys
        (0: all), `more` if the range held more, `count` all it held; sorted, filtered
        and trimmed by `options` as etcd does (see `_range`). With `max_bytes`,
        RequestTooLarge if the keys and values returned add up to more."""
        self._check_usable()
        at = self._read_revision(revision)
        if type(limit) is not int or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        low = user_key(check_user_key(key))
        high = _range_high(low, _bound(range_end, "range_end"))
        return self._select(_EngineView(self._engine), low, high, at, options, limit, max_bytes)

    def events(
        self, after: int, upto: int = 0, *, max_events: int = 1000, max_bytes: int = 1 << 20
    ) -> tuple[list[WatchEvent], int]:
        """The changes after revision `after` up to `upto` (0: now), in revision order, and the
        last revision they cover (whole revisions, about `max_events` or `max_bytes`): what a
        watch sends. Compacted if the history after `after` is gone."""
        self._check_usable()
        revisions = self._revisions
        if type(after) is not int or after < 0:
            raise ValueError(f"after must be a non-negative int, got {after!r}")
        if after < revisions.compact_revision:
            raise Compacted(revisions.compact_revision)
        top = min(upto or revisions.revision, revisions.revision)
        if after >= top:
            return [], max(after, top)
        return history_events(self._engine, after, top, max_events, max_bytes)

    def previous(self, kv: KeyValue) -> KeyValue | None:
        """The key as it was just before the change `kv` (a watch's prev_kv): None if it did
        not exist then or that is compacted."""
        self._check_usable()
        before = kv.mod_revision - 1
        if before < self._revisions.compact_revision or before < 1:
            return None
        engine = self._engine
        return key_at(engine.get, self._keys, kv.key, engine.get(user_key(kv.key)), before)

    def _select(
        self,
        view: _View,
        low: bytes,
        high: bytes,
        at: int,
        options: RangeOptions,
        limit: int,
        max_bytes: int | None,
        live_at: int = 0,
    ) -> RangeResult:
        """`select_range` of the keys in [low, high) (engine keys) at `at`, read through
        `view` (see `_found`). A current read is decided on the key index (count, order,
        filters, and a sort by version, create or mod revision), and only the records it
        returns are read (none for keys_only): a `limit=1` range over many keys costs
        what one key does. A past revision, or a sort by value, reads every key in range."""
        if high <= low or at < (live_at or self._revisions.revision) or options.sort_target == "value":
            return select_range(self._found(view, low, high, at, live_at), options, limit, max_bytes)
        skip = len(USER_PREFIX)
        index = self._keys
        first, last = index.live_span(low[skip:], high[skip:] if high < USER_END else None)
        count = last - first
        order = key_order(options)
        if order is None:  # filters, or a sort by a revision: decided on the index's entries
            found = (index.key_value(name) for name in index.live.islice(first, last))
            picked = select_range(found, options, limit, None)
            names: Iterable[bytes] = (kv.key for kv in picked.kvs)
            more, count = picked.more, picked.count
        elif options.count_only:
            return RangeResult((), False, count)
        else:
            n = min(limit, count) if limit else count
            names = (
                index.live.islice(first, first + n) if order == "ascend" else index.live.islice(last - n, last, True)
            )
            more = bool(limit) and count > limit
        kvs = []
        left = max_bytes
        for name in names:
            if options.keys_only:
                kv = index.key_value(name)
            else:
                raw = view.read(USER_PREFIX + name)
                if raw is None:
                    raise StorageCorrupted("state key record", None, f"the live record of key {name!r:.60} is missing")
                kv = decode_live(raw).key_value(name)
            if left is not None:
                left -= len(name) + len(kv.value)
                if left < 0:
                    raise too_large(max_bytes)  # early: a range over everything is never held
            kvs.append(kv)
        return RangeResult(tuple(kvs), more, count)

    def _found(self, view: _View, low: bytes, high: bytes, at: int, live_at: int = 0) -> Iterator[KeyValue]:
        """The keys in [low, high) as they were at `at`, in key order, read through `view`
        (the engine, or an apply batch with the changes before it), whose live records
        show revision `live_at` (0: the store's)."""
        if high <= low:
            return
        skip = len(USER_PREFIX)
        if at >= (live_at or self._revisions.revision):
            for k, v in self._live(view, low, high):
                yield decode_live(v).key_value(k[skip:])
            return
        dead_low = DEAD_PREFIX + low[skip:]
        dead_high = DEAD_PREFIX + high[skip:] if high != USER_END else _DEAD_END
        merged = heapq.merge(
            ((k[skip:], v) for k, v in view.scan(low, high)),
            ((k[len(DEAD_PREFIX) :], None) for k, _ in view.scan(dead_low, dead_high)),
            key=lambda item: item[0],
        )
        for name, record in merged:
            kv = key_at(view.read, self._keys, name, record, at)
            if kv is not None:
                yield kv

    def _live(self, view: _View, low: bytes, high: bytes) -> Generator[tuple[bytes, bytes], None, None]:
        """(engine key, live record) of each live key in [low, high) (engine keys), in key
        order, as `view` has them: by point reads where the index holds few keys there."""
        skip = len(USER_PREFIX)
        names = self._keys.live_names(low[skip:], high[skip:] if high < USER_END else None, _POINT_READS)
        if names is None:
            yield from view.scan(low, high)
            return
        read = view.read
        for name in names:
            k = USER_PREFIX + name
            raw = read(k)
            if raw is None:
                raise StorageCorrupted("state key record", None, f"the live record of key {name!r:.60} is missing")
            yield k, raw

    def _read_revision(self, revision: int) -> int:
        if type(revision) is not int or revision < 0:
            raise ValueError(f"revision must be a non-negative int, got {revision!r}")
        current = self._revisions.revision
        if revision == 0:
            return current
        if revision < self._revisions.compact_revision:
            raise Compacted(self._revisions.compact_revision)
        if revision > current:
            raise FutureRevision(revision, current)
        return revision

    def range(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        limit: int | None = None,
        *,
        max_bytes: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs with start <= key < end (None: unbounded), in key order.

        With `max_bytes`, raises RequestTooLarge as soon as the keys and values add up to
        more (the scan stops there, so a huge range never builds a huge list)."""
        self._check_usable()
        low = USER_PREFIX if start is None or start == b"" else user_key(_bound(start, "start"))
        high = USER_END if end is None else user_key(_bound(end, "end"))
        if high <= low:
            return []
        return self._scan(low, high, limit, max_bytes)

    def prefix_scan(
        self, prefix: bytes, limit: int | None = None, *, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with `prefix`, in key order (`max_bytes`: as range)."""
        self._check_usable()
        low = user_key(_bound(prefix, "prefix"))
        return self._scan(low, prefix_end(low), limit, max_bytes)

    def _scan(self, low: bytes, high: bytes, limit: int | None, max_bytes: int | None) -> list[tuple[bytes, bytes]]:
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        skip = len(USER_PREFIX)
        live = self._live(_EngineView(self._engine), low, high)
        pairs = live if limit is None else itertools.islice(live, limit)
        try:
            if max_bytes is None:
                return [(k[skip:], decode_value(decode_live(v).stored)) for k, v in pairs]
            out = []
            left = max_bytes
            for k, v in pairs:
                value = decode_value(decode_live(v).stored)
                left -= len(k) - skip + len(value)
                if left < 0:
                    raise too_large(max_bytes)
                out.append((k[skip:], value))
            return out
        finally:
            live.close()  # an engine scan left part-way ends its iterator now

    def lock(self, key: bytes) -> Lock | None:
        """The lock held on `key`, or None."""
        self._check_usable()
        return self._locks.get(key)

    def locks(self) -> list[Lock]:
        """Every held lock, in key order."""
        self._check_usable()
        return self._locks.all()

    def locks_of(self, owner: PID) -> list[Lock]:
        """The locks `owner` holds, in key order."""
        self._check_usable()
        return self._locks.of(owner)

    def owners(self) -> list[PID]:
        """Every process holding a lock or owning a lease (sorted): a new leader monitors each."""
        self._check_usable()
        return sorted(set(self._locks.owners()) | set(self._leases.owners()))

    def lease(self, lease_id: int) -> Lease | None:
        self._check_usable()
        return self._leases.get(lease_id)

    def leases(self) -> list[Lease]:
        self._check_usable()
        return self._leases.all()

    def leases_of(self, owner: PID) -> list[Lease]:
        self._check_usable()
        return self._leases.of(owner)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        """The keys put with the lease, in key order."""
        self._check_usable()
        return sorted(self._leases.keys.get(lease_id, ()))

    def session(self, client_id: str) -> SessionInfo | None:
        """The live session of `client_id`, or None."""
        self._check_usable()
        s = self._sessions.get(client_id)
        return None if s is None else s.info()

    def sessions(self) -> list[SessionInfo]:
        """Every live session, by client id."""
        self._check_usable()
        return self._sessions.infos()

    def statistics(self) -> StateStatistics:
        return StateStatistics(
            self._applied,
            len(self._locks),
            self._locks.owner_count(),
            len(self._sessions),
            self._sessions.cached_results(),
        )

    # ---- snapshots ------------------------------------------------------------------------

    def snapshot_chunks(self, chunk_size: int = 1 << 20) -> SnapshotStream:
        """A point-in-time snapshot of the whole state (the engine's stream; its
        `last_index` is the applied index it covers)."""
        self._check_usable()
        return self._engine.snapshot_chunks(chunk_size)

    def restore_chunks(self, chunks: Iterable[bytes], last_index: int) -> None:
        """Replace the whole state with a snapshot (from any engine type) covering
        `last_index`, then rebuild the tables. Refuses to go back in the log."""
        if last_index < self._applied:
            raise RaftInvariantError(
                f"snapshot at {last_index} is older than the applied index {self._applied}; "
                "a replica never un-applies entries"
            )
        try:
            self._engine.restore_chunks(chunks, last_index)
        finally:
            self._recover()

    def snapshot(self, chunk_size: int = 8 * 1024) -> tuple[int, SnapshotStream]:
        """For a replica's driver (`global_kv.replica.Machine`): the applied index a
        point-in-time view covers, and its chunks (small: read a few between messages)."""
        stream = self.snapshot_chunks(chunk_size)
        return stream.last_index, stream

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with a Raft snapshot's (`global_kv.replica.Machine`)."""
        self.restore_chunks((snapshot.data,), snapshot.meta.index)

    def state_digest(self, *, sessions: bool = False) -> str:
        """A hash over user data with its history and revisions, and the lock table (and
        sessions if asked), for checking that replicas at the same applied index hold the
        same state."""
        self._check_usable()
        h = hashlib.blake2b(digest_size=32)
        prefixes = [DEAD_PREFIX, LEASE_PREFIX, USER_PREFIX, LOCK_PREFIX, b"m", HISTORY_PREFIX]
        prefixes += [SESSION_PREFIX] if sessions else []
        for prefix in prefixes:
            with self._engine.prefix_scan(prefix) as pairs:
                for k, v in pairs:
                    h.update(len(k).to_bytes(4, "big"))
                    h.update(k)
                    h.update(len(v).to_bytes(8, "big"))
                    h.update(v)
        return h.hexdigest()

    # ---- internals ------------------------------------------------------------------------

    def _load(self) -> None:
        engine = self._engine
        applied = engine.applied_index()
        revisions = Revisions.load(engine)
        keys = KeyIndex.load(engine)
        leases = LeaseTable.load(engine, {k: e.lease for k, e in keys.keys.items() if e.version and e.lease})
        locks = LockTable.load(engine)
        sessions = SessionTable.load(engine)
        self._applied, self._revisions, self._keys = applied, revisions, keys
        self._locks, self._leases, self._sessions = locks, leases, sessions

    def _recover(self) -> None:
        """Make memory match the engine again after a failed batch or a restore; if even
        that fails, refuse all further use (the replica must stop, not guess)."""
        try:
            self._load()
        except BaseException as exc:
            self._broken = exc
            raise
        self._broken = None

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise RaftInvariantError(
                "the state machine could not rebuild its tables from storage after a failure "
                f"({self._broken!r}); restart the replica"
            ) from self._broken


def _txn_revision(result: TxnResult, revision: int) -> TxnResult:
    """`result` with the transaction's revision in it and in every response within."""
    responses: list[TxnOpResult] = []
    for r in result.responses:
        if type(r) is TxnResult:
            r = _txn_revision(r, revision)
        elif type(r) is PutResult:
            r = PutResult(revision, r.prev_kv)
        elif type(r) is DeleteResult:
            r = DeleteResult(revision, r.deleted, r.prev_kvs)
        responses.append(r)
    return TxnResult(revision, result.succeeded, tuple(responses))


def _prev_kvs_refused() -> TxnRefusedResult:
    reason = (
        f"the deleted keys' prev_kv would answer over {MAX_RESULT_BYTES:,} bytes; nothing was deleted: "
        "delete without prev_kv, or a smaller range at a time"
    )
    return TxnRefusedResult("prev_kv", reason, too_large=True)


def _range_high(low: bytes, range_end: bytes) -> bytes:
    """The engine key after a range in etcd's terms (`low` is the engine key of its start)."""
    if range_end == b"":
        return low + b"\x00"  # the key alone
    if range_end == b"\x00":
        return USER_END  # every key from `low` on
    return user_key(range_end)


def _bound(key: object, what: str) -> bytes:
    if type(key) is not bytes:
        raise TypeError(f"{what} must be bytes, got {type(key).__name__}")
    return key


def _refused_acquire(op: Op, result: Result) -> bool:
    """An acquire refused because the key is held changed nothing, and is not remembered:
    its retry is decided afresh. A waiting acquire is retried with the same session tag
    (after a leader change lost its place in line, or when it lost a race to another
    acquire); answered from the session, it would be refused forever, and re-queued and
    re-proposed forever, while the lock is free."""
    return type(result) is LockHeldResult and type(op) is LockAcquire
