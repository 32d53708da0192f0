"""`GlobalReplica`: the Global KV service and its locks on a `RaftReplica`, without I/O.

Everything the shell used to decide lives here, once, for the actor shell and the
simulator alike:

- the edge: every request is checked (`check_request`) before it reaches the core, and
  serving it may fail only with the caller's error, never the replica's crash
  (`contain`): a storage failure or a Raft invariant is re-raised, anything else is
  the request's `InvalidRequest` or a `RequestFailed`;
- writes become commands batched until the next Ready (everything that queued while the
  previous fsync ran goes into one proposal), each remembered by log index and term,
  and answered when its entry is applied, or told `NotLeader` (retry with the same
  session tag) when another leader's entry took its index or a snapshot covered it;
- reads by consistency level: linearizable (the leader confirms leadership with one
  heartbeat round shared by every read that queued meanwhile: ReadIndex), read_index
  (any member asks the leader for the commit index and serves from its own state once
  applied that far), follower (at once, may be stale), lease (the leader's CheckQuorum
  lease, see `RaftConfig.lease_reads`); a round that never comes back is failed after
  `read_round_timeout`;
- a follower hands writes, lock requests and linearizable reads to the leader
  (`Forward`), which answers the caller directly;
- locks: `LockService` (wait queues, TTL timers, owner monitors, grace periods).

Inputs: `request`, `owner_down`, `check` (the lock check period), plus RaftReplica's.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    GlobalKVError,
    InvalidRequest,
    NotLeader,
    RaftInvariantError,
    RequestFailed,
    RequestTooLarge,
    StorageError,
)
from ..protocol import (
    KV_WRITE_REQUESTS,
    LOCK_REQUESTS,
    READ_REQUESTS,
    CompactRequest,
    CompactResponse,
    DeleteRangeResponse,
    GetRequest,
    KVRangeRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
    ListLocksRequest,
    LockRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    TxnResponse,
    UnlockRequest,
    WatchAck,
    WatchCancelRequest,
    WatchCreateRequest,
    command_for,
    range_options,
)
from ..raft import Entry, RaftNode, ReadState, Role, Snapshot, SoftState
from ..state import (
    Applied,
    Command,
    DeleteResult,
    LeaseGrantedResult,
    LeaseRevokedResult,
    PutResult,
    StateMachine,
    TxnResult,
    encode_command,
)
from ._compactor import AutoCompactor
from ._effects import Forward, Reply
from ._host import Host
from ._leases import LeaseService
from ._locks import LockService
from ._options import ReplicaOptions
from ._raft_replica import RaftReplica
from ._validate import check_request
from ._watches import WatchService

__all__ = ["GlobalReplica", "ReplicaCounters"]

_log = logging.getLogger("global_kv.replica")

MAX_HOPS = 2  # a request is forwarded at most once more than it takes to reach the leader


@dataclass
class ReplicaCounters:
    """Counters that outlive one replica (the shell keeps one per node)."""

    rejected: Counter[str] = field(default_factory=Counter)  # reason -> requests refused
    leader_changes: int = 0
    replica_starts: int = 0

    @property
    def replica_restarts(self) -> int:
        return max(0, self.replica_starts - 1)


class _Pending:
    __slots__ = ("caller", "ref", "request", "since", "term")

    def __init__(self, term: int, caller: Any, ref: Any, request: Any, since: float) -> None:
        self.term = term
        self.caller = caller  # None for the leader's own commands (expiry, owner release)
        self.ref = ref
        self.request = request
        self.since = since


class GlobalReplica(RaftReplica):
    """One replica of the Global KV store: a RaftReplica with the KV `StateMachine`."""

    def __init__(
        self,
        raft: RaftNode,
        sm: StateMachine,
        options: ReplicaOptions,
        host: Host,
        *,
        counters: ReplicaCounters | None = None,
        replay_upto: int = 0,
    ) -> None:
        super().__init__(
            raft,
            sm,
            snapshot_interval=options.snapshot_interval,
            snapshot_log_fraction=options.snapshot_log_fraction,
            replay_upto=replay_upto,
        )
        self.sm = sm
        self.options = options
        self.host = host
        self.counters = counters if counters is not None else ReplicaCounters()
        self.locks = LockService(self)
        self.leases = LeaseService(self)
        self.watches = WatchService(self, options.watch_progress_interval)
        self.compactor = AutoCompactor(self, options.auto_compaction_mode, options.auto_compaction_retention)
        self._writes: list[tuple[bytes, Any, Any, Any]] = []  # batched until the next Ready
        self._pending: dict[int, _Pending] = {}  # log index -> who waits for its result
        self._reads: list[tuple[Any, Any, Any]] = []  # batched until the next Ready
        self._read_rounds: dict[bytes, tuple[float, list[tuple[Any, Any, Any]]]] = {}  # ctx -> (started, reads)
        self._ready_reads: list[tuple[int, list[tuple[Any, Any, Any]]]] = []  # waiting for applied >= index
        self._read_ctx = itertools.count(1)
        self._seen_leader: str | None = None
        self.storage_ok = True
        self.writes_total = 0
        self.reads_total = 0
        self.commit_latency: deque[float] = deque(maxlen=4096)
        # (last index of a proposed batch, when): how long a follower has lacked an entry.
        self.proposed_at: deque[tuple[int, float]] = deque(maxlen=4096)

    # -- inputs ----------------------------------------------------------------------------------
    def request(self, caller: Any, ref: Any, request: Any, now: float, hops: int = 0) -> bool:
        """A client's request. True if handled here (answered now or later through effects);
        False for the operations requests the driver serves itself (status, metrics,
        membership, snapshot), which passed the edge checks."""
        try:
            check_request(request, self.options.limits)
            return self._dispatch(caller, ref, request, now, hops)
        except Exception as exc:
            self.reply_error(caller, ref, self.contain(request, exc))
            return True

    def has_work(self) -> bool:
        return bool(self._writes or self._reads) or self.raft.has_ready()

    def owner_down(self, owner: Any, link_lost: bool, now: float) -> None:
        self.locks.on_down(owner, link_lost, now)

    def watcher_down(self, watcher: Any) -> None:
        """A watch client is gone: its watches end."""
        self.watches.watcher_down(watcher)

    def watch_ack(self, watcher: Any, ack: WatchAck, now: float) -> None:
        """A watcher took its events up to `ack.revision`: it may be sent more."""
        if type(ack.watch_id) is int and type(ack.revision) is int:
            self.watches.ack(watcher, ack.watch_id, ack.revision, now)

    def check_pending(self) -> bool:
        """Whether `check` has anything to look at: a driver calls it every lock check
        period while this holds, and not at all otherwise (an idle replica sleeps)."""
        locks = self.locks
        return bool(
            (locks.active and (locks.grace or locks.timers.deadlines or locks.waiters or locks.releasing))
            or self.leases.pending()
            or self.watches.watches
            or self.compactor.mode
            or self._read_rounds
        )

    def check(self, now: float) -> None:
        """The lock check period: TTL expiries, grace periods, waiter deadlines, read rounds."""
        self.locks.check(now)
        self.leases.check(now)
        self.watches.check(now)
        self.compactor.check(now)
        self._expire_read_rounds(now)

    # -- answers ---------------------------------------------------------------------------------
    def reply(self, caller: Any, ref: Any, value: Any) -> None:
        self.effects.append(Reply(caller, ref, True, value))

    def reply_error(self, caller: Any, ref: Any, error: BaseException) -> None:
        self.effects.append(Reply(caller, ref, False, error))

    def contain(self, request: Any, exc: Exception) -> Exception:
        """What a caller is told when serving its request raised `exc` (re-raised if the replica
        itself is broken: a storage failure or a Raft invariant stops it, as they must)."""
        if isinstance(exc, (StorageError, RaftInvariantError)):
            raise exc
        rejected = self.counters.rejected
        if isinstance(exc, RequestTooLarge):
            rejected["too_large"] += 1
        elif isinstance(exc, InvalidRequest):
            rejected["invalid"] += 1
        elif isinstance(exc, GlobalKVError):
            return exc
        elif isinstance(exc, (ValueError, TypeError)):
            # Refused below the edge (a command's own checks): still the request's fault.
            rejected["invalid"] += 1
            return InvalidRequest("request", str(exc))
        else:
            rejected["internal"] += 1
            _log.error("serving %s failed; the replica keeps serving", type(request).__name__, exc_info=exc)
            return RequestFailed(f"{type(exc).__name__}: {exc}")
        return exc

    def not_leader(self) -> NotLeader:
        return NotLeader(self.host.leader_hint(self.leader_id))

    # -- requests --------------------------------------------------------------------------------
    def _dispatch(self, caller: Any, ref: Any, request: Any, now: float, hops: int) -> bool:
        leading = self.role is Role.LEADER
        if isinstance(request, KV_WRITE_REQUESTS):
            if not leading:
                return self._forward(caller, ref, request, hops)
            options = self.options
            self.propose(
                command_for(request, compress=options.compress_values, threshold=options.compress_threshold),
                caller,
                ref,
                request,
            )
            return True
        if isinstance(request, LOCK_REQUESTS):
            if not leading:
                return self._forward(caller, ref, request, hops)
            if isinstance(request, LockRequest):
                self.locks.acquire(caller, ref, request, now)
            elif isinstance(request, UnlockRequest):
                self.locks.release(caller, ref, request, now)
            else:
                self.locks.refresh(caller, ref, request)
            return True
        if isinstance(request, WatchCreateRequest):
            # Any member: from its own applied state (watch load spreads over followers).
            self.watches.create(caller, ref, request, now)
            return True
        if isinstance(request, WatchCancelRequest):
            self.reply(caller, ref, self.watches.cancel(request))
            return True
        if isinstance(request, (LeaseTimeToLiveRequest, LeaseLeasesRequest)):
            # The leader's view: its deadlines are the ones that expire leases.
            if not leading:
                return self._forward(caller, ref, request, hops)
            self.reply(caller, ref, self._lease_answer(request, now))
            return True
        if isinstance(request, ListLocksRequest):
            # The leader's view: it knows the waiters and how long each lock was held.
            if not leading:
                return self._forward(caller, ref, request, hops)
            self.reply(caller, ref, self.locks.list_locks(now))
            return True
        if isinstance(request, READ_REQUESTS):
            level = request.consistency or self.options.read_consistency
            if level in ("follower", "read_index") and not self.is_member():
                # A removed replica (or one not added yet) gets no more entries: its state is
                # frozen, a read_index read would wait forever. Send the client to a member.
                raise NotLeader(self.host.leader_hint(self.leader_id))
            if level == "follower":
                self.reply(caller, ref, self._read_now(request))
                return True
            if level in ("linearizable", "lease") and not leading:
                return self._forward(caller, ref, request, hops)
            self._reads.append((caller, ref, request))
            return True
        return False

    def _forward(self, caller: Any, ref: Any, request: Any, hops: int) -> bool:
        leader = self.leader_id
        if leader is None or leader == self.id or hops >= MAX_HOPS:
            raise self.not_leader()
        self.raft.wake()  # a quiet follower times a silent leader out, as for a read
        self.effects.append(Forward(caller, ref, request, hops + 1, leader))
        return True

    def propose(self, command: Command, caller: Any, ref: Any, request: Any) -> None:
        """Queue a command for the next Ready; `caller` (None: the leader's own) is answered
        with its result."""
        data = encode_command(command)
        self.sm.proposed(data, command)
        self._writes.append((data, caller, ref, request))

    def _read_now(self, request: Any) -> Any:
        self.reads_total += 1
        sm = self.sm
        if isinstance(request, GetRequest):
            return sm.get(request.key)
        budget = self.options.max_response_bytes
        if isinstance(request, KVRangeRequest):
            found = sm.range_kv(
                request.key,
                request.range_end,
                revision=request.revision,
                limit=request.limit,
                max_bytes=budget,
                options=range_options(request),
            )
            return RangeResponse(self._header(sm.revision), found.kvs, found.more, found.count)
        if isinstance(request, RangeRequest):
            return sm.range(request.start, request.end, request.limit or None, max_bytes=budget)
        return sm.prefix_scan(request.prefix, request.limit or None, max_bytes=budget)

    def _serve_read(self, caller: Any, ref: Any, request: Any) -> None:
        try:
            value = self._read_now(request)
        except Exception as exc:
            self.reply_error(caller, ref, self.contain(request, exc))
        else:
            self.reply(caller, ref, value)

    # -- batching: before each Ready -------------------------------------------------------------
    def flush(self, now: float) -> None:
        raft = self.raft
        if self._writes:
            batch, self._writes = self._writes, []
            try:
                if self.role is not Role.LEADER:
                    raise self.not_leader()
                first = raft.propose_batch([data for data, _, _, _ in batch])
            except NotLeader as exc:
                # A transfer in progress (a subclass) says more than the hint.
                error = exc if type(exc) is not NotLeader else self.not_leader()
                for _, caller, ref, request in batch:
                    if self.locks.active:
                        self.locks.settled(request, now)
                    if caller is not None:
                        self.reply_error(caller, ref, error)
            else:
                term = raft.term
                self.proposed_at.append((first + len(batch) - 1, now))
                pending = self._pending
                for offset, (_, caller, ref, request) in enumerate(batch):
                    pending[first + offset] = _Pending(term, caller, ref, request, now)
        if self._reads:
            reads, self._reads = self._reads, []
            ctx = next(self._read_ctx).to_bytes(8, "big")
            try:
                raft.read_index(ctx)
            except NotLeader:
                error = self.not_leader()
                for reader, reader_ref, _ in reads:
                    self.reply_error(reader, reader_ref, error)
            else:
                self._read_rounds[ctx] = (now, reads)

    # -- the state machine -----------------------------------------------------------------------
    def apply(self, entries: Sequence[Entry], now: float) -> Sequence[Applied]:
        try:
            applied = super().apply(entries, now)
        except StorageError:
            self.storage_ok = False
            raise
        pending_of = self._pending
        terms = {e.index: e.term for e in entries} if pending_of else {}
        locks = self.locks
        leases = self.leases
        for item in applied:
            leases.applied(item, now)
            pending = pending_of.pop(item.index, None) if pending_of else None
            if pending is not None and terms.get(item.index) != pending.term:
                self._fail_lost(pending, now)
                pending = None
            request = pending.request if pending is not None else None
            caller = pending.caller if pending is not None else None
            ref = pending.ref if pending is not None else None
            if locks.active:
                answered = locks.on_result(item.index, item.result, request, caller, ref, now)
                locks.settled(request, now)
                if answered:
                    continue
            if pending is None or caller is None:
                continue
            self.writes_total += 1
            self.commit_latency.append(now - pending.since)
            result: Any = item.result
            if result.ok:
                self.reply(caller, ref, self._answer_of(request, result))
            else:
                self.reply_error(caller, ref, result.to_exception())
        if pending_of:
            # Indexes that applied no command of ours (another leader's no-op took them).
            for entry in entries:
                lost = pending_of.pop(entry.index, None)
                if lost is not None:
                    self._fail_lost(lost, now)
        self._serve_ready_reads()
        self.watches.pump(now)
        return applied

    def _answer_of(self, request: Any, result: Any) -> Any:
        """What a client is told of a write that succeeded: etcd's responses for etcd's
        requests (their revision is the write's own, so a retry hears the same), else None
        or a lock's token."""
        kind = type(result)
        if kind is PutResult:
            return PutResponse(self._header(result.revision), result.prev_kv)
        if kind is DeleteResult:
            return DeleteRangeResponse(self._header(result.revision), result.deleted, result.prev_kvs)
        if kind is TxnResult:
            return self._txn_response(result)
        if kind is LeaseGrantedResult:
            header = self._header(self.sm.revision)
            if isinstance(request, LeaseKeepAliveRequest):
                return LeaseKeepAliveResponse(header, result.lease_id, result.ttl_ms / 1000)
            return LeaseGrantResponse(header, result.lease_id, result.ttl_ms / 1000)
        if kind is LeaseRevokedResult:
            return LeaseRevokeResponse(self._header(result.revision))
        if isinstance(request, CompactRequest):
            return CompactResponse(self._header(self.sm.revision))
        return getattr(result, "token", None)

    def _lease_answer(self, request: LeaseTimeToLiveRequest | LeaseLeasesRequest, now: float) -> Any:
        header = self._header(self.sm.revision)
        if isinstance(request, LeaseLeasesRequest):
            return LeaseLeasesResponse(header, tuple(lease.id for lease in self.sm.leases()))
        lease = self.sm.lease(request.lease_id)
        if lease is None:
            return LeaseTimeToLiveResponse(header, request.lease_id, -1, 0)
        remaining = self.leases.remaining(lease.id, now)
        keys = tuple(self.sm.lease_keys(lease.id)) if request.keys else ()
        return LeaseTimeToLiveResponse(header, lease.id, remaining or 0.0, lease.ttl_ms / 1000, keys)

    def _header(self, revision: int) -> ResponseHeader:
        return ResponseHeader(revision, self.term, self.id)

    def _txn_response(self, result: TxnResult) -> TxnResponse:
        header = self._header(result.revision)
        responses: list[Any] = []
        for r in result.responses:
            if type(r) is TxnResult:
                responses.append(self._txn_response(r))
            elif type(r) is PutResult:
                responses.append(PutResponse(header, r.prev_kv))
            elif type(r) is DeleteResult:
                responses.append(DeleteRangeResponse(header, r.deleted, r.prev_kvs))
            else:
                responses.append(RangeResponse(header, r.kvs, r.more, r.count))  # type: ignore[union-attr]
        return TxnResponse(header, result.succeeded, tuple(responses))

    def _fail_lost(self, pending: _Pending, now: float) -> None:
        """Our entry at that index was replaced by another leader's (or covered by a snapshot
        whose outcome this replica cannot tell): retry it, with the same session tag."""
        if self.locks.active:
            self.locks.settled(pending.request, now)
        if pending.caller is not None:
            self.reply_error(pending.caller, pending.ref, self.not_leader())

    def restore(self, snapshot: Snapshot, now: float) -> None:
        super().restore(snapshot, now)
        self.leases.restored()
        self.watches.pump(now)
        for index in [i for i in self._pending if i <= snapshot.meta.index]:
            self._fail_lost(self._pending.pop(index), now)
        self._serve_ready_reads()

    # -- reads -----------------------------------------------------------------------------------
    def read_states(self, states: Sequence[ReadState], now: float) -> None:
        for state in states:
            round_ = self._read_rounds.pop(state.context, None)
            if round_ is not None:
                self._ready_reads.append((state.index, round_[1]))
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

    def _expire_read_rounds(self, now: float) -> None:
        """A ReadIndex request or answer lost on the network never comes back: after a few
        election timeouts, tell its readers to retry (their clients gave up on it already)."""
        if not self._read_rounds:
            return
        limit = now - self.options.read_round_timeout
        for ctx in [c for c, (started, _) in self._read_rounds.items() if started < limit]:
            _, batch = self._read_rounds.pop(ctx)
            for caller, ref, _ in batch:
                self.reply_error(caller, ref, self.not_leader())

    # -- roles -----------------------------------------------------------------------------------
    def role_changed(self, soft: SoftState, was: Role, now: float) -> None:
        if soft.leader is not None and soft.leader != self._seen_leader:
            self._seen_leader = soft.leader
            self.counters.leader_changes += 1
        if soft.role is Role.LEADER:
            self.locks.become_leader(soft.term, now)
        else:
            self.locks.become_follower(self.host.leader_hint(soft.leader))
            if self._read_rounds:
                # Reads waiting for a heartbeat round that can no longer finish: retry now.
                error = NotLeader(self.host.leader_hint(soft.leader))
                for _, batch in self._read_rounds.values():
                    for caller, ref, _ in batch:
                        self.reply_error(caller, ref, error)
                self._read_rounds.clear()
