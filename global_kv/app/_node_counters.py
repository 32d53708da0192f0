"""Counters that outlive one incarnation of the replica: kept per node, not per process.

A replica that crashes is restarted by its supervisor with fresh state, so a counter
kept in the GlobalActor would read 0 after every crash, exactly when an operator
needs it. These live as long as the node does (a weak reference to it: a node that
stops takes its counters along).
"""

from __future__ import annotations

import weakref

import ergo_py

from ..replica import ReplicaCounters

__all__ = ["node_counters"]

_BY_NODE: weakref.WeakKeyDictionary[ergo_py.Node, ReplicaCounters] = weakref.WeakKeyDictionary()


def node_counters(node: ergo_py.Node) -> ReplicaCounters:
    counters = _BY_NODE.get(node)
    if counters is None:
        counters = _BY_NODE[node] = ReplicaCounters()
    return counters
