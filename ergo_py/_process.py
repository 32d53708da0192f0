"""The runtime's record of one process and the loop that runs it.

A process is one trio task inside its own cancel scope. The loop takes mail by
priority and calls the actor's callbacks one at a time. Forced ends (`kill`, an
exit signal from a link, a supervisor's shutdown) cancel that scope; the reason
is recorded first so cleanup knows why. Whatever the end, `Node._cleanup` runs
exactly once and fires monitors and links; an exception never leaves this task.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

import trio

from ._actor import NO_REPLY, Actor
from ._errors import SpawnError
from ._mailbox import CALL, DOWN, EXIT, INSPECT, MSG, STOP, Mailbox
from ._messages import KILL, NORMAL, MessageExitPID, Panic
from .ids import PID, Ref

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Process"]

_TERMINATE_GRACE = 5.0


class _ProcessLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Puts the node and PID into every record (as `extra` and as a message prefix)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra.get('node')} {extra.get('pid')!r}] {msg}", kwargs


class Process:
    __slots__ = (
        "pid",
        "node",
        "actor",
        "mailbox",
        "name",
        "links",
        "monitors",
        "trap_exit",
        "scope",
        "done",
        "alive",
        "stop_reason",
        "forced_reason",
        "run_terminate",
        "app",
        "started_at",
        "exit_reason",
        "alarms",
        "_log",
    )

    def __init__(self, node: "Node", pid: PID, actor: Actor, app: str | None) -> None:
        self.pid = pid
        self.node = node
        self.actor = actor
        self.mailbox = Mailbox()
        self.name: str | None = None
        self.links: set[PID] = set()
        self.monitors: dict[Ref, Any] = {}  # monitors this process holds: ref -> target
        self.trap_exit = False
        self.scope: trio.CancelScope | None = None
        self.done = trio.Event()
        self.alive = True
        self.stop_reason: tuple[Any] | None = None  # set by Actor.stop()
        self.forced_reason: tuple[Any] | None = None  # set when ended from outside
        self.run_terminate = True
        self.app = app
        self.started_at = trio.current_time()
        self.exit_reason: Any = None
        self.alarms: list[trio.CancelScope] = []  # the tasks of this process's alarms
        self._log: _ProcessLog | None = None
        actor._proc = self

    @property
    def log(self) -> _ProcessLog:
        if self._log is None:
            logger = logging.getLogger(f"ergo_py.process.{type(self.actor).__name__}")
            self._log = _ProcessLog(logger, {"node": self.node.name, "pid": self.pid})
        return self._log

    def force_end(self, reason: Any, run_terminate: bool = True) -> None:
        """End the process now, whatever it is doing (first reason wins)."""
        if self.forced_reason is None and self.alive:
            self.forced_reason = (reason,)
            self.run_terminate = run_terminate
            if self.scope is not None:
                self.scope.cancel()
            else:
                self.mailbox.put_urgent((STOP, None, reason, None))

    async def run(self, args: tuple[Any, ...], task_status: Any) -> None:
        reason: Any = NORMAL
        started = False
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                if self.forced_reason is not None:
                    scope.cancel()
                try:
                    await self.actor._ergo_init(args)
                except Exception as exc:
                    raise SpawnError(type(self.actor), Panic(repr(exc), traceback.format_exc())) from exc
                if self.stop_reason is not None:
                    raise SpawnError(type(self.actor), self.stop_reason[0])
                started = True
                task_status.started(self.pid)
                try:
                    reason = await self._loop()
                except Exception as exc:
                    reason = Panic(repr(exc), traceback.format_exc())
                    self.log.error("process crashed: %s\n%s", exc, reason.traceback)
            if self.forced_reason is not None:
                reason = self.forced_reason[0]
            if not started:
                raise SpawnError(type(self.actor), reason if self.forced_reason else "cancelled during init")
        except SpawnError as exc:
            self.node._cleanup(self, exc.reason)
            raise
        except BaseException:
            # Cancelled from outside this process's scope: the node itself is going away.
            if self.alive:
                self.node._cleanup(self, "shutdown")
            raise
        if self.run_terminate and reason != KILL:
            await self._terminate(reason)
        self.node._cleanup(self, reason)

    async def _terminate(self, reason: Any) -> None:
        limit = getattr(self.actor, "terminate_timeout", _TERMINATE_GRACE)
        with trio.move_on_after(limit) as grace:
            grace.shield = True
            try:
                await self.actor.terminate(reason)
            except Exception:
                self.log.exception("terminate(%r) raised", reason)
        if grace.cancelled_caught:
            self.log.error("terminate(%r) did not finish within %s s", reason, limit)

    async def _loop(self) -> Any:
        """Dispatch mail until the actor stops; returns the reason. Exceptions panic."""
        actor = self.actor
        node = self.node
        get = self.mailbox.get
        route = actor._ergo_route_message
        while True:
            kind, a, b, c = await get()
            if kind == MSG:
                await route(a, b)
            elif kind == CALL:
                try:
                    result = await actor.handle_call(a, b, c)
                except Exception as exc:
                    node._reply(a, b, False, exc)
                    raise
                if result is not NO_REPLY:
                    node._reply(a, b, True, result)
            elif kind == DOWN:
                # Delivered only if the monitor was not removed meanwhile (demonitor).
                if self.monitors.pop(a, None) is not None:
                    await route(None, b)
            elif kind == EXIT:
                if self.trap_exit:
                    await actor.handle_message(a, MessageExitPID(a, b))
                elif b != NORMAL:
                    return b
            elif kind == STOP:
                return b
            elif kind == INSPECT:
                try:
                    info = await actor.handle_inspect()
                except Exception as exc:
                    node._reply(a, b, False, exc)
                    raise
                node._reply(a, b, True, info)
            if self.stop_reason is not None:
                return self.stop_reason[0]
