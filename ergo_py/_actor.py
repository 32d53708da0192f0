"""`Actor`: the class users subclass to write a process.

An actor's callbacks run one at a time in the process's own task, so actor state
needs no locks. Everything a callback may do to the outside world goes through
the methods here, which delegate to the node; none of them blocks except `call`,
`spawn` and `inspect`-style requests, which are `async`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ._errors import CallError
from ._messages import NORMAL
from .ids import PID, ProcessID, Ref

if TYPE_CHECKING:
    from ._node import Alarm, Node, TimerHandle
    from ._process import Process

__all__ = ["Actor", "NO_REPLY", "Target"]

Target = PID | ProcessID | str


class _NoReply:
    """Returned from `handle_call` when the answer will come later via `send_response`."""

    _instance: "_NoReply | None" = None

    def __new__(cls) -> "_NoReply":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Any = _NoReply()

_log = logging.getLogger("ergo_py.actor")


class Actor:
    """Base class of every process. Override the async callbacks you need.

    Callbacks:
      - `init(*args)`: runs before `spawn` returns; raising makes `spawn` raise.
      - `handle_message(from_, message)`: ordinary messages, DOWN and (with
        `trap_exit`) EXIT messages. `from_` is the sender's PID or None.
      - `handle_call(from_, ref, request)`: return the reply, or `NO_REPLY` and
        answer later with `send_response(from_, ref, value)`.
      - `terminate(reason)`: the process is ending (not called for `kill`).
      - `handle_inspect()`: a dict describing the process, for operators.

    An exception from any callback ends this process only (reason `Panic`).
    """

    _proc: "Process"

    # -- callbacks -------------------------------------------------------------------
    async def init(self, *args: Any) -> None:
        return None

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        self.log.warning("unhandled message from %r: %r", from_, message)

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        self.log.warning("unhandled call from %r: %r", from_, request)
        raise CallError(f"{type(self).__name__} does not handle calls (got {request!r}); override handle_call")

    async def terminate(self, reason: Any) -> None:
        return None

    async def handle_inspect(self) -> dict[str, Any]:
        return {}

    @property
    def _ergo_route_message(self) -> Callable[[PID | None, Any], Awaitable[None]]:
        """Runtime hook: where ordinary messages and DOWNs go. Behaviours that have messages
        of their own (LeaderActor's Raft traffic, its peers' DOWNs) take theirs here and pass
        the rest on."""
        return self.handle_message

    async def _ergo_init(self, args: tuple[Any, ...]) -> None:
        """Runtime hook: behaviours (Supervisor) wrap `init` here."""
        await self.init(*args)

    # -- identity --------------------------------------------------------------------
    @property
    def pid(self) -> PID:
        return self._proc.pid

    @property
    def node(self) -> "Node":
        return self._proc.node

    @property
    def received_at(self) -> float:
        """When the message (or call) being handled entered this process's mailbox, on
        trio's clock."""
        return self._proc.mailbox.received_at

    def queued(self) -> int:
        """How many messages wait in this process's mailbox (Erlang's message_queue_len)."""
        return len(self._proc.mailbox)

    @property
    def name(self) -> str | None:
        return self._proc.name

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._proc.log

    @property
    def trap_exit(self) -> bool:
        return self._proc.trap_exit

    @trap_exit.setter
    def trap_exit(self, value: bool) -> None:
        self._proc.trap_exit = bool(value)

    # -- messaging -------------------------------------------------------------------
    def send(self, to: Target, message: Any) -> None:
        """Queue `message` for `to`; never blocks. Sending to a dead PID is a no-op."""
        self._proc.node._send(self._proc.pid, to, message)

    async def call(self, to: Target, request: Any, timeout: float = 5.0) -> Any:
        """Send `request` and wait for its response; other mail keeps queueing meanwhile."""
        return await self._proc.node._call(self._proc.pid, to, request, timeout)

    def flush_sends(self) -> bool:
        """Put what this node has sent to other nodes (any process's messages) on the wire
        now, where a socket takes it without waiting; True if all of it went. Sends go out
        anyway once this process yields; this is for one about to block the event loop (a
        synchronous fsync) that wants its messages travelling meanwhile."""
        return self._proc.node._flush_sends()

    def send_response(self, to: PID, ref: Ref, value: Any) -> None:
        """Answer a call that `handle_call` left with `NO_REPLY` (any process may answer)."""
        self._proc.node._reply(to, ref, True, value)

    def send_response_error(self, to: PID, ref: Ref, error: BaseException) -> None:
        """Answer a call with an error: the caller's `call` raises it."""
        self._proc.node._reply(to, ref, False, error)

    def send_after(self, to: Target, message: Any, seconds: float) -> "TimerHandle":
        """Deliver `message` to `to` after `seconds`; the handle's `cancel()` stops it."""
        return self._proc.node._send_after(self._proc.pid, to, message, seconds)

    def alarm(self, message: Any) -> "Alarm":
        """A timer for this process that it sets again and again: `message` arrives each
        time the deadline given to `set_at` passes (see `Alarm`). Ends with the process."""
        return self._proc.node._alarm(self._proc, message)

    def send_interval(self, to: Target, message: Any, seconds: float) -> "TimerHandle":
        """Deliver `message` to `to` every `seconds` until the handle is cancelled or this process ends."""
        return self._proc.node._send_interval(self._proc, to, message, seconds)

    # -- monitors and links -------------------------------------------------------------
    def monitor(self, target: Target) -> Ref:
        """Watch a process (PID, ProcessID, local name) or a node ('name@host')."""
        return self._proc.node._monitor(self._proc, target)

    def demonitor(self, target_or_ref: Target | Ref) -> None:
        """Stop watching; no DOWN for the removed monitor(s) arrives after this returns."""
        self._proc.node._demonitor(self._proc, target_or_ref)

    def link(self, pid: PID) -> None:
        self._proc.node._link(self._proc, pid)

    def unlink(self, pid: PID) -> None:
        self._proc.node._unlink(self._proc, pid)

    # -- processes -------------------------------------------------------------------
    async def spawn(
        self,
        factory: Callable[[], "Actor"],
        *args: Any,
        name: str | None = None,
        link: bool = False,
    ) -> PID:
        """Start a process; with `link=True` it is linked to this one before its `init` runs."""
        return await self._proc.node._spawn(factory, args, name=name, link_to=self._proc if link else None)

    def register_name(self, name: str) -> None:
        self._proc.node._register(name, self._proc)

    def unregister_name(self) -> None:
        self._proc.node._unregister(self._proc)

    def stop(self, reason: Any = NORMAL) -> None:
        """End this process with `reason` once the current callback returns."""
        self._proc.stop_reason = (reason,)

    def env(self, key: str, default: Any = None) -> Any:
        """A value from the environment of the application this process belongs to."""
        return self._proc.node._env_for(self._proc, key, default)
