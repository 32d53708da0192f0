"""`ProcessTables`: who is registered, who watches whom and who is linked to whom, on one node.

The node (`_node`) and its distribution side (`_remote`) both change these relations,
and only through the methods here, so each invariant has one place that keeps it:

- a name maps to at most one process, and that process's `name` is that name;
- a monitor on a local process is found both by its target and by its ref;
- for every local process P and every remote PID R in `P.links`, `(P.pid, R)` is in the
  index of R's node, so losing that node finds every link it broke.

Plain data and methods: no trio, no network, no mailboxes. What a removal means for
the world (a DOWN to deliver, an exit signal, a message to another node) is returned to
the caller to carry out, never done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ._errors import NameTaken
from ._messages import MessageDownNode, MessageDownPID, MessageDownProcessID
from .ids import PID, ProcessID, Ref

__all__ = ["Entry", "Monitor", "Departure", "NodeLoss", "ProcessTables", "down_message"]


class Entry(Protocol):
    """What the tables need of a local process (`Process` is one)."""

    pid: PID
    name: str | None
    links: set[PID]  # everyone this process is linked to, local or remote
    monitors: dict[Ref, Any]  # monitors this process holds: ref -> PID, ProcessID or node name


E = TypeVar("E", bound=Entry)


def down_message(target: Any, reason: Any) -> MessageDownPID | MessageDownProcessID | MessageDownNode:
    """The DOWN a watcher gets for `target`, named as the watcher named it."""
    if isinstance(target, str):
        return MessageDownNode(target)
    if isinstance(target, ProcessID):
        return MessageDownProcessID(target, reason)
    return MessageDownPID(target, reason)


@dataclass(frozen=True, slots=True)
class Monitor:
    """One monitor: `watcher` (a local or remote PID) watches `target` (PID, ProcessID or node name)."""

    ref: Ref
    watcher: PID
    target: Any

    def down(self, reason: Any) -> MessageDownPID | MessageDownProcessID | MessageDownNode:
        return down_message(self.target, reason)


@dataclass
class Departure:
    """What a process that ended leaves for the node to tell, in this order."""

    demonitors: list[Monitor] = field(default_factory=list)  # its monitors of processes on other nodes
    watchers: list[Monitor] = field(default_factory=list)  # monitors on it: each watcher gets a DOWN
    links: list[PID] = field(default_factory=list)  # everyone it was linked to: each gets an exit signal


@dataclass
class NodeLoss:
    """What losing the link to a node breaks, for the node to tell, in this order."""

    monitors: list[Monitor] = field(default_factory=list)  # local watchers of processes there
    links: list[tuple[PID, PID]] = field(default_factory=list)  # (local, remote) links to processes there
    node_monitors: list[Monitor] = field(default_factory=list)  # local watchers of the node itself


class ProcessTables(Generic[E]):
    """The names, monitors and links of one node (`node` is its name)."""

    __slots__ = ("_node", "_names", "_by_target", "_target_of", "_remote", "_of_node", "_remote_links")

    def __init__(self, node: str) -> None:
        self._node = node
        self._names: dict[str, E] = {}
        self._by_target: dict[PID, dict[Ref, Monitor]] = {}  # monitors on local processes
        self._target_of: dict[Ref, PID] = {}  # monitor ref -> the local process it watches
        self._remote: dict[str, dict[Ref, Monitor]] = {}  # monitors of processes on a node, by that node
        self._of_node: dict[str, dict[Ref, Monitor]] = {}  # monitors of a node itself
        self._remote_links: dict[str, set[tuple[PID, PID]]] = {}  # node -> (local, remote)

    # -- names -----------------------------------------------------------------------------
    def whereis(self, name: str) -> E | None:
        return self._names.get(name)

    def registered(self) -> dict[str, PID]:
        return {name: entry.pid for name, entry in self._names.items()}

    def register(self, name: str, entry: E) -> None:
        """Give `entry` the name (a process has at most one: registering again renames it)."""
        if not isinstance(name, str) or not name or "@" in name:
            raise ValueError(f"invalid process name {name!r}: a non-empty string without '@'")
        holder = self._names.get(name)
        if holder is not None and holder is not entry:
            raise NameTaken(name, holder.pid)
        if entry.name is not None and entry.name != name:
            self._names.pop(entry.name, None)
        self._names[name] = entry
        entry.name = name

    def unregister(self, entry: E) -> None:
        if entry.name is not None:
            if self._names.get(entry.name) is entry:
                del self._names[entry.name]
            entry.name = None

    # -- monitors --------------------------------------------------------------------------
    def add_monitor(self, ref: Ref, watcher: PID, target: Any, pid: PID) -> None:
        """`watcher` (here or remote) watches the local process `pid`, named `target`."""
        self._by_target.setdefault(pid, {})[ref] = Monitor(ref, watcher, target)
        self._target_of[ref] = pid

    def add_remote_monitor(self, ref: Ref, watcher: PID, target: PID | ProcessID) -> None:
        """A local `watcher` watches a process on `target.node`."""
        self._remote.setdefault(target.node, {})[ref] = Monitor(ref, watcher, target)

    def add_node_monitor(self, ref: Ref, watcher: PID, node: str) -> None:
        """A local `watcher` watches the link to `node`."""
        self._of_node.setdefault(node, {})[ref] = Monitor(ref, watcher, node)

    def remove_monitor(self, ref: Ref, target: Any) -> Monitor | None:
        """Forget monitor `ref` on `target`; the monitor, if there was one."""
        if isinstance(target, str):
            return _pop(self._of_node, target, ref)
        if target.node != self._node:
            return _pop(self._remote, target.node, ref)
        pid = self._target_of.pop(ref, None)
        return None if pid is None else _pop(self._by_target, pid, ref)

    def pop_remote_monitor(self, node: str, ref: Ref) -> Monitor | None:
        """Take monitor `ref` of a process on `node` (it fired: `node` sent its DOWN, or cannot)."""
        return _pop(self._remote, node, ref)

    def pop_node_monitors(self, node: str) -> list[Monitor]:
        """Take every monitor of `node` itself (the link to it is down, or there is none)."""
        return list(self._of_node.pop(node, {}).values())

    def monitored_by(self, pid: PID) -> int:
        """How many monitors watch the local process `pid`."""
        return len(self._by_target.get(pid, ()))

    # -- links -----------------------------------------------------------------------------
    def link(self, entry: E, pid: PID) -> None:
        """`entry` is linked to `pid` (one side: a local pair is two calls)."""
        entry.links.add(pid)
        if pid.node != self._node:
            self._remote_links.setdefault(pid.node, set()).add((entry.pid, pid))

    def unlink(self, entry: E, pid: PID) -> bool:
        """`entry` is no longer linked to `pid`; True if it was."""
        linked = pid in entry.links
        entry.links.discard(pid)
        if pid.node != self._node:
            links = self._remote_links.get(pid.node)
            if links is not None:
                links.discard((entry.pid, pid))
                if not links:
                    del self._remote_links[pid.node]
        return linked

    # -- whole processes and nodes ---------------------------------------------------------
    def remove_process(self, entry: E) -> Departure:
        """Forget everything of a process that ended: its name, monitors and links."""
        self.unregister(entry)
        gone = Departure()
        for ref, target in entry.monitors.items():
            mon = self.remove_monitor(ref, target)
            if mon is not None and not isinstance(target, str) and target.node != self._node:
                gone.demonitors.append(mon)
        entry.monitors.clear()
        pid = entry.pid
        for ref, mon in self._by_target.pop(pid, {}).items():
            self._target_of.pop(ref, None)
            gone.watchers.append(mon)
        gone.links = list(entry.links)
        for other in gone.links:
            if other.node != self._node:
                self.unlink(entry, other)
        entry.links.clear()
        return gone

    def remove_node(self, node: str) -> NodeLoss:
        """Forget everything that refers to `node`, whose link is down."""
        lost = NodeLoss(
            monitors=list(self._remote.pop(node, {}).values()),
            links=list(self._remote_links.pop(node, ())),
        )
        # Monitors that processes there hold on local ones: their DOWN could never be delivered.
        for pid, mons in list(self._by_target.items()):
            for ref in [r for r, m in mons.items() if m.watcher.node == node]:
                del mons[ref]
                self._target_of.pop(ref, None)
            if not mons:
                del self._by_target[pid]
        lost.node_monitors = self.pop_node_monitors(node)
        return lost

    def statistics(self) -> dict[str, int]:
        """Table sizes: what a leak would show up in."""
        return {
            "names": len(self._names),
            "monitors": len(self._target_of),
            "remote_monitors": sum(len(m) for m in self._remote.values()),
            "node_monitors": sum(len(m) for m in self._of_node.values()),
            "remote_links": sum(len(s) for s in self._remote_links.values()),
        }


def _pop(table: dict[Any, dict[Ref, Monitor]], key: Any, ref: Ref) -> Monitor | None:
    """Take `table[key][ref]`, dropping `table[key]` once it is empty."""
    mons = table.get(key)
    if mons is None:
        return None
    mon = mons.pop(ref, None)
    if not mons:
        del table[key]
    return mon
