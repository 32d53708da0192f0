"""The exceptions of ergo_py: one root, named outcomes that carry their data."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ErgoError",
    "CallTimeout",
    "ProcessUnknown",
    "ProcessExited",
    "CallError",
    "SpawnError",
    "NameTaken",
    "NodeNotRunning",
    "NoConnection",
]


class ErgoError(Exception):
    """Root of every error ergo_py raises."""


class CallTimeout(ErgoError):
    """A `call` got no response within its timeout. A response arriving later is dropped."""

    def __init__(self, to: Any, timeout: float) -> None:
        self.to = to
        self.timeout = timeout
        super().__init__(f"call to {to!r} got no response within {timeout} s")


class ProcessUnknown(ErgoError):
    """The target process or registered name does not exist (on this node, or in this incarnation)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        super().__init__(f"no such process: {target!r}")


class ProcessExited(ErgoError):
    """The called process ended before it answered."""

    def __init__(self, target: Any, reason: Any) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target!r} exited before answering (reason: {reason!r})")


class CallError(ErgoError):
    """A call that cannot be made as asked (for example a process calling itself)."""


class SpawnError(ErgoError):
    """A process could not be started: its `init` raised or asked to stop."""

    def __init__(self, factory: Any, reason: Any) -> None:
        self.factory = factory
        self.reason = reason
        super().__init__(f"could not start {getattr(factory, '__name__', factory)!r}: {reason!r}")


class NameTaken(ErgoError):
    """A registered name is already held by another process."""

    def __init__(self, name: str, holder: Any) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"name {name!r} is already registered to {holder!r}")


class NodeNotRunning(ErgoError):
    """The node has stopped (or not started); nothing can be spawned or sent through it."""


class NoConnection(ErgoError):
    """The link to the node was lost, or could not be made; the message or call did not get through."""

    def __init__(self, node: str, detail: str = "") -> None:
        self.node = node
        self.detail = detail
        super().__init__(f"no connection to node {node!r}" + (f": {detail}" if detail else ""))
