"""The node side of distribution: start the network, and apply what peers send.

Each control message from a peer is applied with the same rules as its local
counterpart, plus one: anything addressed to a PID of an earlier incarnation of
this node (a stale `creation`) is refused as if the process did not exist
(a DOWN or exit with `noproc`, an error for a call), never delivered to the
process that now has the same id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from . import net
from ._errors import ProcessUnknown
from ._ids import PID, ProcessID
from ._mailbox import CALL, MSG
from ._messages import NOPROC

if TYPE_CHECKING:
    from ._node import Node
    from ._process import Process

__all__ = ["open_network", "apply_control"]

_log = logging.getLogger("ergo_py.node")


async def open_network(node: "Node", nursery: trio.Nursery) -> None:
    options = node.options
    server_ssl, client_ssl = options.tls or (None, None)
    network = net.Network(
        node.name,
        node.creation,
        handlers=net.NetworkHandlers(
            on_control=node._on_control,
            on_link_up=node._on_link_up,
            on_link_down=node._on_link_down,
        ),
        cookie=options.cookie,
        listen=options.listen,
        routes=options.routes,
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        max_message_size=options.max_message_size,
    )
    await network.start(nursery)
    node._net = network


def _target(node: "Node", target: Any) -> "Process | None":
    """The local process `target` names, or None (also for a stale creation)."""
    if isinstance(target, PID):
        return node._local(target) if target.node == node.name else None
    if isinstance(target, ProcessID):
        return node._names.get(target.name) if target.node == node.name else None
    return None


def apply_control(node: "Node", peer: str, control: Any) -> None:
    kind = type(control)
    if kind is net.Send:
        proc = _target(node, control.to)
        if proc is not None:
            proc.mailbox.put((MSG, control.from_, control.message, None))
        else:
            _log.debug("message from %s to %r dropped: no such process", peer, control.to)
    elif kind is net.Call:
        proc = _target(node, control.to)
        if proc is None:
            node._reply(control.from_, control.ref, False, ProcessUnknown(control.to))
        else:
            proc.mailbox.put((CALL, control.from_, control.ref, control.request))
    elif kind is net.Reply:
        node._reply(control.to, control.ref, control.ok, control.value)
    elif kind is net.Monitor:
        _remote_monitor(node, control)
    elif kind is net.Demonitor:
        node._drop_monitor(control.from_, control.ref, control.target)
    elif kind is net.Link:
        proc = _target(node, control.to)
        if proc is None:
            node._net_send_quiet(peer, "Exit", control.to, control.from_, NOPROC)
        else:
            proc.links.add(control.from_)
            node._remote_links.setdefault(peer, set()).add((proc.pid, control.from_))
    elif kind is net.Unlink:
        proc = _target(node, control.to)
        if proc is not None:
            proc.links.discard(control.from_)
            links = node._remote_links.get(peer)
            if links is not None:
                links.discard((proc.pid, control.from_))
    elif kind is net.Exit:
        proc = _target(node, control.to)
        if proc is not None and control.from_ in proc.links:
            proc.links.discard(control.from_)
            links = node._remote_links.get(peer)
            if links is not None:
                links.discard((proc.pid, control.from_))
            node._exit_signal(proc, control.from_, control.reason)
    elif kind is net.Down:
        node._fire_remote_monitor(peer, control.ref, control.reason)
    else:
        _log.error("unknown control %r from %s ignored", control, peer)


def _remote_monitor(node: "Node", control: Any) -> None:
    from ._node import _Monitor

    proc = _target(node, control.target)
    if proc is None:
        node._net_send_quiet(control.from_.node, "Down", control.from_, control.target, control.ref, NOPROC)
        return
    mon = _Monitor(control.ref, control.from_, control.target, proc.pid)
    node._monitors_by_target.setdefault(proc.pid, {})[control.ref] = mon
    node._monitor_index[control.ref] = proc.pid
