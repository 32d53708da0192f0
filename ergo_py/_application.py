"""Applications: a named supervision tree with a start mode, dependencies and an environment.

OTP meaning of the modes, judged when the application's root supervisor ends
without `application_stop` having asked for it:

- temporary: the end is logged; everything else keeps running.
- transient: ending `normal` is logged; any other reason stops the node.
- permanent: any end stops the node.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import ErgoError
from ._messages import NORMAL, SHUTDOWN
from ._supervisor import ChildSpec, Strategy, Supervisor, SupervisorSpec

if TYPE_CHECKING:
    from ._node import Node
    from .ids import PID

__all__ = ["Mode", "ApplicationSpec", "Application", "ApplicationError", "ApplicationRuntime"]

_log = logging.getLogger("ergo_py.application")


class Mode(enum.Enum):
    TEMPORARY = "temporary"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass
class ApplicationSpec:
    name: str
    children: list[ChildSpec] = field(default_factory=list)
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 5
    period: float = 5.0
    mode: Mode = Mode.TEMPORARY
    depends: tuple[str, ...] = ()
    env: dict[str, Any] = field(default_factory=dict)
    description: str = ""


class ApplicationError(ErgoError):
    """An application could not be loaded, started or stopped as asked."""


class Application:
    """Subclass and make `load()` return an `ApplicationSpec`."""

    def load(self) -> ApplicationSpec:
        raise ApplicationError(f"{type(self).__name__}.load must return an ApplicationSpec")


class _AppSupervisor(Supervisor):
    async def init(self, spec: ApplicationSpec) -> SupervisorSpec:  # type: ignore[override]
        return SupervisorSpec(spec.strategy, list(spec.children), spec.intensity, spec.period)


@dataclass
class _Loaded:
    app: Application
    spec: ApplicationSpec
    root: "PID | None" = None
    mode: Mode = Mode.TEMPORARY
    stopping: bool = False
    last_reason: Any = None


class ApplicationRuntime:
    """The node's table of applications (one per node, created on first use)."""

    def __init__(self, node: "Node") -> None:
        self._node = node
        self._apps: dict[str, _Loaded] = {}
        self._order: list[str] = []  # start order, for stopping in reverse

    def load(self, app: Application) -> str:
        if not isinstance(app, Application):
            raise ApplicationError(f"{app!r} is not an ergo_py.Application")
        spec = app.load()
        if not isinstance(spec, ApplicationSpec) or not spec.name:
            raise ApplicationError(f"{type(app).__name__}.load() returned {spec!r}, not an ApplicationSpec")
        existing = self._apps.get(spec.name)
        if existing is not None and existing.root is not None:
            raise ApplicationError(f"application {spec.name!r} is already running")
        self._apps[spec.name] = _Loaded(app, spec, mode=spec.mode)
        return spec.name

    async def start(self, app: Any, mode: Mode | None = None, _chain: tuple[str, ...] = ()) -> str:
        name = app if isinstance(app, str) else self.load(app)
        loaded = self._apps.get(name)
        if loaded is None:
            raise ApplicationError(f"application {name!r} is not loaded")
        if loaded.root is not None:
            return name
        if name in _chain:
            raise ApplicationError(f"circular application dependencies: {' -> '.join(_chain + (name,))}")
        for dep in loaded.spec.depends:
            if dep not in self._apps:
                raise ApplicationError(f"application {name!r} depends on {dep!r}, which is not loaded")
            await self.start(dep, None, _chain + (name,))
        loaded.mode = mode or loaded.spec.mode
        loaded.stopping = False
        pid = await self._node._spawn(_AppSupervisor, (loaded.spec,), app=name)
        loaded.root = pid
        self._order.append(name)
        self._node._nursery.start_soon(self._watch, name, pid)
        _log.info("application %s started (%s)", name, loaded.mode.value)
        return name

    async def _watch(self, name: str, pid: "PID") -> None:
        proc = self._node._local(pid)
        if proc is None:
            return
        await proc.done.wait()
        loaded = self._apps[name]
        loaded.root = None
        loaded.last_reason = proc.exit_reason
        if name in self._order:
            self._order.remove(name)
        if loaded.stopping:
            return
        reason = proc.exit_reason
        if loaded.mode is Mode.PERMANENT or (loaded.mode is Mode.TRANSIENT and reason != NORMAL):
            _log.error("%s application %s terminated (%r): stopping node", loaded.mode.value, name, reason)
            self._node.stop(reason)
        else:
            _log.warning("application %s terminated (%r)", name, reason)

    async def stop(self, name: str) -> None:
        loaded = self._apps.get(name)
        if loaded is None or loaded.root is None:
            raise ApplicationError(f"application {name!r} is not running")
        loaded.stopping = True
        pid = loaded.root
        await self._node.stop_process(pid, SHUTDOWN, timeout=loaded.spec.period + 60.0)
        _log.info("application %s stopped", name)

    async def stop_all(self) -> None:
        for name in reversed(list(self._order)):
            loaded = self._apps[name]
            if loaded.root is not None and self._node.is_alive(loaded.root):
                await self.stop(name)

    def env(self, name: str, key: str, default: Any) -> Any:
        loaded = self._apps.get(name)
        return loaded.spec.env.get(key, default) if loaded is not None else default

    def info(self) -> dict[str, Any]:
        return {
            name: {
                "running": loaded.root is not None,
                "root": loaded.root,
                "mode": loaded.mode.value,
                "depends": loaded.spec.depends,
                "last_reason": loaded.last_reason,
            }
            for name, loaded in self._apps.items()
        }
