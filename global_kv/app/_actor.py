"""`GlobalActor`: the replicated KV service, a LeaderActor driving a `GlobalReplica`.

It is the I/O shell of the seed's design and nothing more: requests arrive as calls
and go to the pure replica (`global_kv.replica.GlobalReplica`), which decides
everything (the edge checks, batching, read rounds, forwarding, locks, waiters, TTLs,
grace periods) and answers through effects that this shell carries out: replies
(directly, or back through the follower that forwarded a request from a client this
node cannot dial), forwards to the leader, monitors of lock owners. Committed entries
are applied to the `StateMachine` on the node's storage engine in one storage write
per Ready. The simulator drives the same replica.

Operations requests (status, metrics, add/remove a peer, a snapshot) are answered
here: they are about this process, its storage and its node.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import trio

from ergo_py import NO_REPLY, NOCONNECTION, PID, MessageDownPID, Node, ProcessID, Ref
from ergo_py.net import EncodeError, MessageTooLarge, NoConnection

from .. import _trace
from .._errors import GlobalKVError, InvalidRequest, NotLeader, RequestTooLarge
from ..leader import LeaderActor, leader_hint, peer_process
from ..protocol import (
    AddPeerRequest,
    Forwarded,
    MetricsRequest,
    Relayed,
    RemovePeerRequest,
    SnapshotRequest,
    StatusRequest,
    StatusResponse,
    WatchAck,
)
from ..raft import RaftNode, Role, Status
from ..replica import (
    Effect,
    Forward,
    GlobalReplica,
    Limits,
    Notify,
    ReplicaOptions,
    UnwatchWatcher,
    WatchWatcher,
    check_forwarded,
)
from ..state import StateMachine
from ..storage import DataDirIdentity, StorageEngine, ensure_identity, open_engine
from ._config import GlobalConfig
from ._gc_pauses import gc_pauses
from ._node_counters import node_counters

__all__ = ["GlobalActor"]

GLOBAL_PROCESS = "global"  # the name the Application registers this replica under
# Forwarded requests remembered for a reply through their follower (oldest dropped past this).
_MAX_RELAYS = 100_000


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_LOCK_CHECK = _Signal("lock-check")


class _NodeHost:
    """The replica's questions, answered by this node (see `global_kv.replica.Host`)."""

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    def is_connected(self, node: str) -> bool:
        return self._node.is_connected(node)

    def can_reach(self, node: str) -> bool:
        return self._node.can_reach(node)

    def is_gone(self, owner: Any) -> bool:
        return owner.node == self._node.name and not self._node.is_alive(owner)

    def leader_hint(self, raft_id: str | None) -> ProcessID | None:
        return leader_hint(raft_id)


def replica_options(config: GlobalConfig) -> ReplicaOptions:
    """What the pure replica decides by, from the replica's configuration (ms -> s)."""
    election_max = config.election_timeout_max / 1000
    return ReplicaOptions(
        compress_values=config.compress_values,
        compress_threshold=config.compress_threshold,
        read_consistency=config.read_consistency,
        max_response_bytes=config.max_response_bytes,
        default_lock_ttl=float(config.default_lock_ttl),
        max_lock_waiters=config.max_lock_waiters,
        expiry_retry=2 * election_max,
        owner_grace_period=config.owner_grace_period / 1000,
        read_round_timeout=10 * election_max,
        snapshot_interval=config.snapshot_interval,
        watch_progress_interval=config.watch_progress_interval / 1000,
        auto_compaction_mode=config.auto_compaction_mode,
        auto_compaction_retention=float(config.auto_compaction_retention),
        limits=Limits(config.max_request_bytes, config.max_batch_items),
    )


class GlobalActor(LeaderActor):
    """One replica of the Global KV store. Registered as `global` by the Application."""

    replica: GlobalReplica

    async def init(self, config: GlobalConfig) -> None:  # type: ignore[override]
        if not isinstance(config, GlobalConfig):
            raise TypeError(f"GlobalActor needs a GlobalConfig, got {config!r}")
        self.config = config
        logging.getLogger("global_kv").setLevel(config.log_level.upper())
        gc_pauses()  # counting from the replica's start
        self._engine: Any = None
        self._engine = await self._open_engine()
        self.sm = StateMachine(self._engine, session_expiry_entries=config.session_expiry_entries)
        # Call ref -> the follower that forwarded it: the way back to a caller we cannot dial.
        self._relays: dict[Ref, PID] = {}
        self._watchers: dict[PID, Ref] = {}  # watch clients -> our monitor of each
        self._counters = node_counters(self.node)
        self._counters.replica_starts += 1
        options, host, counters = replica_options(config), _NodeHost(self.node), self._counters

        def replica(raft: RaftNode, replay_upto: int) -> GlobalReplica:
            return GlobalReplica(raft, self.sm, options, host, counters=counters, replay_upto=replay_upto)

        # The lock check period runs only while the replica has something to check.
        self._check_period = min(config.lock_check_interval, 100) / 1000
        self._checker = self.alarm(_LOCK_CHECK)
        await self.start_raft(config.leader_options(), self.sm, replica)
        self._arm_check()

    async def _open_engine(self) -> StorageEngine:
        config = self.config
        if config.storage_type == "memory":
            return open_engine("memory", None)
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
        return await trio.to_thread.run_sync(lambda: open_engine(config.storage_type, os.fspath(data_dir)))

    async def terminate(self, reason: Any) -> None:
        await self.stop_raft()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await trio.to_thread.run_sync(engine.close)

    @property
    def locks(self) -> Any:
        """The leader's lock service (wait queues, timers, monitors) in the replica."""
        return self.replica.locks

    # -- requests --------------------------------------------------------------------------------
    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        await self._answer(from_, ref, request, 0)
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
            await self._answer(message.caller, message.ref, message.request, message.hops)
            return
        if isinstance(message, Relayed):
            if isinstance(message.caller, PID) and isinstance(message.ref, Ref):
                self._reply_direct(message.caller, message.ref, message.ok is True, message.value)
            return
        if message is _LOCK_CHECK:
            self.replica.check(self.now())
            await self._after_input()
            return
        if isinstance(message, WatchAck):
            if isinstance(from_, PID):
                self.replica.watch_ack(from_, message, self.now())
                await self._after_input()
            return
        if isinstance(message, MessageDownPID):
            if self._monitors.pop(message.pid, None) is not None:
                self.replica.owner_down(message.pid, message.reason == NOCONNECTION, self.now())
                await self._after_input()
            elif self._watchers.pop(message.pid, None) is not None:
                self.replica.watcher_down(message.pid)
            return
        self.log.warning("unexpected message %r from %r", message, from_)

    async def _answer(self, caller: PID, ref: Ref, request: Any, hops: int) -> None:
        """Answer now, or later. A bad request is the caller's error, never our crash."""
        replica = self.replica
        if _trace.ENABLED:
            _trace.record("request", hops, caller.node)
        if not replica.request(caller, ref, request, self.now(), hops):
            try:
                result = self._operation(caller, ref, request)
            except Exception as exc:
                self._reply(caller, ref, False, replica.contain(request, exc))
            else:
                if result is not NO_REPLY:
                    self._reply(caller, ref, True, result)
        await self._after_input()

    async def run_effects(self) -> None:
        await super().run_effects()
        self._arm_check()

    def _arm_check(self) -> None:
        if self._checker.deadline == math.inf and self.replica.check_pending():
            self._checker.set_at(trio.current_time() + self._check_period)

    async def _after_input(self) -> None:
        await self.run_effects()
        if self.replica.has_work():
            self.kick()
        else:
            self.rearm()

    def _operation(self, caller: PID, ref: Ref, request: Any) -> Any:
        if isinstance(request, StatusRequest):
            return self.status()
        if isinstance(request, AddPeerRequest):
            # Checked first (the node connects and runs a replica of this cluster), then proposed.
            return self.join(request.peer, reply_to=(caller, ref))
        if isinstance(request, RemovePeerRequest):
            return self.leave(request.peer)
        if isinstance(request, SnapshotRequest):
            self.request_snapshot()
            return self.sm.applied_index
        if isinstance(request, MetricsRequest):
            return self.metrics()
        raise TypeError(f"unknown request {type(request).__name__}")

    # -- effects ---------------------------------------------------------------------------------
    async def handle_effect(self, effect: Effect) -> None:
        kind = type(effect)
        if kind is Forward:
            self._forward(effect)  # type: ignore[arg-type]
        elif kind is Notify:
            self.send(effect.to, effect.message)  # type: ignore[union-attr]
        elif kind is WatchWatcher:
            watcher = effect.watcher  # type: ignore[union-attr]
            if watcher not in self._watchers:
                self._watchers[watcher] = self.monitor(watcher)
        elif kind is UnwatchWatcher:
            ref = self._watchers.pop(effect.watcher, None)  # type: ignore[union-attr]
            if ref is not None:
                self.demonitor(ref)
        else:
            await super().handle_effect(effect)

    def _forward(self, effect: Forward) -> None:
        name, node = peer_process(effect.leader_id)
        if node not in self.node.connected_nodes():
            # No link to the leader we last heard of: it is probably gone, and a forwarded
            # request would be lost. Let the client retry elsewhere now, not at its timeout.
            self._reply(effect.caller, effect.ref, False, NotLeader(None))
            return
        self.send(ProcessID(name, node), Forwarded(effect.caller, effect.ref, effect.request, effect.hops))

    def deliver_reply(self, caller: Any, ref: Any, ok: bool, value: Any) -> None:
        self._reply(caller, ref, ok, value)

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
        if _trace.ENABLED:
            _trace.record("reply", 0, to.node)
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

    # -- operations ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Counters and gauges under the seed's metric names (without the `global_` prefix)."""
        st = self.raft_status()
        replica = self.replica
        latency = sorted(replica.commit_latency)

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
            "writes_total": replica.writes_total,
            "reads_total": replica.reads_total,
            "locks_acquired_total": replica.locks.acquired_total,
            "locks_released_total": replica.locks.released_total,
            "commit_latency_ms": {"0.5": quantile(0.5), "0.95": quantile(0.95), "0.99": quantile(0.99)},
            "storage_size_bytes": self._engine.size() if self._engine is not None else 0,
            "log_entries": max(0, st.last_index - st.snapshot_index),
            "snapshots_total": self.snapshots_total,
            "locks_held": len(self.sm.locks()),
            "lock_waiters": replica.locks.waiter_count(),
            "revision": self.sm.revision,
            "compact_revision": self.sm.compact_revision,
            "leases_held": len(self.sm.leases()),
            "lease_expiries_total": replica.leases.expired_total,
            "watchers": replica.watches.count(),
            "watch_events_sent_total": replica.watches.events_sent,
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
                for last, at in self.replica.proposed_at:
                    if last > progress.match:
                        ms = round((now - at) * 1000, 3)
                        break
            lag[peer] = ms
        return lag

    def status(self) -> StatusResponse:
        replica = self.replica
        replica.confirm_leadership()
        st = self.raft_status()
        # A removed replica still remembers its last leader, but takes no part any more.
        has_quorum = replica.is_member() and (st.role is Role.LEADER or st.leader is not None)
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
            storage_ok=replica.storage_ok,
            client_url=self.config.client_url,
        )
