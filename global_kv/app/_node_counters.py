"""Counters that outlive one incarnation of the replica: kept per node, not per process.

A replica that crashes is restarted by its supervisor with fresh state, so a counter
kept in the GlobalActor would read 0 after every crash, exactly when an operator
needs it. These live as long as the node does (a weak reference to it: a node that
stops takes its counters along).
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field

import ergo_py

__all__ = ["NodeCounters", "node_counters"]


@dataclass
class NodeCounters:
    replica_starts: int = 0
    leader_changes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> requests refused

    @property
    def replica_restarts(self) -> int:
        return max(0, self.replica_starts - 1)


_BY_NODE: weakref.WeakKeyDictionary[ergo_py.Node, NodeCounters] = weakref.WeakKeyDictionary()


def node_counters(node: ergo_py.Node) -> NodeCounters:
    counters = _BY_NODE.get(node)
    if counters is None:
        counters = _BY_NODE[node] = NodeCounters()
    return counters
