"""`LeaderActor`: the project's one Raft shell, as an actor that users subclass.

It owns a sans-IO `RaftNode`, ticks it from the clock (before each input, every tick
that had fallen when the input arrived in the mailbox, and an `Alarm` wakes the shell only
for the next tick the core says can do something: an idle follower sleeps until its
election timeout, which every heartbeat pushes back, and a leader wakes once per
heartbeat), carries its messages
between replicas as ergo_py messages (to `ProcessID`s, so a restarted peer is
reached under its name), persists what each Ready asks before sending what
depends on it, and tells the subclass about leadership and membership.

It is a driver only: every decision is the pure `global_kv.replica.RaftReplica`'s
(or a subclass's, `GlobalReplica` for GlobalActor), which the simulator drives too.
This shell turns mailbox messages into the replica's inputs, and its effects and
Readies into I/O: Raft messages as ergo_py messages, fsyncs in a worker thread,
snapshot files, monitors, replies, and the callbacks below.

Used as it is, it is leader election for a group of processes (the seed's
`leader.Actor`, but on full Raft: PreVote, CheckQuorum, log up-to-date checks,
persisted term and vote, so never two leaders in one term), on a state machine that
holds nothing (`NullMachine`). A replicated service hands `start_raft` its state
machine as an object (`global_kv.replica.Machine`: apply / snapshot / restore, as
hashicorp/raft's FSM) and, if it serves requests, a replica built on it.

Membership: `join(process_id, reply_to=(caller, ref))` first checks, in a helper process
and within `join_timeout`, that the node can be connected to (cookie and all) and runs a
replica of this cluster under that name; only then is the change proposed, and the
caller answered with its log index or `ConfChangeRejected(change, reason)`.

Identity and lost logs: a data dir records whose replica it is (`storage.ensure_identity`),
and a replica started on another's refuses to start (`DataDirMismatch`). A follower whose
acknowledged log is gone (`LogLost` from the core: an emptied data dir) takes no further
part in Raft and, by default, stops its node with that error (`handle_log_lost`).

Order of work for one Ready (the core's contract): send `messages`; persist
snapshot, entries and hard state (one fsync: in a worker thread so the node keeps
running, or, for a small Ready with nothing to overlap, no mail waiting and its messages
already written to the sockets (`flush_sends`), in the loop itself, which saves two thread
handoffs); send
`persisted_messages`; then the replica restores, applies, answers read
states and advances (`persisted`), and its effects are carried out.
Batching comes for free: while the shell waits for an fsync in a worker thread its
mailbox fills, and the next Ready carries everything that arrived meanwhile.

A subclass that hands the replica input from its own `handle_call` or `handle_message`
calls `self.now()` first (GlobalActor does), so the core has its ticks up to that
input's arrival.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ergo_py import NO_REPLY, PID, Actor, ErgoError, MessageDownPID, ProcessID, Ref

from .. import _trace
from .._errors import ConfChangeRejected, LogLost, NotLeader, StorageCorrupted
from ..raft import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfChangeType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    RaftNode,
    Role,
    Snapshot,
    SnapshotMeta,
    Status,
)
from ..replica import (
    Demonitor,
    Effect,
    Machine,
    MembershipChanged,
    Monitor,
    NullMachine,
    RaftReplica,
    Reply,
    RoleChanged,
    needs_sync,
)
from ._options import LeaderOptions
from ._wire import JoinProbe, JoinProbeAck, RaftEnvelope, peer_id, peer_process

__all__ = ["LeaderActor"]

_log = logging.getLogger("global_kv.leader")


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TICK = _Signal("tick")
# Entry bytes up to which a Ready with nothing else waiting is fsynced in the loop itself;
# an inline fsync slower than _INLINE_SYNC_SLOW sends the next _THREADED_AFTER_SLOW to a thread.
_INLINE_SYNC = 64 * 1024
_INLINE_SYNC_SLOW = 0.02
_THREADED_AFTER_SLOW = 100
# At most this many ticks given at once (100 s of 10 ms ticks): past it every timer of the
# core has long fired, and a member asleep for hours (a removed one) does not spin on ticks.
_MAX_CATCH_UP = 10_000
_FLUSH = _Signal("flush")
_SNAPSHOT_STEP = _Signal("snapshot-step")
_PERSIST = _Signal("persist")
_PROBE = _Signal("probe")
_PROBE_TIMEOUT = _Signal("probe-timeout")

# How long one step of building a snapshot may run before the replica reads its mail
# again: a whole-state snapshot in one go stalled every commit behind it (~40 ms for
# 10,000 keys; the W1 p99 of benchmarks/bench_cluster.py went from 29 to 77 ms).
_SNAPSHOT_STEP_SECONDS = 0.002
# How long a stopping replica waits for its snapshot to be written before closing the log.
_PERSIST_WAIT_SECONDS = 10.0
# At most one warning per sending replica and foreign cluster id in this many seconds.
_FOREIGN_WARN_SECONDS = 10.0


class _SnapshotPersisted:
    """From a `_SnapshotPersister` to its replica: the snapshot at `index` is durable and the
    log on disk compacted behind it, or `error` says why not."""

    __slots__ = ("error", "index")

    def __init__(self, index: int, error: BaseException | None) -> None:
        self.index = index
        self.error = error


class _SnapshotPersister(Actor):
    """Writes one snapshot and compacts the log on disk behind it, then tells its replica.

    A process of its own so that the replica keeps replicating while the files are
    written (~7-17 ms for a 1.2 MB snapshot and 4-12 ms for the log here, which stalled
    every commit behind them). Linked to the replica, but once at work it finishes both
    writes (the replica waits for that before closing the log), then ends.
    """

    async def init(self, owner: LeaderActor, snapshot: Snapshot, store: Any, done: trio.Event) -> None:
        self._owner = owner
        self._snapshot = snapshot
        self._store = store
        self._done = done
        self.send(self.pid, _PERSIST)

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        if message is not _PERSIST:
            return
        owner, meta = self._owner, self._snapshot.meta
        error: BaseException | None = None
        # Both steps, even if the replica ends meanwhile (it waits for `done` before it
        # closes the log): a snapshot file without the log compacted behind it is
        # recoverable (two are kept), but why leave one.
        with trio.CancelScope(shield=True):
            try:
                await owner._save_snapshot(self._snapshot)
                if self._store is not None:
                    await trio.to_thread.run_sync(self._store.compact, meta)
            except Exception as exc:  # noqa: BLE001 - handed to the replica, which raises it (or sees it superseded)
                error = exc
            finally:
                self._done.set()
        self.send(owner.pid, _SnapshotPersisted(meta.index, error))
        self.stop()


class _JoinChecked:
    """From a `_JoinProbe` to its replica: `target` answered (`reason` None), or why not."""

    __slots__ = ("reason", "target")

    def __init__(self, target: str, reason: str | None) -> None:
        self.target = target
        self.reason = reason


class _CheckJoin:
    """From `join` to its own replica: start the check of `target` (spawning needs a callback)."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target


class _PendingJoin:
    __slots__ = ("caller", "change", "process_id", "ref")

    def __init__(self, process_id: ProcessID, change: ConfChange, caller: PID, ref: Ref) -> None:
        self.process_id = process_id
        self.change = change
        self.caller = caller
        self.ref = ref


class _JoinProbe(Actor):
    """Checks, within `timeout`, that the node of `target` can be connected to (so the cookie
    is right) and that `target` answers there as a replica of `cluster_id`; tells `owner`.

    A process of its own so the leader keeps replicating while a connection is tried.
    """

    async def init(self, owner: PID, target: ProcessID, cluster_id: str, timeout: float) -> None:
        self._owner = owner
        self._target = target
        self._target_id = peer_id(target.name, target.node)
        self._cluster_id = cluster_id
        self._timeout = timeout
        self._deadline = trio.current_time() + timeout
        self.send(self.pid, _PROBE)

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        node = self._target.node
        if message is _PROBE:
            problem = await self._connect(node)
            if problem is None:
                try:
                    self.send(self._target, JoinProbe(self._cluster_id))
                except ErgoError as exc:
                    problem = f"cannot send to {node}: {exc}"
            if problem is not None:
                self._done(problem)
                return
            self.send_after(self.pid, _PROBE_TIMEOUT, max(0.0, self._deadline - trio.current_time()))
        elif type(message) is JoinProbeAck:
            if not isinstance(from_, PID) or from_.node != node:
                return
            if message.cluster_id != self._cluster_id:
                self._done(
                    f"{node} runs a replica of cluster {message.cluster_id!r}, not of {self._cluster_id!r} "
                    "(start it with this cluster's CLUSTER_ID)"
                )
            elif message.replica != self._target_id:
                self._done(f"{node} answered as {message.replica!r}, not as {self._target_id!r}")
            else:
                self._done(None)
        elif message is _PROBE_TIMEOUT:
            self._done(
                f"no replica {self._target.name!r} answered on {node} within {self._timeout:g} s "
                "(is its node running, with this cluster's settings, and not yet stopped?)"
            )

    async def _connect(self, node: str) -> str | None:
        if node == self.node.name:
            return None
        with trio.move_on_after(max(0.0, self._deadline - trio.current_time())):
            try:
                await self.node.connect(node)
            except (ErgoError, OSError, ValueError) as exc:
                return f"cannot connect to {node}: {exc}"
            return None
        return f"cannot connect to {node} within {self._timeout:g} s (is it running, and routed to from here?)"

    def _done(self, reason: str | None) -> None:
        self.send(self._owner, _JoinChecked(self._target_id, reason))
        self.stop()


class _SnapshotBuild:
    """A snapshot being serialized a step at a time, between the replica's messages."""

    __slots__ = ("chunks", "data", "index", "parts", "source")

    def __init__(self, index: int, source: Iterable[bytes]) -> None:
        self.index = index
        self.source = source  # what to close: it may pin a view of the storage
        self.chunks: Iterator[bytes] = iter(source)
        self.parts: list[bytes] = []
        self.data: bytes | None = None  # set once every chunk is read

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


class LeaderActor(Actor):
    """A Raft replica as an actor. Subclass it; start each replica with `LeaderOptions`.

    Callbacks (all optional, all async): `handle_become_leader()`,
    `handle_become_follower(leader)` (a PID, or a ProcessID if the leader's PID is not
    known yet, or None), `handle_peer_joined(process_id)`, `handle_peer_left(process_id)`,
    plus the usual actor callbacks, which keep working (`init` must call
    `await super().init(options)`, or `await self.start_raft(options, machine)`).
    """

    replica: RaftReplica

    # -- set up --------------------------------------------------------------------------
    async def init(self, options: LeaderOptions, *args: Any) -> None:
        await self.start_raft(options)

    async def start_raft(
        self,
        options: LeaderOptions,
        machine: Machine | None = None,
        replica: Callable[[RaftNode, int], RaftReplica] | None = None,
    ) -> None:
        """Start this replica on `machine` (default: one that holds nothing). `replica`
        builds the pure replica from the core and the commit index found on disk (default:
        a plain `RaftReplica` on `machine`)."""
        if not isinstance(options, LeaderOptions):
            raise TypeError(f"a LeaderActor needs LeaderOptions, got {options!r}")
        if self.name is None:
            raise ValueError("a LeaderActor must be spawned with a registered name (its peers address it by name)")
        self.options = options
        self.raft_id = peer_id(self.name, self.node.name)
        self._rng = random.Random(options.seed)
        self._store: Any = None
        self._snapshots: Any = None
        self.machine: Machine = machine if machine is not None else NullMachine()
        self.snapshots_total = 0
        self._peer_pids: dict[str, PID] = {}
        # Quiescence's failure detector: every peer process we hear from is monitored; its
        # DOWN (it ended, or the link to its node broke) wakes a quiet replica.
        self._watched_peers: dict[PID, str] = {}
        self._monitors: dict[Any, Ref] = {}  # lock owner -> our monitor of it
        self._flush_scheduled = False
        self._snapshot_build: _SnapshotBuild | None = None
        self._snapshot_persisting: trio.Event | None = None  # a _SnapshotPersister at work: set when done
        self._persisted_hs = HardState()
        self._halted: LogLost | None = None
        self._joins: dict[str, _PendingJoin] = {}
        self._foreign: dict[tuple[str, str], list[float]] = {}  # (sender, cluster) -> [next warning, dropped]
        config = options.raft_config()
        bootstrap_ids = [peer_id(p.name, p.node) for p in options.bootstrap]
        state = None
        if options.data_dir is not None:
            from ..storage import DataDirIdentity, RaftLogStore, ensure_identity

            identity = DataDirIdentity(options.cluster_id, self.node.name, self.name)
            if await trio.to_thread.run_sync(ensure_identity, options.data_dir, identity):
                self.log.info(
                    "data dir %s recorded as %s's (cluster %r)", options.data_dir, self.raft_id, options.cluster_id
                )
            from ..storage import SnapshotStore

            path = Path(options.data_dir) / "raft"
            self._store = await trio.to_thread.run_sync(RaftLogStore, path)
            # Two kept: a crash after a new snapshot is saved but before the log is compacted
            # behind it leaves the log naming the previous one, which must still be there.
            self._snapshots = await trio.to_thread.run_sync(
                partial(SnapshotStore, Path(options.data_dir) / "snapshots", retain=2)
            )
            state = self._store.load()
        replay_upto = 0
        if state is not None and (state.entries or state.snapshot.index or state.hard_state.term):
            snapshot = None
            if state.snapshot.index:
                data = await self._load_snapshot(state.snapshot)
                snapshot = Snapshot(state.snapshot, data)
                if snapshot.meta.index > self.machine.applied_index:
                    self.machine.restore(snapshot)
            applied = self.machine.applied_index or None
            hard_state = state.hard_state
            last = state.entries[-1].index if state.entries else state.snapshot.index
            if applied is not None and hard_state.commit < applied <= last:
                # The commit index is persisted lazily (see _drain); everything the state
                # machine applied was committed, and is in this replica's log.
                hard_state = replace(hard_state, commit=applied)
            replay_upto = hard_state.commit
            raft = RaftNode(
                self.raft_id,
                config,
                self._rng,
                hard_state=hard_state,
                snapshot=snapshot,
                entries=state.entries,
                applied=applied,
            )
            self._persisted_hs = state.hard_state  # what is on disk (its commit may lag)
        elif self.raft_id in bootstrap_ids:
            raft = RaftNode.bootstrap(self.raft_id, bootstrap_ids, config, self._rng)
        else:
            raft = RaftNode(self.raft_id, config, self._rng)
        if replica is None:
            self.replica = RaftReplica(
                raft, self.machine, snapshot_interval=options.snapshot_interval, replay_upto=replay_upto
            )
        else:
            self.replica = replica(raft, replay_upto)
        # Raft ticks are counted from the clock (tick k falls at origin + k * tick_interval),
        # given lazily before each input (see `now`), and woken for only when the core says
        # one is due: an idle member sleeps between heartbeats instead of waking every tick.
        self._tick_seconds = options.tick_interval
        self._tick_origin = trio.current_time()
        self._ticks = 0
        self._ticker = self.alarm(_TICK)
        self._tick_armed = 0  # the tick the alarm is set for
        self._threaded_syncs = 0
        self._kick()

    async def terminate(self, reason: Any) -> None:
        await self.stop_raft()

    async def stop_raft(self) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.cancel()
        build = getattr(self, "_snapshot_build", None)
        if build is not None:
            self._snapshot_build = None
            build.close()
        persisting = getattr(self, "_snapshot_persisting", None)
        if persisting is not None:
            with trio.move_on_after(_PERSIST_WAIT_SECONDS):
                await persisting.wait()
        for name in ("_store", "_snapshots"):
            closable = getattr(self, name, None)
            if closable is not None:
                setattr(self, name, None)
                await trio.to_thread.run_sync(closable.close)

    @property
    def raft(self) -> RaftNode:
        """The replica's Raft core (for status and membership; decisions are the replica's)."""
        return self.replica.raft

    # -- callbacks for users -------------------------------------------------------------------
    async def handle_become_leader(self) -> None:
        return None

    async def handle_become_follower(self, leader: PID | ProcessID | None) -> None:
        return None

    async def handle_peer_joined(self, peer: ProcessID) -> None:
        return None

    async def handle_peer_left(self, peer: ProcessID) -> None:
        return None

    async def handle_log_lost(self, error: LogLost) -> None:
        """This replica's log lost entries it had acknowledged (see `LogLost`); it already
        takes no part in Raft any more. The default stops the whole node with `error` as its
        reason, as etcd exits: restarting the replica would only find the same. Override to
        stop something smaller (the replica stays inert until it is stopped)."""
        self.node.stop(error)

    # -- snapshot files -----------------------------------------------------------------------
    async def _load_snapshot(self, meta: SnapshotMeta) -> bytes:
        """The data of the persisted snapshot `meta` (at start)."""
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

    async def _save_snapshot(self, snapshot: Snapshot) -> None:
        """Make `snapshot` durable before the log before it is dropped."""
        self.snapshots_total += 1
        if self._snapshots is not None:
            await trio.to_thread.run_sync(self._snapshots.save, snapshot.meta, [snapshot.data])

    # -- queries -----------------------------------------------------------------------------
    def is_leader(self) -> bool:
        return self.replica.role is Role.LEADER

    def leader(self) -> PID | ProcessID | None:
        """The current leader (its PID once it has been heard from), or None if unknown."""
        leader_id = self.replica.leader_id
        if leader_id is None:
            return None
        if leader_id == self.raft_id:
            return self.pid
        pid = self._peer_pids.get(leader_id)
        return pid if pid is not None else ProcessID(*peer_process(leader_id))

    def leader_process_id(self) -> ProcessID | None:
        return leader_hint(self.replica.leader_id)

    def term(self) -> int:
        return self.replica.term

    def fencing_token(self) -> int | None:
        """While leader: the term of this leadership - strictly greater than any earlier
        leader's. Stamp it on the work you hand out so stale leaders can be rejected."""
        replica = self.replica
        return replica.leader_term if replica.role is Role.LEADER else None

    def peers(self) -> list[ProcessID]:
        """Current members other than this replica."""
        conf = self.raft.conf
        return [ProcessID(*peer_process(i)) for i in (*conf.voters, *conf.learners) if i != self.raft_id]

    def members(self) -> list[ProcessID]:
        conf = self.raft.conf
        return [ProcessID(*peer_process(i)) for i in (*conf.voters, *conf.learners)]

    def raft_status(self) -> Status:
        return self.raft.status()

    # -- actions -----------------------------------------------------------------------------
    def broadcast(self, message: Any) -> None:
        """Send `message` to every other member (best effort, like `send`)."""
        for peer in self.peers():
            try:
                self.send(peer, message)
            except ErgoError as exc:
                self.log.debug("broadcast to %r failed: %s", peer, exc)

    def join(self, process_id: ProcessID, reply_to: tuple[PID, Ref] | None = None) -> Any:
        """Add `process_id` as a voter (leader only: NotLeader otherwise; a voter already, or
        while an earlier change is not committed: ConfChangeRejected, as from the core).

        With `reply_to=(caller, ref)` (a call being served): returns `NO_REPLY` and first
        checks, within `join_timeout`, that the node can be connected to and runs a replica
        of this cluster under that name; then proposes the change and answers the call with
        its log index, or with `ConfChangeRejected(change, reason)` having proposed nothing.
        Without `reply_to` the change is proposed at once (the caller vouches for the node)
        and the log index returned.
        """
        target = peer_id(process_id.name, process_id.node)
        change = ConfChange(ConfChangeType.ADD_VOTER, target)
        if reply_to is None or target in self.raft.conf.voters:
            # A voter needs no check: the core refuses it (already a voter, or an earlier
            # change is not committed yet) without proposing anything.
            index = self._leading(self.raft.propose_conf_change, change)
            self._kick()
            return index
        if not self.is_leader():
            raise NotLeader(self.leader_process_id())
        if target in self._joins:
            raise ConfChangeRejected(
                change, f"{process_id.name!r} on {process_id.node} is being checked already; wait for that answer"
            )
        caller, ref = reply_to
        self._joins[target] = _PendingJoin(process_id, change, caller, ref)
        self.send(self.pid, _CheckJoin(target))
        return NO_REPLY

    async def _start_join_check(self, target: str) -> None:
        pending = self._joins.get(target)
        if pending is None:
            return
        try:
            await self.spawn(
                _JoinProbe, self.pid, pending.process_id, self.options.cluster_id, self.options.join_timeout
            )
        except ErgoError as exc:
            del self._joins[target]
            self.send_response_error(pending.caller, pending.ref, ConfChangeRejected(pending.change, f"{exc}"))

    def _join_checked(self, done: _JoinChecked) -> None:
        pending = self._joins.pop(done.target, None)
        if pending is None:
            return
        try:
            if done.reason is not None:
                raise ConfChangeRejected(pending.change, done.reason)
            index = self._leading(self.raft.propose_conf_change, pending.change)
        except (NotLeader, ConfChangeRejected) as exc:
            self.send_response_error(pending.caller, pending.ref, exc)
            return
        self._kick()
        self.send_response(pending.caller, pending.ref, index)

    def leave(self, node: str | ProcessID) -> int:
        """Remove the member on `node` (leader only). Removing the leader hands leadership over."""
        if isinstance(node, ProcessID):
            target = peer_id(node.name, node.node)
        else:
            candidates = [i for i in (*self.raft.conf.voters, *self.raft.conf.learners) if peer_process(i)[1] == node]
            if not candidates:
                raise ValueError(f"no member on node {node!r}")
            target = candidates[0]
        index = self._leading(self.raft.propose_conf_change, ConfChange(ConfChangeType.REMOVE_NODE, target))
        self._kick()
        return index

    def transfer_leadership(self, to: ProcessID) -> None:
        self._leading(self.raft.transfer_leadership, peer_id(to.name, to.node))
        self._kick()

    def _leading(self, action: Any, *args: Any) -> Any:
        """Run a leader-only core action; its NotLeader names the leader as a ProcessID (the
        core's hint is a Raft id), so a caller can follow it like any other NotLeader."""
        try:
            return action(*args)
        except NotLeader as exc:
            if type(exc) is not NotLeader:
                raise  # a subclass (a transfer in progress) says more than the hint
            raise NotLeader(self.leader_process_id()) from None

    def propose_commands(self, datas: Sequence[bytes]) -> int:
        """Append commands to the log (leader only); returns the first index."""
        if not self.is_leader():
            raise NotLeader(self.leader_process_id())
        first = self.raft.propose_batch(datas)
        self._kick()
        return first

    # -- message plumbing -------------------------------------------------------------------
    @property
    def _ergo_route_message(self) -> Any:
        return self._route

    async def _route(self, from_: PID | None, message: Any) -> None:
        self._give_ticks(self.received_at)
        if message is _TICK:
            if self.received_at + 1e-6 >= self._tick_origin + self._tick_armed * self._tick_seconds:
                self._give_to(self._tick_armed)  # the tick it fired for, whatever the rounding
            if self._halted is None:
                if self.replica.has_work():
                    self._kick()
                else:
                    self._arm_ticker()
        elif message is _FLUSH:
            self._flush_scheduled = False
            if self._halted is None:
                await self._drain()
        elif message is _SNAPSHOT_STEP:
            if self._halted is None:
                await self._snapshot_step()
        elif type(message) is _SnapshotPersisted:
            self._snapshot_persisted(message)
        elif type(message) is RaftEnvelope:
            if self._halted is not None:
                return
            m = message.message
            if message.cluster_id != self.options.cluster_id:
                self._foreign_traffic(message.cluster_id, getattr(m, "src", None), from_)
                return
            if m.dst != self.raft_id:
                self.log.warning("dropped Raft message for %r (this is %r)", m.dst, self.raft_id)
                return
            if from_ is not None:
                self._peer_pids[m.src] = from_
                if from_ not in self._watched_peers and self.options.quiesce:
                    self._watched_peers[from_] = m.src
                    self.monitor(from_)
            if _trace.ENABLED:
                _trace_raft("recv", m, m.src)
            try:
                self.replica.step(m)
            except LogLost as exc:
                await self._log_lost(exc)
                return
            self._kick()
        elif type(message) is MessageDownPID and message.pid in self._watched_peers:
            peer = self._watched_peers.pop(message.pid)
            if self._halted is None:
                self.replica.peer_down(peer)
                self._kick()
        elif type(message) is JoinProbe:
            if isinstance(from_, PID) and self._halted is None:
                self.send(from_, JoinProbeAck(self.options.cluster_id, self.raft_id))
        elif type(message) is _CheckJoin:
            await self._start_join_check(message.target)
        elif type(message) is _JoinChecked:
            self._join_checked(message)
        else:
            await self.handle_message(from_, message)

    def _foreign_traffic(self, cluster_id: Any, src: Any, from_: PID | None) -> None:
        """Raft traffic of another cluster is dropped (it must not disturb elections), but
        never silently: it is what a member restarted with the wrong CLUSTER_ID sends."""
        sender = src if isinstance(src, str) else repr(from_)
        key = (sender, repr(cluster_id))
        now = trio.current_time()
        entry = self._foreign.get(key)
        if entry is None:
            if len(self._foreign) >= 64:
                self._foreign.clear()  # bounded: a flood of senders costs warnings, not memory
            entry = self._foreign[key] = [now, 0.0]
        entry[1] += 1
        if now < entry[0]:
            return
        self.log.warning(
            "dropped %d Raft message(s) from %s of cluster %r: this replica is in cluster %r; "
            "every member must run with the same CLUSTER_ID",
            int(entry[1]),
            sender,
            cluster_id,
            self.options.cluster_id,
        )
        entry[0], entry[1] = now + _FOREIGN_WARN_SECONDS, 0.0

    async def _log_lost(self, error: LogLost) -> None:
        """Take no further part in Raft (no tick, no message, no drain), say why in one line,
        and let `handle_log_lost` stop what must stop."""
        self._halted = error
        self._ticker.cancel()
        self.log.error("%s", error)
        await self.handle_log_lost(error)

    def now(self) -> float:
        """The time for the replica's timers, after giving the Raft core every tick that had
        fallen when the message being handled arrived (`received_at`): what a ticker's
        messages, queued in order with it, would have given. Not the ticks up to now: a
        heartbeat that waited in a busy follower's mailbox must still count as received
        before the ticks that fell behind it, or the follower would campaign against a live
        leader. Safe for the promises ticks make: a follower's ticks never run ahead of
        when it really heard from its leader, and a leader decides a lease read no later
        than the read arrived."""
        self._give_ticks(self.received_at)
        return trio.current_time()

    def _give_ticks(self, at: float) -> None:
        self._give_to(int((at - self._tick_origin) / self._tick_seconds + 1e-9))

    def _give_to(self, due: int) -> None:
        if due > self._ticks:
            if self._halted is None:
                replica = self.replica
                for _ in range(min(due - self._ticks, _MAX_CATCH_UP)):
                    replica.tick()
            self._ticks = due

    def _arm_ticker(self) -> None:
        """Wake for the next tick the core says can do something (none: sleep until input)."""
        if self._halted is not None:
            return
        n = self.replica.ticks_until_due()
        if n is None:
            self._ticker.clear()
            return
        self._tick_armed = self._ticks + n
        self._ticker.set_at(self._tick_origin + self._tick_armed * self._tick_seconds)

    def kick(self) -> None:
        """Schedule a Ready drain after the mail already queued (which it then batches)."""
        self._kick()

    def rearm(self) -> None:
        """After an input that left nothing to drain but may have started the core's timers
        (a request that woke a quiet follower): wake for its next due tick."""
        if not self._flush_scheduled:
            self._arm_ticker()

    def _kick(self) -> None:
        """Make sure a flush runs after the mail already queued (which it then batches)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.send(self.pid, _FLUSH)

    def _send_raft(self, messages: Sequence[Any]) -> None:
        cluster = self.options.cluster_id
        for m in messages:
            if _trace.ENABLED:
                _trace_raft("send", m, m.dst)
            name, node = peer_process(m.dst)
            try:
                self.send(ProcessID(name, node), RaftEnvelope(cluster, m))
            except ErgoError as exc:
                # Raft tolerates loss: the next heartbeat or retry resends.
                self.log.debug("Raft message to %s not sent: %s", m.dst, exc)

    async def _drain(self) -> None:
        replica = self.replica
        while (rd := replica.ready(self.now())) is not None:
            self._send_raft(rd.messages)
            if rd.snapshot is not None:
                await self._save_snapshot(rd.snapshot)
            if self._store is not None and needs_sync(rd, self._persisted_hs):
                if _trace.ENABLED and rd.entries:
                    _trace.record("fsync_start", rd.entries[-1].index)
                save = partial(
                    self._store.save, rd.hard_state, rd.entries, rd.snapshot.meta if rd.snapshot is not None else None
                )
                if (
                    rd.snapshot is None
                    and self._snapshot_persisting is None  # a compaction holds the log's lock
                    and not self._threaded_syncs
                    and not self.queued()
                    and sum(len(e.data) for e in rd.entries) <= _INLINE_SYNC
                    and (not rd.messages or self.flush_sends())
                ):
                    # Nothing that a worker thread would let run meanwhile: no mail waiting,
                    # and the messages sent before the fsync (a leader's AppendEntries) are
                    # already on the wire, not waiting for the link's task. Here it saves the
                    # two thread handoffs (a wakeup each), most of a small fsync's time at low
                    # load. A slow one (a busy disk) stops the loop, links included: the next
                    # ones go to a thread for a while.
                    started = time.perf_counter()
                    save()
                    if time.perf_counter() - started > _INLINE_SYNC_SLOW:
                        self._threaded_syncs = _THREADED_AFTER_SLOW
                else:
                    self._threaded_syncs = max(0, self._threaded_syncs - 1)
                    await trio.to_thread.run_sync(save)
                if rd.hard_state is not None:
                    self._persisted_hs = rd.hard_state
                if _trace.ENABLED and rd.entries:
                    _trace.record("fsync_end", rd.entries[-1].index)
            self._send_raft(rd.persisted_messages)
            replica.persisted(rd, self.now())
            if _trace.ENABLED and rd.committed_entries:
                _trace.record("applied", rd.committed_entries[-1].index)
            await self.run_effects()
            if rd.committed_entries:
                self.flush_sends()  # the replies go now, not after the rest of this drain
        await self.run_effects()  # answers to what `ready` refused to propose
        await self._maybe_compact()
        self._arm_ticker()

    async def run_effects(self) -> None:
        """Carry out what the replica asked, in order."""
        for effect in self.replica.take_effects():
            await self.handle_effect(effect)

    async def handle_effect(self, effect: Effect) -> None:
        kind = type(effect)
        if kind is Reply:
            self.deliver_reply(effect.caller, effect.ref, effect.ok, effect.value)  # type: ignore[union-attr]
        elif kind is RoleChanged:
            await self._role_changed(effect)  # type: ignore[arg-type]
        elif kind is MembershipChanged:
            peer = ProcessID(*peer_process(effect.peer_id))  # type: ignore[union-attr]
            if effect.joined:  # type: ignore[union-attr]
                await self.handle_peer_joined(peer)
            else:
                await self.handle_peer_left(peer)
        elif kind is Monitor:
            owner = effect.owner  # type: ignore[union-attr]
            if owner not in self._monitors:
                self._monitors[owner] = self.monitor(owner)
        elif kind is Demonitor:
            ref = self._monitors.pop(effect.owner, None)  # type: ignore[union-attr]
            if ref is not None:
                self.demonitor(ref)
        # AppliedEntries and Proposing are for observers (the simulator's monitors).

    def deliver_reply(self, caller: Any, ref: Any, ok: bool, value: Any) -> None:
        if ok:
            self.send_response(caller, ref, value)
        else:
            self.send_response_error(caller, ref, value)

    async def _role_changed(self, change: RoleChanged) -> None:
        soft, was = change.soft, change.was
        if soft.role is Role.LEADER and was is not Role.LEADER:
            self.log.info("became leader (term %d)", soft.term)
            await self.handle_become_leader()
        elif soft.role is not Role.LEADER and (was is Role.LEADER or soft.leader != change.previous_leader):
            if was is Role.LEADER:
                self.log.info("no longer leader (term %d, leader %s)", soft.term, soft.leader)
            await self.handle_become_follower(self.leader())

    def request_snapshot(self) -> None:
        """Snapshot and compact at the applied index soon (an operator's SnapshotRequest)."""
        self.replica.request_snapshot()
        self._kick()

    async def _maybe_compact(self) -> None:
        """At the end of a drain, when every Ready is persisted: finish the snapshot whose
        data is whole, or (every `snapshot_interval` applied entries, or when asked) start
        one, read from a point-in-time view a step at a time (`_snapshot_step`)."""
        if self.raft.has_ready():
            return
        build = self._snapshot_build
        if build is None:
            if self._snapshot_persisting is not None or not self.replica.snapshot_due():
                return
            index, chunks = self.machine.snapshot()
            build = self._snapshot_build = _SnapshotBuild(index, chunks)
            await self._snapshot_step()
        if build.data is not None:
            self._snapshot_build = None
            await self._compact(build.index, build.data)

    async def _snapshot_step(self) -> None:
        """Serialize the snapshot in progress for up to `_SNAPSHOT_STEP_SECONDS`, then go on
        behind the mail queued meanwhile. Once it is whole, the next drain compacts behind
        it: only there is every Ready persisted, so the hard state `_compact` may write is
        one the log on disk agrees with."""
        build = self._snapshot_build
        if build is None or build.data is not None:
            return
        clock = time.perf_counter
        stop = clock() + _SNAPSHOT_STEP_SECONDS
        try:
            for chunk in build.chunks:
                build.parts.append(chunk)
                if clock() >= stop:
                    # Let the node's other tasks run (the links deliver what arrived
                    # meanwhile), then continue behind that mail.
                    await trio.lowlevel.checkpoint()
                    self.send(self.pid, _SNAPSHOT_STEP)
                    return
        except Exception as exc:
            self._snapshot_build = None
            build.close()
            if self.raft.first_index - 1 < build.index:
                raise  # not a restore that ended the view: the state machine's storage failed
            self.log.info("dropped the snapshot at %d, superseded by the leader's: %s", build.index, exc)
            return
        build.data = b"".join(build.parts)
        build.parts.clear()
        self._kick()  # a drain soon, which compacts behind it

    async def _compact(self, index: int, data: bytes) -> None:
        """Drop the log up to `index` behind `data`, the state machine's snapshot at `index`:
        in memory now, on disk by a `_SnapshotPersister` while this replica goes on."""
        raft = self.raft
        meta = self.replica.compact(index, data)
        if meta is None:
            return  # a newer snapshot (from the leader) already covers it
        if self._store is not None and self._persisted_hs.commit < index:
            # The log on disk only compacts entries it knows are committed; its commit index
            # is written lazily (with entries), so bring it up to date first. Here, not in
            # the persister: a hard state written there could overtake a newer one.
            hard_state = raft.hard_state
            await trio.to_thread.run_sync(self._store.save, hard_state, ())
            self._persisted_hs = hard_state
        self._snapshot_persisting = done = trio.Event()
        await self.spawn(_SnapshotPersister, self, Snapshot(meta, data), self._store, done, link=True)

    def _snapshot_persisted(self, done: _SnapshotPersisted) -> None:
        # One persister at a time (`_maybe_compact` waits for this), so this is its answer.
        self._snapshot_persisting = None
        if done.error is None:
            return
        if self.replica.superseded(done.index):
            # A snapshot from the leader replaced ours meanwhile (and is durable itself).
            self.log.info("the snapshot at %d was superseded: %s", done.index, done.error)
            return
        raise done.error


def _trace_raft(way: str, m: Any, peer: str) -> None:
    """The Raft messages that carry a request's hops: entries out and in, their acks, and
    the heartbeat rounds a linearizable read waits for (by round number)."""
    kind = type(m)
    if kind is AppendEntries and m.entries:
        _trace.record(f"ae_{way}", m.prev_index + len(m.entries), peer)
    elif kind is AppendEntriesResponse and not m.reject:
        _trace.record(f"ack_{way}", m.index, peer)
    elif kind is Heartbeat and m.read_seq:
        _trace.record(f"hb_{way}", m.read_seq, peer)
    elif kind is HeartbeatResponse:
        _trace.record(f"hback_{way}", m.read_seq, peer)


def leader_hint(raft_id: str | None) -> ProcessID | None:
    """What a NotLeader names for the replica `raft_id`: its registered name and node."""
    return ProcessID(*peer_process(raft_id)) if raft_id is not None else None
