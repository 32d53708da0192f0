"""The node side of distribution: start the network, and apply what peers send.

Each control message from a peer is applied with the same rules as its local
counterpart, plus one: anything addressed to a PID of an earlier incarnation of
this node (a stale `creation`) is refused as if the process did not exist
(a DOWN or exit with `noproc`, an error for a call), never delivered to the
process that now has the same id.

This module changes the node's names, monitors and links only through its
`ProcessTables`, and reaches the rest of the node only through the callables it
is given, so it never depends on how the node keeps its state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import trio

from . import net
from ._errors import ProcessUnknown
from ._mailbox import CALL, MSG
from ._messages import NOPROC
from ._tables import ProcessTables
from .ids import PID, ProcessID, Ref

if TYPE_CHECKING:
    from ._node import NodeOptions
    from ._process import Process

__all__ = ["open_network", "RemoteControl"]

_log = logging.getLogger("ergo_py.node")


async def open_network(
    name: str, creation: int, options: "NodeOptions", handlers: net.NetworkHandlers, nursery: trio.Nursery
) -> net.Network:
    """Start this node's network in `nursery`, as `options` say; the caller keeps it."""
    server_ssl, client_ssl = options.tls or (None, None)
    network = net.Network(
        name,
        creation,
        handlers=handlers,
        cookie=options.cookie,
        listen=options.listen,
        routes=options.routes,
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        max_message_size=options.max_message_size,
    )
    await network.start(nursery)
    return network


class RemoteControl:
    """Applies the control messages that peers send to one node (`apply` is `on_control`)."""

    def __init__(
        self,
        name: str,
        tables: "ProcessTables[Process]",
        *,
        local: Callable[[PID], "Process | None"],
        reply: Callable[[PID, Ref, bool, Any], None],
        send_quiet: Callable[..., None],
        exit_signal: Callable[["Process", PID, Any], None],
        deliver_down: Callable[[PID, Ref, Any], None],
    ) -> None:
        self._name = name
        self._tables = tables
        self._local = local  # the live local process with this PID, or None
        self._reply = reply  # answer a call (to a local or remote caller)
        self._send_quiet = send_quiet  # (node, kind, *fields): a control to a node, dropped if unreachable
        self._exit_signal = exit_signal  # a link's exit signal to a local process
        self._deliver_down = deliver_down  # a DOWN to a watcher (local or remote)

    def _target(self, target: Any) -> "Process | None":
        """The local process `target` names, or None (also for a stale creation)."""
        if isinstance(target, PID):
            return self._local(target) if target.node == self._name else None
        if isinstance(target, ProcessID):
            return self._tables.whereis(target.name) if target.node == self._name else None
        return None

    def apply(self, peer: str, control: Any) -> None:
        """Apply one control message that arrived from `peer`."""
        kind = type(control)
        if kind is net.Send:
            proc = self._target(control.to)
            if proc is not None:
                proc.mailbox.put((MSG, control.from_, control.message, None))
            else:
                _log.debug("message from %s to %r dropped: no such process", peer, control.to)
        elif kind is net.Call:
            proc = self._target(control.to)
            if proc is None:
                self._reply(control.from_, control.ref, False, ProcessUnknown(control.to))
            else:
                proc.mailbox.put((CALL, control.from_, control.ref, control.request))
        elif kind is net.Reply:
            self._reply(control.to, control.ref, control.ok, control.value)
        elif kind is net.Monitor:
            self._monitor(control)
        elif kind is net.Demonitor:
            self._tables.remove_monitor(control.ref, control.target)
        elif kind is net.Link:
            proc = self._target(control.to)
            if proc is None:
                self._send_quiet(peer, "Exit", control.to, control.from_, NOPROC)
            else:
                self._tables.link(proc, control.from_)
        elif kind is net.Unlink:
            proc = self._target(control.to)
            if proc is not None:
                self._tables.unlink(proc, control.from_)
        elif kind is net.Exit:
            proc = self._target(control.to)
            if proc is not None and self._tables.unlink(proc, control.from_):
                self._exit_signal(proc, control.from_, control.reason)
        elif kind is net.Down:
            mon = self._tables.pop_remote_monitor(peer, control.ref)
            if mon is not None:
                self._deliver_down(mon.watcher, control.ref, mon.down(control.reason))
        else:
            _log.error("unknown control %r from %s ignored", control, peer)

    def _monitor(self, control: Any) -> None:
        proc = self._target(control.target)
        if proc is None:
            self._send_quiet(control.from_.node, "Down", control.from_, control.target, control.ref, NOPROC)
            return
        self._tables.add_monitor(control.ref, control.from_, control.target, proc.pid)
