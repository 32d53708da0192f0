"""`GlobalActor`: the replicated KV service, a LeaderActor with a state machine.

It is the thin I/O shell of the seed's design: requests arrive as calls; writes
become commands proposed in batches (everything that queued while the previous
fsync ran goes into one proposal, one AppendEntries, one fsync); committed entries
are applied to the deterministic `StateMachine` in one storage write per Ready;
the leader answers each client directly when its entry is applied. A follower
forwards writes (and linearizable reads) to the leader with the caller's PID and
ref, so the answer takes no second hop.

Reads by consistency level:
- linearizable: the leader confirms leadership with one heartbeat round shared by
  every read that queued meanwhile (ReadIndex), then serves once applied.
- read_index: any replica asks the leader for the commit index, waits until it
  has applied that far, and serves from its own state.
- follower: served at once from local state (may be stale).
- lease: like linearizable, but the leader answers from its CheckQuorum lease
  without a round (valid while clock drift stays within the margin; see
  `global_kv.raft` `RaftConfig.lease_reads`).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ergo_py import NO_REPLY, PID, MessageDownPID, Ref
from ergo_py.net import EncodeError, MessageTooLarge, NoConnection

from .._errors import (
    GlobalKVError,
    InvalidRequest,
    NotLeader,
    RaftInvariantError,
    RequestFailed,
    RequestTooLarge,
    StorageCorrupted,
    StorageError,
)
from ..leader import LeaderActor
from ..protocol import (
    AddPeerRequest,
    BatchDeleteRequest,
    BatchPutRequest,
    CASRequest,
    DeleteRequest,
    Forwarded,
    GetRequest,
    ListLocksRequest,
    LockRequest,
    MetricsRequest,
    PrefixRequest,
    PutRequest,
    RangeRequest,
    RefreshRequest,
    Relayed,
    RemovePeerRequest,
    SnapshotRequest,
    StatusRequest,
    StatusResponse,
    UnlockRequest,
    command_for,
)
from ..raft import Entry, ReadState, Role, Snapshot, SnapshotMeta, SoftState, Status
from ..state import StateMachine, encode_command
from ..storage import DataDirIdentity, SnapshotStore, StorageEngine, ensure_identity, open_engine
from ._config import GlobalConfig
from ._gc_pauses import gc_pauses
from ._locks import LockService
from ._node_counters import node_counters
from ._validate import Limits, check_forwarded, check_request

__all__ = ["GlobalActor"]

_MAX_HOPS = 2
GLOBAL_PROCESS = "global"  # the name the Application registers this replica under
# Forwarded requests remembered for a reply through their follower (oldest dropped past this).
_MAX_RELAYS = 100_000
# A snapshot is serialized in chunks of this size (~70 pairs of a 100-byte value, ~1 ms here).
_SNAPSHOT_CHUNK_BYTES = 8 * 1024
_KV_WRITES = (PutRequest, DeleteRequest, CASRequest, BatchPutRequest, BatchDeleteRequest)
_READS = (GetRequest, RangeRequest, PrefixRequest)
_LOCK_REQUESTS = (LockRequest, UnlockRequest, RefreshRequest)


class _Pending:
    __slots__ = ("term", "caller", "ref", "request", "since")

    def __init__(self, term: int, caller: PID | None, ref: Ref | None, request: Any, since: float) -> None:
        self.since = since
        self.term = term
        self.caller = caller  # None for the leader's own commands (expiry, owner release)
        self.ref = ref
        self.request = request


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_LOCK_CHECK = _Signal("lock-check")


class GlobalActor(LeaderActor):
    """One replica of the Global KV store. Registered as `global` by the Application."""

    async def init(self, config: GlobalConfig) -> None:  # type: ignore[override]
        if not isinstance(config, GlobalConfig):
            raise TypeError(f"GlobalActor needs a GlobalConfig, got {config!r}")
        self.config = config
        logging.getLogger("global_kv").setLevel(config.log_level.upper())
        gc_pauses()  # counting from the replica's start
        self._engine: Any = None
        self._snapshots: Any = None
        self._engine, self._snapshots = await self._open_storage()
        self.sm = StateMachine(self._engine, session_expiry_entries=config.session_expiry_entries)
        self._writes: list[tuple[bytes, PID | None, Ref | None, Any]] = []  # batched until the next flush
        self._pending: dict[int, _Pending] = {}  # log index -> who waits for its result
        self._reads: list[tuple[PID, Ref, Any]] = []  # batched until the next flush
        self._read_rounds: dict[bytes, list[tuple[PID, Ref, Any]]] = {}  # ReadIndex context -> reads
        self._read_round_started: dict[bytes, float] = {}
        self._ready_reads: list[tuple[int, list[tuple[PID, Ref, Any]]]] = []  # waiting for applied >= index
        self._read_ctx = itertools.count(1)
        self._storage_ok = True
        self._writes_total = 0
        self._reads_total = 0
        self._snapshots_total = 0
        self._commit_latency: deque[float] = deque(maxlen=4096)
        # (last index of a proposed batch, when): how long a follower has lacked an entry.
        self._proposed_at: deque[tuple[int, float]] = deque(maxlen=4096)
        self.locks = LockService(self)
        self._limits = Limits(config.max_request_bytes, config.max_batch_items)
        # Call ref -> the follower that forwarded it: the way back to a caller we cannot dial.
        self._relays: dict[Ref, PID] = {}
        self._counters = node_counters(self.node)
        self._counters.replica_starts += 1
        self._seen_leader: Any = None
        await self.start_raft(config.leader_options())
        self.send_interval(self.pid, _LOCK_CHECK, min(config.lock_check_interval, 100) / 1000)

    async def _open_storage(self) -> tuple[StorageEngine, Any]:
        """The engine, and the snapshot store (None for memory storage)."""
        config = self.config
        if config.storage_type == "memory":
            return open_engine("memory", None), None
        data_dir = Path(config.data_dir or ".")
        # Whose data dir this is, checked before any engine file is opened (start_raft checks
        # again before the Raft log: the same identity, so that one is a no-op).
        identity = DataDirIdentity(config.cluster_id, self.node.name, self.name or GLOBAL_PROCESS)
        if await trio.to_thread.run_sync(ensure_identity, data_dir, identity):
            self.log.info(
                "data dir %s recorded as %s@%s's (cluster %r)",
                data_dir,
                identity.replica,
                self.node.name,
                config.cluster_id,
            )
        engine = await trio.to_thread.run_sync(lambda: open_engine(config.storage_type, os.fspath(data_dir)))
        # Two kept: a crash after a new snapshot is saved but before the log is compacted
        # behind it leaves the log naming the previous one, which must still be there.
        snapshots = await trio.to_thread.run_sync(partial(SnapshotStore, data_dir / "snapshots", retain=2))
        return engine, snapshots

    async def terminate(self, reason: Any) -> None:
        await self.stop_raft()
        for closable in (self._snapshots, self._engine):
            if closable is not None:
                await trio.to_thread.run_sync(closable.close)
        self._snapshots = self._engine = None

    # -- requests ------------------------------------------------------------------------
    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        self._answer(from_, ref, request, 0)
        return NO_REPLY

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        if isinstance(message, Forwarded):
            try:
                check_forwarded(message)
            except InvalidRequest as exc:
                self._counters.rejected["invalid"] += 1
                self.log.warning("dropped a malformed forwarded request from %r: %s", from_, exc)
                return
            if isinstance(from_, PID) and from_.node != message.caller.node:
                self._remember_relay(message.ref, from_)
            self._answer(message.caller, message.ref, message.request, message.hops)
            return
        if isinstance(message, Relayed):
            if isinstance(message.caller, PID) and isinstance(message.ref, Ref):
                self._reply_direct(message.caller, message.ref, message.ok is True, message.value)
            return
        if message is _LOCK_CHECK:
            self.locks.check()
            self._expire_read_rounds()
            return
        if isinstance(message, MessageDownPID):
            self.locks.on_down(message.pid, message.reason)
            return
        self.log.warning("unexpected message %r from %r", message, from_)

    def _answer(self, caller: PID, ref: Ref, request: Any, hops: int) -> None:
        """Answer now, or later (NO_REPLY). A bad request is the caller's error, never our crash."""
        try:
            check_request(request, self._limits)
            result = self._dispatch(caller, ref, request, hops)
        except Exception as exc:
            self.send_response_error(caller, ref, self._request_error(request, exc))
            return
        if result is not NO_REPLY:
            self.send_response(caller, ref, result)

    def _request_error(self, request: Any, exc: Exception) -> Exception:
        """What a caller is told when serving its request raised `exc` (re-raised if the replica
        itself is broken: a storage failure or a Raft invariant stops it, as they must)."""
        if isinstance(exc, (StorageError, RaftInvariantError)):
            raise exc
        if isinstance(exc, RequestTooLarge):
            self._counters.rejected["too_large"] += 1
        elif isinstance(exc, InvalidRequest):
            self._counters.rejected["invalid"] += 1
        elif isinstance(exc, GlobalKVError):
            return exc
        elif isinstance(exc, (ValueError, TypeError)):
            # Refused below the edge (a command's own checks): still the request's fault.
            self._counters.rejected["invalid"] += 1
            return InvalidRequest("request", str(exc))
        else:
            self._counters.rejected["internal"] += 1
            self.log.error("serving %s failed; the replica keeps serving", type(request).__name__, exc_info=exc)
            return RequestFailed(f"{type(exc).__name__}: {exc}")
        return exc

    # -- replies: direct, or back through the follower that forwarded the request ---------------
    def _remember_relay(self, ref: Ref, via: PID) -> None:
        relays = self._relays
        if len(relays) >= _MAX_RELAYS:
            del relays[next(iter(relays))]
        relays[ref] = via

    def send_response(self, to: PID, ref: Ref, value: Any) -> None:
        self._reply(to, ref, True, value)

    def send_response_error(self, to: PID, ref: Ref, error: BaseException) -> None:
        self._reply(to, ref, False, error)

    def _reply(self, to: PID, ref: Ref, ok: bool, value: Any) -> None:
        """The caller of a forwarded request may sit on a node without a listener that has no
        link to us (a dial-only client): then the answer goes back the way the request came."""
        via = self._relays.pop(ref, None) if self._relays else None
        if via is not None and not self.node.can_reach(to.node):
            try:
                self.send(via, Relayed(to, ref, ok, value))
            except (EncodeError, MessageTooLarge) as exc:
                self.send(via, Relayed(to, ref, False, self._unsendable(exc)))
            return
        self._reply_direct(to, ref, ok, value)

    def _reply_direct(self, to: PID, ref: Ref, ok: bool, value: Any) -> None:
        try:
            if ok:
                super().send_response(to, ref, value)
            else:
                super().send_response_error(to, ref, value)
        except (EncodeError, MessageTooLarge) as exc:
            super().send_response_error(to, ref, self._unsendable(exc))
        except NoConnection:
            pass  # this node's network is closing: the caller hears of it as a lost link

    def _unsendable(self, exc: Exception) -> GlobalKVError:
        self._counters.rejected["too_large"] += 1
        return RequestTooLarge("reply", f"the reply cannot be sent ({exc}); ask for less (a limit)")

    def _dispatch(self, caller: PID, ref: Ref, request: Any, hops: int) -> Any:
        if isinstance(request, _KV_WRITES):
            if self._role is not Role.LEADER:
                return self._forward(caller, ref, request, hops)
            self._propose(self._encode_write(request), caller, ref, request)
            return NO_REPLY
        if isinstance(request, _LOCK_REQUESTS):
            if self._role is not Role.LEADER:
                return self._forward(caller, ref, request, hops)
            if isinstance(request, LockRequest):
                self.locks.acquire(caller, ref, request)
            elif isinstance(request, UnlockRequest):
                self.locks.release(caller, ref, request)
            else:
                self.locks.refresh(caller, ref, request)
            return NO_REPLY
        if isinstance(request, ListLocksRequest):
            # The leader's view: it knows the waiters and how long each lock was held.
            if self._role is not Role.LEADER:
                return self._forward(caller, ref, request, hops)
            return self.locks.list_locks()
        if isinstance(request, _READS):
            level = request.consistency or self.config.read_consistency
            if level in ("follower", "read_index") and not self._is_member():
                # A removed replica (or one not added yet) gets no more entries: its state is
                # frozen, a read_index read would wait forever. Send the client to a member.
                raise NotLeader(self.leader_process_id())
            if level == "follower":
                return self._read_now(request)
            if level in ("linearizable", "lease") and self._role is not Role.LEADER:
                return self._forward(caller, ref, request, hops)
            self._reads.append((caller, ref, request))
            self.kick()
            return NO_REPLY
        if isinstance(request, StatusRequest):
            return self.status()
        if isinstance(request, AddPeerRequest):
            # Checked first (the node connects and runs a replica of this cluster), then proposed.
            return self.join(request.peer, reply_to=(caller, ref))
        if isinstance(request, RemovePeerRequest):
            return self.leave(request.peer)
        if isinstance(request, SnapshotRequest):
            return self._snapshot_now()
        if isinstance(request, MetricsRequest):
            return self.metrics()
        raise GlobalKVError(f"unknown request {type(request).__name__}: {request!r}")

    def _propose(self, data: bytes, caller: PID | None, ref: Ref | None, request: Any) -> None:
        """Queue a command for the next batch proposal (caller None: the leader's own)."""
        self._writes.append((data, caller, ref, request))
        self.kick()

    def _forward(self, caller: PID, ref: Ref, request: Any, hops: int) -> Any:
        leader = self.leader_process_id()
        if leader is None or leader.node == self.node.name or hops >= _MAX_HOPS:
            raise NotLeader(leader)
        if leader.node not in self.node.connected_nodes():
            # No link to the leader we last heard of: it is probably gone, and a forwarded
            # request would be lost. Let the client retry elsewhere now, not at its timeout.
            raise NotLeader(None)
        self.send(leader, Forwarded(caller, ref, request, hops + 1))
        return NO_REPLY

    def _encode_write(self, request: Any) -> bytes:
        return encode_command(
            command_for(request, compress=self.config.compress_values, threshold=self.config.compress_threshold)
        )

    def _read_now(self, request: Any) -> Any:
        self._reads_total += 1
        if isinstance(request, GetRequest):
            return self.sm.get(request.key)
        budget = self.config.max_response_bytes
        if isinstance(request, RangeRequest):
            return self.sm.range(request.start, request.end, request.limit or None, max_bytes=budget)
        return self.sm.prefix_scan(request.prefix, request.limit or None, max_bytes=budget)

    def _serve_read(self, caller: PID, ref: Ref, request: Any) -> None:
        try:
            value = self._read_now(request)
        except Exception as exc:
            self.send_response_error(caller, ref, self._request_error(request, exc))
        else:
            self.send_response(caller, ref, value)

    # -- batching: runs before each Ready drain ------------------------------------------------
    async def raft_flush(self) -> None:
        if self._writes:
            batch, self._writes = self._writes, []
            try:
                first = self.propose_commands([data for data, _, _, _ in batch])
            except NotLeader as exc:
                for _, caller, ref, request in batch:
                    if self.locks.active:
                        self.locks.settled(request)
                    if caller is not None:
                        self.send_response_error(caller, ref, exc)  # type: ignore[arg-type]
            else:
                term = self.raft.term
                now = trio.current_time()
                self._proposed_at.append((first + len(batch) - 1, now))
                for offset, (_, caller, ref, request) in enumerate(batch):
                    self._pending[first + offset] = _Pending(term, caller, ref, request, now)
        if self._reads:
            reads, self._reads = self._reads, []
            ctx = next(self._read_ctx).to_bytes(8, "big")
            try:
                self.request_read_index(ctx)
            except NotLeader as exc:
                for reader, reader_ref, _ in reads:
                    self.send_response_error(reader, reader_ref, exc)
            else:
                self._read_rounds[ctx] = reads
                self._read_round_started[ctx] = trio.current_time()

    # -- the state machine ------------------------------------------------------------------------
    def raft_applied_index(self) -> int | None:
        return self.sm.applied_index or None

    async def raft_apply(self, entries: Sequence[Entry]) -> None:
        try:
            applied = self.sm.apply(entries)
        except StorageError:
            self._storage_ok = False
            raise
        terms = {e.index: e.term for e in entries} if self._pending else {}
        for item in applied:
            pending = self._pending.pop(item.index, None) if self._pending else None
            if pending is not None and terms.get(item.index) != pending.term:
                self._fail_lost(pending)
                pending = None
            request = pending.request if pending is not None else None
            caller = pending.caller if pending is not None else None
            if self.locks.active:
                answered = self.locks.on_result(
                    item.index, item.result, request, caller, pending.ref if pending else None
                )
                self.locks.settled(request)
                if answered:
                    continue
            if caller is None:
                continue
            self._writes_total += 1
            self._commit_latency.append(trio.current_time() - pending.since)  # type: ignore[union-attr]
            if item.result.ok:
                self.send_response(caller, pending.ref, _reply_value(item.result))  # type: ignore[union-attr,arg-type]
            else:
                self.send_response_error(caller, pending.ref, item.result.to_exception())  # type: ignore[union-attr,arg-type]
        if self._pending:
            # Indexes that applied no command of ours (another leader's no-op took them).
            for entry in entries:
                pending = self._pending.pop(entry.index, None)
                if pending is not None:
                    self._fail_lost(pending)
        self._serve_ready_reads()

    def _expire_read_rounds(self) -> None:
        """A ReadIndex request or answer lost on the network never comes back: after a few
        election timeouts, tell its readers to retry (their clients gave up on it already)."""
        if not self._read_round_started:
            return
        limit = trio.current_time() - 10 * self.config.election_timeout_max / 1000
        for ctx in [c for c, t in self._read_round_started.items() if t < limit]:
            del self._read_round_started[ctx]
            for caller, ref, _ in self._read_rounds.pop(ctx, ()):
                self.send_response_error(caller, ref, NotLeader(self.leader_process_id()))

    def _fail_lost(self, pending: _Pending) -> None:
        """Our entry at that index was replaced by another leader's: it never commits. Safe to retry."""
        if self.locks.active:
            self.locks.settled(pending.request)
        if pending.caller is not None:
            self.send_response_error(pending.caller, pending.ref, NotLeader(self.leader_process_id()))  # type: ignore[arg-type]

    async def raft_read_states(self, states: Sequence[ReadState]) -> None:
        for state in states:
            batch = self._read_rounds.pop(state.context, None)
            self._read_round_started.pop(state.context, None)
            if batch is not None:
                self._ready_reads.append((state.index, batch))
        self._serve_ready_reads()

    def _serve_ready_reads(self) -> None:
        if not self._ready_reads:
            return
        applied = self.sm.applied_index
        waiting = []
        for index, batch in self._ready_reads:
            if index > applied:
                waiting.append((index, batch))
                continue
            for caller, ref, request in batch:
                self._serve_read(caller, ref, request)
        self._ready_reads = waiting

    async def raft_role_changed(self, soft: SoftState) -> None:
        if soft.leader is not None and soft.leader != self._seen_leader:
            self._seen_leader = soft.leader
            self._counters.leader_changes += 1
        if soft.role is Role.LEADER:
            self.locks.become_leader()
        else:
            self.locks.become_follower()
        if soft.role is not Role.LEADER and self._read_rounds:
            # Reads waiting for a heartbeat round that can no longer finish: let them retry now.
            error = NotLeader(self.leader_process_id())
            for batch in self._read_rounds.values():
                for caller, ref, _ in batch:
                    self.send_response_error(caller, ref, error)
            self._read_rounds.clear()
            self._read_round_started.clear()

    # -- snapshots ------------------------------------------------------------------------------
    def raft_snapshot_chunks(self) -> tuple[int, Iterable[bytes]]:
        # A point-in-time view of the engine (a LevelDB snapshot), read in small chunks so
        # that LeaderActor can serialize it between messages.
        stream = self.sm.snapshot_chunks(_SNAPSHOT_CHUNK_BYTES)
        return stream.last_index, stream

    async def raft_restore(self, snapshot: Snapshot) -> None:
        if snapshot.meta.index > self.sm.applied_index:
            self.sm.restore_chunks([snapshot.data], snapshot.meta.index)
        # Requests waiting on entries the snapshot covers: their outcome is unknown here.
        for index in [i for i in self._pending if i <= snapshot.meta.index]:
            self._fail_lost(self._pending.pop(index))
        self._serve_ready_reads()

    async def raft_save_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshots_total += 1
        if self._snapshots is not None:
            await trio.to_thread.run_sync(self._snapshots.save, snapshot.meta, [snapshot.data])

    async def raft_load_snapshot(self, meta: SnapshotMeta) -> bytes:
        if self._snapshots is None:
            return b""
        reader = await trio.to_thread.run_sync(self._snapshots.open, meta)
        if reader is None:
            raise StorageCorrupted(
                str(self._snapshots.path),
                meta.index,
                f"the Raft log starts after a snapshot (term {meta.term}) not found",
            )
        try:
            return b"".join(reader.chunks())
        finally:
            reader.close()

    def _snapshot_now(self) -> int:
        """Force a snapshot and log compaction at the applied index (SnapshotRequest)."""
        self.request_snapshot()
        return self.sm.applied_index

    def metrics(self) -> dict[str, Any]:
        """Counters and gauges under the seed's metric names (without the `global_` prefix)."""
        st = self.raft_status()
        latency = sorted(self._commit_latency)

        def quantile(q: float) -> float:
            return latency[min(len(latency) - 1, int(q * len(latency)))] * 1000 if latency else 0.0

        return {
            "is_leader": int(st.role is Role.LEADER),
            "term": st.term,
            "peers_count": len(self.members()),
            "commit_index": st.commit,
            "last_applied": self.sm.applied_index,
            "replication_match": {peer: p.match for peer, p in st.peers.items()},
            "replication_lag_ms": self._replication_lag_ms(st) if st.role is Role.LEADER else {},
            "gc_pause": gc_pauses().report(),
            "writes_total": self._writes_total,
            "reads_total": self._reads_total,
            "locks_acquired_total": self.locks.acquired_total,
            "locks_released_total": self.locks.released_total,
            "commit_latency_ms": {"0.5": quantile(0.5), "0.95": quantile(0.95), "0.99": quantile(0.99)},
            "storage_size_bytes": self._engine.size() if self._engine is not None else 0,
            "log_entries": max(0, st.last_index - st.snapshot_index),
            "snapshots_total": self._snapshots_total,
            "locks_held": len(self.sm.locks()),
            "lock_waiters": self.locks.waiter_count(),
            "leader_changes_total": self._counters.leader_changes,
            "replica_restarts_total": self._counters.replica_restarts,
            "requests_rejected_total": dict(self._counters.rejected),
        }

    def _replication_lag_ms(self, st: Status) -> dict[str, float]:
        """Per follower: how long ago the oldest entry it still lacks was proposed (0 when it
        holds everything). Exact for the last 4,096 proposal batches; older than that, the
        oldest remembered batch bounds it from below."""
        now = trio.current_time()
        lag: dict[str, float] = {}
        for peer, progress in st.peers.items():
            if peer == self.raft_id:
                continue
            ms = 0.0
            if progress.match < st.last_index:
                for last, at in self._proposed_at:
                    if last > progress.match:
                        ms = round((now - at) * 1000, 3)
                        break
            lag[peer] = ms
        return lag

    # -- status -----------------------------------------------------------------------------------
    def _is_member(self) -> bool:
        """In this replica's own configuration (the latest in its log, committed or not)."""
        conf = self.raft.conf
        return self.raft_id in conf.voters or self.raft_id in conf.learners

    def status(self) -> StatusResponse:
        st = self.raft_status()
        # A removed replica still remembers its last leader, but takes no part any more.
        has_quorum = self._is_member() and (st.role is Role.LEADER or st.leader is not None)
        return StatusResponse(
            node_id=self.pid,
            is_leader=st.role is Role.LEADER,
            leader=self.leader_process_id(),
            term=st.term,
            commit_index=st.commit,
            last_applied=self.sm.applied_index,
            peers=tuple(self.members()),
            lock_count=len(self.sm.locks()),
            storage_size=self._engine.size() if self._engine is not None else 0,
            has_quorum=has_quorum,
            commit_lag=max(0, st.commit - self.sm.applied_index),
            storage_ok=self._storage_ok,
        )


def _reply_value(result: Any) -> Any:
    """What a successful write returns to the client: None, or a lock's token."""
    token = getattr(result, "token", None)
    return token
