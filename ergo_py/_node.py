"""`Node`: the process table, monitors, links, calls and (optionally) distribution.

Names, monitors and links are kept in a `ProcessTables` (`_tables`), which this module
and `_remote` change only through its methods; what a change means (a DOWN, an exit
signal, a control to another node) is carried out here.

Everything here runs on one trio thread, so the tables need no locks; every method
that only changes tables is synchronous and never blocks. The node owns the nursery
in which every process runs, and `start_node` owns the node: leaving its context
stops every process (most recently started first), then the network.

Remote operations are expressed as control messages (`ergo_py.net`) handed to the
network layer; what arrives from a peer is applied by `_remote.RemoteControl`, with
the same rules as local operations, so a remote process is indistinguishable from a
local one except for `noconnection`.
"""

from __future__ import annotations

import heapq
import logging
import math
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping

import trio

from . import net
from ._actor import Actor, Target
from ._errors import (
    CallError,
    CallTimeout,
    ErgoError,
    NoConnection,
    NodeNotRunning,
    ProcessExited,
    ProcessUnknown,
)
from ._mailbox import CALL, DOWN, EXIT, INSPECT, MSG
from ._messages import (
    KILL,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    MessageDownNode,
    MessageDownPID,
)
from ._process import Process
from ._remote import RemoteControl, open_network
from ._tables import ProcessTables, down_message
from .ids import PID, ProcessID, Ref, validate_node_name

if TYPE_CHECKING:
    import ssl

    from ._application import ApplicationRuntime

__all__ = ["Alarm", "Node", "NodeOptions", "start_node", "ProcessInfo", "TimerHandle"]

_log = logging.getLogger("ergo_py.node")

DEFAULT_MAX_MESSAGE_SIZE = net.DEFAULT_MAX_MESSAGE_SIZE


@dataclass
class NodeOptions:
    """How a node talks to others. With neither `listen` nor `routes` it stays local.

    `cookie` defaults to the ERGO_COOKIE environment variable, so it need not
    appear on command lines. `tls` is `(server_context, client_context)`; either
    may be None.
    """

    cookie: str | None = None
    listen: tuple[str, int] | None = None
    routes: Mapping[str, str] = field(default_factory=dict)
    tls: tuple["ssl.SSLContext | None", "ssl.SSLContext | None"] | None = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    shutdown_timeout: float = 5.0

    @property
    def networked(self) -> bool:
        return self.listen is not None or bool(self.routes)


@dataclass(frozen=True)
class ProcessInfo:
    """A snapshot of one process, for operators and tests."""

    pid: PID
    name: str | None
    behavior: str
    mailbox: int
    links: tuple[PID, ...]
    monitors: int
    monitored_by: int
    trap_exit: bool
    application: str | None
    uptime: float


class TimerHandle:
    """A pending `send_after`; `cancel()` stops it if it has not fired yet."""

    __slots__ = ("_scope", "fired")

    def __init__(self, scope: trio.CancelScope) -> None:
        self._scope = scope  # the scope the timer's task waits in
        self.fired = False

    def cancel(self) -> bool:
        """True if the message will not be sent."""
        self._scope.cancel()
        return not self.fired


class Alarm:
    """A timer a process sets again and again (`Actor.alarm`): it sends its message to its
    process each time the time set passes. Moving it costs no task and no wakeup, so a
    deadline pushed back on every input (an election timeout) costs nothing until it
    fires. It ends with its process, or at `cancel()`."""

    __slots__ = ("_at", "_wait", "_scope")

    def __init__(self, scope: trio.CancelScope) -> None:
        self._at = math.inf  # when it fires next (trio's clock); inf: not set
        self._wait: trio.CancelScope | None = None  # the scope its task sleeps in
        self._scope = scope

    @property
    def deadline(self) -> float:
        """When it fires next, on trio's clock (inf: not set)."""
        return self._at

    def set_at(self, deadline: float) -> None:
        """Fire at `deadline` (trio's clock; at once if past; inf: not at all), instead of
        any time set before."""
        self._at = deadline
        if self._wait is not None:
            self._wait.deadline = deadline

    def clear(self) -> None:
        self.set_at(math.inf)

    def cancel(self) -> None:
        """End it: it sends nothing more."""
        self._scope.cancel()


class _CallWaiter:
    __slots__ = ("caller", "target", "node", "task", "done", "ok", "value")

    def __init__(self, caller: PID, target: PID | None, node: str) -> None:
        self.caller = caller
        self.target = target  # resolved local callee, for failing fast if it dies
        self.node = node  # the callee's node, for failing fast on link loss
        self.task: Any = None
        self.done = False
        self.ok = False
        self.value: Any = None

    def resolve(self, ok: bool, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self.ok = ok
        self.value = value
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task)

    def _abort(self, raise_cancel: Any) -> Any:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait(self) -> None:
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)


_TIMED_OUT = object()  # the value of a waiter that `_CallTimer` resolved


def _check_timeout(timeout: float) -> None:
    """Refuse a bad timeout before the request is sent, not after."""
    if not (isinstance(timeout, (int, float)) and timeout >= 0):  # `>= 0` is False for NaN too
        raise ValueError(f"a call timeout must be a non-negative number of seconds, got {timeout!r}")


class _CallTimer:
    """The timeouts of every pending call of a node: one heap, served by one task.

    A cancel scope per call (`move_on_after`) was the largest single cost of a
    call: with 64 calls in flight it took ~30 % of the calling node's CPU per
    remote call and half of a local call's (benchmarks/bench_distribution.py).
    Here a call costs a heap push and pop; an answered call's entry is dropped
    lazily, and the task wakes only when the earliest deadline passes, so
    timeouts stay exact (also under MockClock).
    """

    __slots__ = ("_heap", "_scope", "_seq", "running")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _CallWaiter]] = []
        self._seq = 0
        self._scope: trio.CancelScope | None = None
        self.running = False

    def add(self, waiter: _CallWaiter, timeout: float) -> None:
        deadline = trio.current_time() + timeout
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, waiter))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def discard_answered(self, pending: int) -> None:
        """Drop answered calls from the top of the heap; compact it if they pile up behind a slow one."""
        heap = self._heap
        while heap and heap[0][2].done:
            heapq.heappop(heap)
        if len(heap) > 2 * pending + 256:
            heap[:] = [entry for entry in heap if not entry[2].done]
            heapq.heapify(heap)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        heap = self._heap
        self.running = True
        task_status.started()
        try:
            while True:
                with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                now = trio.current_time()
                while heap and (heap[0][0] <= now or heap[0][2].done):
                    heapq.heappop(heap)[2].resolve(False, _TIMED_OUT)  # a no-op for answered calls
        finally:
            # The node is gone: nobody may wait for an answer that can no longer come.
            self.running = False
            self._scope = None
            stale, heap[:] = heap[:], []
            for _, _, waiter in stale:
                waiter.resolve(False, NodeNotRunning("the node stopped before the call was answered"))


class Node:
    """A running node. Get one from `start_node`; do not construct it directly."""

    def __init__(self, name: str, options: NodeOptions) -> None:
        self.name = validate_node_name(name)
        self.options = options
        self.creation = secrets.randbits(31) | 1
        self._running = True
        self._procs: dict[int, Process] = {}
        self._tables: ProcessTables[Process] = ProcessTables(self.name)
        self._next_id = 1000
        self._next_ref = 0
        self._pending: dict[Ref, _CallWaiter] = {}
        self._call_timer = _CallTimer()
        self._apps: "ApplicationRuntime | None" = None
        self._net: Any = None
        self._remote = RemoteControl(
            self.name,
            self._tables,
            local=self._local,
            reply=self._reply,
            send_quiet=self._net_send_quiet,
            exit_signal=self._exit_signal,
            deliver_down=self._deliver_down,
        )
        self.stop_reason: Any = None
        self._stop_event = trio.Event()
        self._log = logging.LoggerAdapter(_log, {"node": self.name})

    def __repr__(self) -> str:
        return f"<Node {self.name} creation={self.creation}>"

    # -- identifiers ---------------------------------------------------------------------
    def make_ref(self) -> Ref:
        self._next_ref += 1
        return Ref(self.name, self.creation, self._next_ref)

    def _new_pid(self) -> PID:
        self._next_id += 1
        return PID(self.name, self._next_id, self.creation)

    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def port(self) -> int | None:
        """The port this node accepts links on (useful with port 0), or None."""
        return self._net.port if self._net is not None else None

    # -- public API ----------------------------------------------------------------------
    async def spawn(self, factory: Callable[[], Actor], *args: Any, name: str | None = None) -> PID:
        """Start a process; returns its PID once `init` succeeded (raises `SpawnError` if not)."""
        return await self._spawn(factory, args, name=name)

    def send(self, to: Target, message: Any) -> None:
        """Send from outside any process (the receiver sees `from_` None)."""
        self._send(None, to, message)

    async def call(self, to: Target, request: Any, timeout: float = 5.0) -> Any:
        """A call from code that is not an actor; it comes from an ephemeral PID."""
        return await self._call(self._new_pid(), to, request, timeout)

    def kill(self, pid: PID) -> None:
        """End a local process at once with reason `kill` (untrappable; `terminate` is not called)."""
        proc = self._local(pid)
        if proc is None:
            raise ProcessUnknown(pid)
        proc.force_end(KILL, run_terminate=False)

    async def stop_process(self, target: Target, reason: Any = SHUTDOWN, timeout: float = 5.0) -> None:
        """End a local process with `reason` (its `terminate` runs), waiting up to `timeout`, then kill."""
        proc = self._resolve_local(target)
        if proc is None:
            raise ProcessUnknown(target)
        await self._stop_proc(proc, reason, timeout)

    def is_alive(self, pid: PID) -> bool:
        return self._local(pid) is not None

    def whereis(self, name: str) -> PID | None:
        proc = self._tables.whereis(name)
        return proc.pid if proc is not None else None

    def processes(self) -> list[PID]:
        return [p.pid for p in self._procs.values()]

    def registered_names(self) -> dict[str, PID]:
        return self._tables.registered()

    def process_info(self, pid: PID) -> ProcessInfo | None:
        proc = self._local(pid)
        if proc is None:
            return None
        return ProcessInfo(
            pid=proc.pid,
            name=proc.name,
            behavior=type(proc.actor).__name__,
            mailbox=len(proc.mailbox),
            links=tuple(sorted(proc.links)),
            monitors=len(proc.monitors),
            monitored_by=self._tables.monitored_by(proc.pid),
            trap_exit=proc.trap_exit,
            application=proc.app,
            uptime=trio.current_time() - proc.started_at,
        )

    async def inspect(self, target: Target, timeout: float = 5.0) -> dict[str, Any]:
        """Ask a local process for its `handle_inspect()` (served between its callbacks)."""
        _check_timeout(timeout)
        proc = self._resolve_local(target)
        if proc is None:
            raise ProcessUnknown(target)
        caller = self._new_pid()
        ref = self.make_ref()
        waiter = _CallWaiter(caller, proc.pid, self.name)
        self._pending[ref] = waiter
        proc.mailbox.put_system((INSPECT, caller, ref, None))
        return await self._wait_reply(ref, waiter, target, timeout)  # type: ignore[no-any-return]

    def statistics(self) -> dict[str, int]:
        """Table sizes: what a leak would show up in."""
        return {"processes": len(self._procs), **self._tables.statistics(), "pending_calls": len(self._pending)}

    # -- distribution ----------------------------------------------------------------------
    def _network(self) -> Any:
        if self._net is None:
            raise NoConnection("-", "this node has no network (start it with NodeOptions(listen=..., routes=...))")
        return self._net

    async def connect(self, node: str) -> None:
        """Make sure a link to `node` is up (sends connect on demand anyway); raises on failure."""
        await self._network().connect(node)

    def add_route(self, node: str, url: str) -> None:
        """Where to reach `node`: "ws://host:port" or "wss://host:port"."""
        self._network().add_route(node, url)

    def connected_nodes(self) -> list[str]:
        return self._net.connected_nodes() if self._net is not None else []

    def is_connected(self, node: str) -> bool:
        """A link to `node` is up now."""
        return self._net is not None and self._net.is_connected(node)

    def can_reach(self, node: str) -> bool:
        """This node can send to `node` now or dial it: a link is up, or a route is known.
        False for a node without a listener that has not dialled us (or whose link is down)."""
        return node == self.name or (self._net is not None and self._net.can_reach(node))

    def disconnect(self, node: str) -> None:
        """Close the link to `node` (monitors fire with noconnection; a later send reconnects)."""
        self._network().disconnect(node)

    # -- applications (delegated) ----------------------------------------------------------
    def _applications(self) -> "ApplicationRuntime":
        if self._apps is None:
            from ._application import ApplicationRuntime

            self._apps = ApplicationRuntime(self)
        return self._apps

    def application_load(self, app: Any) -> str:
        """Load an `Application` (read its spec) without starting it; returns its name."""
        return self._applications().load(app)

    async def application_start(self, app: Any, mode: Any = None) -> str:
        """Start an application (loading it if given as an object), after its dependencies."""
        return await self._applications().start(app, mode)

    async def application_stop(self, name: str) -> None:
        await self._applications().stop(name)

    def applications(self) -> dict[str, Any]:
        """Loaded applications and their state."""
        return self._applications().info()

    def _env_for(self, proc: Process, key: str, default: Any) -> Any:
        if proc.app is None:
            return default
        return self._applications().env(proc.app, key, default)

    # -- lookup ----------------------------------------------------------------------------
    def _local(self, pid: PID) -> Process | None:
        proc = self._procs.get(pid.id)
        if proc is not None and proc.pid == pid:
            return proc
        return None

    def _resolve_local(self, target: Any) -> Process | None:
        if isinstance(target, PID):
            return self._local(target) if target.node == self.name else None
        if isinstance(target, ProcessID):
            return self._tables.whereis(target.name) if target.node == self.name else None
        if isinstance(target, str):
            return self._tables.whereis(target)
        raise TypeError(f"not a process: {target!r} (expected PID, ProcessID or a registered name)")

    # -- spawning --------------------------------------------------------------------------
    async def _spawn(
        self,
        factory: Callable[[], Actor],
        args: tuple[Any, ...],
        *,
        name: str | None = None,
        link_to: Process | None = None,
        app: str | None = None,
    ) -> PID:
        if not self._running:
            raise NodeNotRunning(f"node {self.name} is not running")
        actor = factory()
        if not isinstance(actor, Actor):
            raise TypeError(f"{factory!r} did not make an ergo_py.Actor (got {type(actor).__name__})")
        if app is None and link_to is not None:
            app = link_to.app
        proc = Process(self, self._new_pid(), actor, app)
        if name is not None:
            self._tables.register(name, proc)
        self._procs[proc.pid.id] = proc
        if link_to is not None:
            self._tables.link(proc, link_to.pid)
            self._tables.link(link_to, proc.pid)
        pid: PID = await self._nursery.start(proc.run, args)
        return pid

    # -- names -----------------------------------------------------------------------------
    def _register(self, name: str, proc: Process) -> None:
        self._tables.register(name, proc)

    def _unregister(self, proc: Process) -> None:
        self._tables.unregister(proc)

    # -- sending ---------------------------------------------------------------------------
    def _send(self, from_: PID | None, to: Any, message: Any) -> None:
        if type(to) is PID:
            if to.node == self.name:
                proc = self._procs.get(to.id)
                if proc is not None and proc.pid.creation == to.creation:
                    proc.mailbox.put((MSG, from_, message, None))
                # A dead PID: dropped, as in Erlang.
                return
            self._net_send(to.node, "Send", from_, to, message)
            return
        if isinstance(to, ProcessID) and to.node != self.name:
            self._net_send(to.node, "Send", from_, to, message)
            return
        proc = self._resolve_local(to)
        if proc is None:
            if isinstance(to, PID):
                return
            raise ProcessUnknown(to)
        proc.mailbox.put((MSG, from_, message, None))

    def _send_after(self, from_: PID, to: Any, message: Any, seconds: float) -> TimerHandle:
        scope = trio.CancelScope()
        handle = TimerHandle(scope)

        async def fire() -> None:
            with scope:
                await trio.sleep(seconds)
                handle.fired = True
                try:
                    self._send(from_, to, message)
                except ErgoError as exc:
                    self._log.warning("send_after to %r dropped: %s", to, exc)

        self._nursery.start_soon(fire)
        return handle

    def _alarm(self, proc: Process, message: Any) -> Alarm:
        scope = trio.CancelScope()
        alarm = Alarm(scope)
        proc.alarms.append(scope)
        pid = proc.pid

        async def run() -> None:
            with scope:
                while True:
                    with trio.CancelScope(deadline=alarm._at) as wait:
                        alarm._wait = wait
                        await trio.sleep_forever()
                    alarm._wait = None
                    if alarm._at > trio.current_time():
                        continue  # moved later (or cleared) after it expired, before this ran
                    alarm._at = math.inf
                    proc.mailbox.put((MSG, pid, message, None))

        self._nursery.start_soon(run)
        return alarm

    def _send_interval(self, proc: Process, to: Any, message: Any, seconds: float) -> TimerHandle:
        if seconds <= 0:
            raise ValueError(f"send_interval needs a positive period, got {seconds}")
        scope = trio.CancelScope()
        handle = TimerHandle(scope)
        owner = proc.pid

        async def repeat() -> None:
            with scope:
                deadline = trio.current_time()
                while self._local(owner) is not None:
                    deadline += seconds
                    await trio.sleep_until(deadline)
                    handle.fired = True
                    try:
                        self._send(owner, to, message)
                    except ErgoError as exc:
                        self._log.warning("send_interval to %r stopped: %s", to, exc)
                        return

        self._nursery.start_soon(repeat)
        return handle

    # -- calls -----------------------------------------------------------------------------
    async def _call(self, caller: PID, to: Any, request: Any, timeout: float) -> Any:
        _check_timeout(timeout)
        if isinstance(to, (PID, ProcessID)) and to.node != self.name:
            ref = self.make_ref()
            waiter = _CallWaiter(caller, None, to.node)
            self._pending[ref] = waiter
            try:
                self._net_send(to.node, "Call", caller, to, ref, request)
            except BaseException:
                self._pending.pop(ref, None)
                raise
            return await self._wait_reply(ref, waiter, to, timeout)
        proc = self._resolve_local(to)
        if proc is None:
            raise ProcessUnknown(to)
        if proc.pid == caller:
            raise CallError(f"{caller!r} called itself: a process cannot wait for its own answer")
        ref = self.make_ref()
        waiter = _CallWaiter(caller, proc.pid, self.name)
        self._pending[ref] = waiter
        proc.mailbox.put((CALL, caller, ref, request))
        return await self._wait_reply(ref, waiter, to, timeout)

    async def _wait_reply(self, ref: Ref, waiter: _CallWaiter, to: Any, timeout: float) -> Any:
        timer = self._call_timer
        if timer.running:
            timer.add(waiter, timeout)
            try:
                await waiter.wait()
            finally:
                waiter.done = True  # a cancelled wait leaves only a stale entry in the timer
                self._pending.pop(ref, None)
                timer.discard_answered(len(self._pending))
        else:
            # The node's tasks are not running (it is not started, or it is gone).
            try:
                with trio.move_on_after(timeout):
                    await waiter.wait()
            finally:
                self._pending.pop(ref, None)
            if not waiter.done:
                raise CallTimeout(to, timeout)
        if waiter.ok:
            return waiter.value
        error = waiter.value
        if error is _TIMED_OUT:
            raise CallTimeout(to, timeout)
        if isinstance(error, BaseException):
            raise error
        raise ErgoError(f"call to {to!r} failed: {error!r}")

    def _reply(self, to: PID, ref: Ref, ok: bool, value: Any) -> None:
        if to.node == self.name:
            waiter = self._pending.get(ref)
            if waiter is not None and waiter.caller == to:
                waiter.resolve(ok, value)
            # Otherwise the caller gave up (timeout) or is gone: a late reply is dropped.
            return
        self._net_send(to.node, "Reply", to, ref, ok, value)

    # -- monitors --------------------------------------------------------------------------
    def _monitor(self, watcher: Process, target: Any) -> Ref:
        ref = self.make_ref()
        if isinstance(target, str) and "@" in target:
            return self._monitor_node(watcher, target, ref)
        if isinstance(target, str):
            target = ProcessID(target, self.name)
        if not isinstance(target, (PID, ProcessID)):
            raise TypeError(f"cannot monitor {target!r}: expected PID, ProcessID, a name or 'node@host'")
        if target.node != self.name:
            watcher.monitors[ref] = target
            self._tables.add_remote_monitor(ref, watcher.pid, target)
            try:
                self._net_send(target.node, "Monitor", watcher.pid, target, ref)
            except NoConnection:
                self._fire_remote_monitor(target.node, ref, NOCONNECTION)
            return ref
        proc = self._resolve_local(target)
        watcher.monitors[ref] = target
        if proc is None:
            # No race: a DOWN with noproc, at once.
            self._deliver_down(watcher.pid, ref, down_message(target, NOPROC))
            return ref
        self._tables.add_monitor(ref, watcher.pid, target, proc.pid)
        return ref

    def _monitor_node(self, watcher: Process, node: str, ref: Ref) -> Ref:
        validate_node_name(node)
        watcher.monitors[ref] = node
        self._tables.add_node_monitor(ref, watcher.pid, node)
        if node == self.name:
            return ref
        if self._net is None or node not in self._net.connected_nodes():
            if self._net is None:
                self._fire_node_monitors(node)
            else:
                self._nursery.start_soon(self._connect_for_monitor, node)
        return ref

    async def _connect_for_monitor(self, node: str) -> None:
        try:
            await self._net.connect(node)
        except Exception:
            # on_link_down from the network fires the node monitors; be sure if it did not.
            if node not in self._net.connected_nodes():
                self._fire_node_monitors(node)

    def _demonitor(self, watcher: Process, target_or_ref: Any) -> None:
        if isinstance(target_or_ref, Ref):
            refs = [target_or_ref] if target_or_ref in watcher.monitors else []
        else:
            target = target_or_ref
            if isinstance(target, str) and "@" not in target:
                target = ProcessID(target, self.name)
            refs = [r for r, t in watcher.monitors.items() if t == target]
        for ref in refs:
            target = watcher.monitors.pop(ref)
            mon = self._tables.remove_monitor(ref, target)
            if mon is not None and not isinstance(target, str) and target.node != self.name:
                self._net_send_quiet(target.node, "Demonitor", watcher.pid, target, ref)

    def _deliver_down(self, watcher: PID, ref: Ref, message: Any) -> None:
        if watcher.node != self.name:
            target = message.pid if isinstance(message, MessageDownPID) else message.process_id
            self._net_send_quiet(watcher.node, "Down", watcher, target, ref, message.reason)
            return
        proc = self._local(watcher)
        if proc is not None:
            # Delivered only if the monitor still exists when the process reads it.
            proc.mailbox.put_system((DOWN, ref, message, None))

    def _fire_node_monitors(self, node: str) -> None:
        for mon in self._tables.pop_node_monitors(node):
            self._deliver_down(mon.watcher, mon.ref, MessageDownNode(node))

    def _fire_remote_monitor(self, node: str, ref: Ref, reason: Any) -> None:
        mon = self._tables.pop_remote_monitor(node, ref)
        if mon is not None:
            self._deliver_down(mon.watcher, ref, mon.down(reason))

    # -- links -----------------------------------------------------------------------------
    def _link(self, proc: Process, pid: PID) -> None:
        if pid == proc.pid or pid in proc.links:
            return
        if pid.node != self.name:
            self._tables.link(proc, pid)
            try:
                self._net_send(pid.node, "Link", proc.pid, pid)
            except NoConnection:
                if self._tables.unlink(proc, pid):
                    self._exit_signal(proc, pid, NOCONNECTION)
            return
        other = self._local(pid)
        if other is None:
            self._exit_signal(proc, pid, NOPROC)
            return
        self._tables.link(proc, pid)
        self._tables.link(other, proc.pid)

    def _unlink(self, proc: Process, pid: PID) -> None:
        self._tables.unlink(proc, pid)
        if pid.node != self.name:
            self._net_send_quiet(pid.node, "Unlink", proc.pid, pid)
            return
        other = self._local(pid)
        if other is not None:
            self._tables.unlink(other, proc.pid)

    def _exit_signal(self, proc: Process, from_: PID, reason: Any) -> None:
        """Erlang's exit signal from a link: trapped -> a message; abnormal -> the process ends."""
        if proc.trap_exit:
            proc.mailbox.put_urgent((EXIT, from_, reason, None))
        elif reason != NORMAL:
            proc.force_end(reason)

    # -- termination -----------------------------------------------------------------------
    async def _stop_proc(self, proc: Process, reason: Any, timeout: float) -> None:
        if proc.alive:
            proc.force_end(reason)
            with trio.move_on_after(timeout):
                await proc.done.wait()
            if proc.alive:
                self._log.warning("%r did not stop within %s s; killing it", proc.pid, timeout)
                proc.forced_reason = (KILL,)
                proc.run_terminate = False
                if proc.scope is not None:
                    proc.scope.cancel()
        await proc.done.wait()

    def _cleanup(self, proc: Process, reason: Any) -> None:
        """Forget a process that ended and tell everyone who asked. Runs once per process."""
        if not proc.alive:
            return
        proc.alive = False
        proc.exit_reason = reason
        for scope in proc.alarms:
            scope.cancel()
        pid = proc.pid
        self._procs.pop(pid.id, None)
        gone = self._tables.remove_process(proc)
        for mon in gone.demonitors:
            self._net_send_quiet(mon.target.node, "Demonitor", pid, mon.target, mon.ref)
        for mon in gone.watchers:
            self._deliver_down(mon.watcher, mon.ref, mon.down(reason))
        for other_pid in gone.links:
            if other_pid.node != self.name:
                self._net_send_quiet(other_pid.node, "Exit", pid, other_pid, reason)
                continue
            other = self._local(other_pid)
            if other is not None:
                self._tables.unlink(other, pid)
                self._exit_signal(other, pid, reason)
        # Calls waiting on this process fail now rather than at their timeout.
        if self._pending:
            for waiter in list(self._pending.values()):
                if waiter.target == pid:
                    waiter.resolve(False, ProcessExited(pid, reason))
        proc.done.set()

    # -- distribution ----------------------------------------------------------------------
    def _net_send(self, node: str, kind: str, *fields: Any) -> None:
        """Hand a control message (`ergo_py.net.<kind>(*fields)`) to the network."""
        if self._net is None:
            raise NoConnection(node, "this node has no network (start it with NodeOptions(listen=..., routes=...))")
        self._net.send(node, getattr(net, kind)(*fields))

    def _flush_sends(self) -> bool:
        return self._net.flush() if self._net is not None else True

    def _net_send_quiet(self, node: str, kind: str, *fields: Any) -> None:
        try:
            self._net_send(node, kind, *fields)
        except NoConnection as exc:
            self._log.debug("dropped %s to %s: %s", kind, node, exc)

    def _on_link_up(self, node: str, creation: int) -> None:
        self._log.info("link up: %s (creation %d)", node, creation)

    def _on_link_down(self, node: str, reason: str) -> None:
        self._log.info("link down: %s (%s)", node, reason)
        lost = self._tables.remove_node(node)
        for mon in lost.monitors:
            self._deliver_down(mon.watcher, mon.ref, mon.down(NOCONNECTION))
        # Local processes linked to remote ones on that node.
        for local, remote in lost.links:
            proc = self._local(local)
            if proc is not None and self._tables.unlink(proc, remote):
                self._exit_signal(proc, remote, NOCONNECTION)
        for mon in lost.node_monitors:
            self._deliver_down(mon.watcher, mon.ref, MessageDownNode(node))
        for waiter in list(self._pending.values()):
            if waiter.node == node:
                waiter.resolve(False, NoConnection(node, reason))

    # -- lifetime --------------------------------------------------------------------------
    _nursery: trio.Nursery  # where every process runs; set by `_lifetime`

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator["Node"]:
        """The node's life, for `start_node`: its machinery runs until the block is left."""
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # The node's own machinery (call timeouts, the network) runs shielded from outside
            # cancellation until shutdown is over, so that cleanup which still talks to other
            # processes or nodes (a lock released in a `finally`, terminate callbacks) can.
            infrastructure = trio.CancelScope(shield=True)

            async def run_infrastructure(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                with infrastructure:
                    async with trio.open_nursery() as inner:
                        await inner.start(self._call_timer.run)
                        if self.options.networked:
                            handlers = net.NetworkHandlers(
                                on_control=self._remote.apply,
                                on_link_up=self._on_link_up,
                                on_link_down=self._on_link_down,
                            )
                            self._net = await open_network(self.name, self.creation, self.options, handlers, inner)
                        task_status.started()
                        await trio.sleep_forever()

            await nursery.start(run_infrastructure)
            body_scope = trio.CancelScope()

            async def watch_stop() -> None:
                await self._stop_event.wait()
                body_scope.cancel()

            nursery.start_soon(watch_stop)
            try:
                with body_scope:
                    yield self
            except BaseException as exc:
                # Re-raised below, outside the nursery, so the caller sees its own
                # exception rather than an ExceptionGroup around it.
                body_error = exc
            finally:
                with trio.CancelScope(shield=True):
                    await self._shutdown()
                    if self._net is not None:
                        await self._net.aclose()
                infrastructure.cancel()
                nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error

    async def _shutdown(self) -> None:
        if self._apps is not None:
            await self._apps.stop_all()
        timeout = self.options.shutdown_timeout
        for proc in reversed(list(self._procs.values())):
            await self._stop_proc(proc, SHUTDOWN, timeout)
        self._running = False

    def stop(self, reason: Any = SHUTDOWN) -> None:
        """Ask the node to stop: every process ends, and the `start_node` block is left."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop_event.set()


@asynccontextmanager
async def start_node(name: str, options: NodeOptions | None = None) -> AsyncIterator[Node]:
    """Run a node for the duration of the block; leaving it stops every process.

    If something calls `node.stop()` (for example a permanent application that
    terminated), the block is cancelled and the node shuts down.
    """
    async with Node(name, options or NodeOptions())._lifetime() as node:
        yield node
