"""`Supervisor`: starts children, restarts them by strategy, gives up at its intensity.

OTP semantics: children start in spec order and stop in reverse order; a
supervisor traps exits and links to its children; a child's exit is judged by its
restart type (permanent: always restarted; transient: restarted unless it exited
`normal` or `shutdown`; temporary: never); more than `intensity` restarts within
`period` seconds make the supervisor stop all children and terminate with reason
`shutdown`, which its own supervisor then judges in turn.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from ._actor import Actor
from ._errors import ErgoError
from ._messages import NORMAL, SHUTDOWN, MessageExitPID
from .ids import PID, Ref

__all__ = [
    "Strategy",
    "Restart",
    "ChildSpec",
    "SupervisorSpec",
    "Supervisor",
    "StartChild",
    "WhichChildren",
    "TerminateChild",
]


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ALL_FOR_ONE = "all_for_one"
    REST_FOR_ONE = "rest_for_one"
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@dataclass
class ChildSpec:
    """One child: registered under `name` (except under simple_one_for_one)."""

    name: str
    factory: Callable[[], Actor]
    args: tuple[Any, ...] = ()
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0


@dataclass
class SupervisorSpec:
    strategy: Strategy
    children: list[ChildSpec] = field(default_factory=list)
    intensity: int = 5
    period: float = 5.0


@dataclass(frozen=True)
class StartChild:
    """Call request: start a simple_one_for_one child with these extra args."""

    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class WhichChildren:
    """Call request: the children as a list of (name, pid or None)."""


@dataclass(frozen=True)
class TerminateChild:
    """Call request: stop a child (by PID, or by spec name) without restarting it."""

    child: Any


class _Child:
    __slots__ = ("spec", "args", "pid")

    def __init__(self, spec: ChildSpec, args: tuple[Any, ...]) -> None:
        self.spec = spec
        self.args = args
        self.pid: PID | None = None


class Supervisor(Actor):
    """Subclass and make `init(*args)` return a `SupervisorSpec`."""

    async def init(self, *args: Any) -> SupervisorSpec:  # type: ignore[override]
        raise ErgoError(f"{type(self).__name__}.init must return a SupervisorSpec")

    async def _ergo_init(self, args: tuple[Any, ...]) -> None:
        spec = await self.init(*args)
        if not isinstance(spec, SupervisorSpec):
            raise ErgoError(f"{type(self).__name__}.init returned {spec!r}, not a SupervisorSpec")
        _validate(spec)
        self.trap_exit = True
        self._spec = spec
        self._parents = set(self._proc.links)
        self._restarts: deque[float] = deque()
        self._children: list[_Child] = []
        self.terminate_timeout = sum(c.shutdown_timeout for c in spec.children) + 5.0
        if spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
            return
        for cs in spec.children:
            child = _Child(cs, cs.args)
            self._children.append(child)
            try:
                await self._start(child)
            except Exception:
                await self._stop_children(self._children)
                raise

    # -- callbacks ---------------------------------------------------------------------
    async def handle_message(self, from_: PID | None, message: Any) -> None:
        if isinstance(message, MessageExitPID):
            await self._on_exit(message.pid, message.reason)
            return
        self.log.warning("supervisor ignores message %r", message)

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        if isinstance(request, StartChild):
            if self._spec.strategy is not Strategy.SIMPLE_ONE_FOR_ONE:
                raise ErgoError("start_child is for simple_one_for_one supervisors")
            template = self._spec.children[0]
            child = _Child(template, tuple(template.args) + tuple(request.args))
            self._children.append(child)
            try:
                await self._start(child)
            except Exception:
                self._children.remove(child)
                raise
            return child.pid
        if isinstance(request, WhichChildren):
            return [(c.spec.name, c.pid) for c in self._children]
        if isinstance(request, TerminateChild):
            for child in self._children:
                if child.pid == request.child or (
                    self._spec.strategy is not Strategy.SIMPLE_ONE_FOR_ONE and child.spec.name == request.child
                ):
                    await self._stop_children([child])
                    if self._spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
                        self._children.remove(child)
                    return True
            return False
        raise ErgoError(f"supervisor does not understand {request!r}")

    async def terminate(self, reason: Any) -> None:
        await self._stop_children(self._children)

    async def handle_inspect(self) -> dict[str, Any]:
        return {
            "strategy": self._spec.strategy.value,
            "children": [(c.spec.name, c.pid) for c in self._children],
            "restarts_in_period": len(self._restarts),
        }

    # -- internals ---------------------------------------------------------------------
    async def _start(self, child: _Child) -> None:
        name = None if self._spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE else child.spec.name
        child.pid = await self.spawn(child.spec.factory, *child.args, name=name, link=True)

    async def _stop_children(self, children: list[_Child]) -> None:
        for child in reversed(children):
            pid = child.pid
            if pid is None:
                continue
            child.pid = None
            self.unlink(pid)
            if self.node.is_alive(pid):
                await self.node.stop_process(pid, SHUTDOWN, child.spec.shutdown_timeout)

    def _restart_allowed(self) -> bool:
        now = trio.current_time()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self._spec.period:
            self._restarts.popleft()
        return len(self._restarts) <= self._spec.intensity

    async def _on_exit(self, pid: PID, reason: Any) -> None:
        child = next((c for c in self._children if c.pid == pid), None)
        if child is None:
            if pid in self._parents and reason != NORMAL:
                self.stop(reason)
            return
        child.pid = None
        restart = child.spec.restart
        wanted = restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and reason not in (NORMAL, SHUTDOWN))
        if not wanted:
            if restart is Restart.TEMPORARY or self._spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
                self._children.remove(child)
            return
        strategy = self._spec.strategy
        if strategy is Strategy.ALL_FOR_ONE:
            group = list(self._children)
        elif strategy is Strategy.REST_FOR_ONE:
            group = self._children[self._children.index(child) :]
        else:
            group = [child]
        await self._stop_children([c for c in group if c is not child])
        await self._restart_group(group)

    async def _restart_group(self, group: list[_Child]) -> None:
        while True:
            if not self._restart_allowed():
                self.log.error(
                    "more than %d restarts in %s s: stopping all children and terminating",
                    self._spec.intensity,
                    self._spec.period,
                )
                self.stop(SHUTDOWN)
                return
            try:
                for child in group:
                    if child.pid is None:
                        await self._start(child)
                return
            except Exception as exc:
                self.log.error("restarting a child failed: %s", exc)
                await self._stop_children(group)


def _validate(spec: SupervisorSpec) -> None:
    if spec.intensity < 0 or spec.period <= 0:
        raise ErgoError(f"invalid restart intensity {spec.intensity} / period {spec.period}")
    if spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE and len(spec.children) != 1:
        raise ErgoError("a simple_one_for_one supervisor needs exactly one child spec (the template)")
    names = [c.name for c in spec.children]
    if len(set(names)) != len(names):
        raise ErgoError(f"duplicate child names in {names}")
