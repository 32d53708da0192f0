"""The Raft core's messages as they cross between nodes.

The core's messages are plain frozen dataclasses (the core imports no codec); here
they are registered with ergo_py's CBOR codec under fixed names, so moving a class
never breaks a running cluster. `RaftEnvelope` adds the cluster id: a replica drops
traffic from another cluster instead of letting it disturb elections. `JoinProbe` /
`JoinProbeAck` are how a leader checks that a node it is asked to add runs a replica
of this cluster before it proposes anything.

`AppendEntries` carries the log itself, so it has a compact wire form: its entries
as one flat list `[index, term, type, data, index, term, ...]` instead of one tagged
object (with a nested enum object) per entry; that halves the cost of replicating an
entry. Its decoder checks every value, since it rebuilds a peer's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ergo_py.net import register_type

from ..raft import MESSAGE_TYPES, AppendEntries, ConfChange, ConfChangeType, ConfState, Entry, EntryType, SnapshotMeta

__all__ = ["JoinProbe", "JoinProbeAck", "RaftEnvelope", "peer_id", "peer_process"]

register_type(EntryType, name="global_kv.raft.EntryType")
register_type(Entry, name="global_kv.raft.Entry")
register_type(ConfState, name="global_kv.raft.ConfState")
register_type(ConfChangeType, name="global_kv.raft.ConfChangeType")
register_type(ConfChange, name="global_kv.raft.ConfChange")  # in ConfChangeRejected
register_type(SnapshotMeta, name="global_kv.raft.SnapshotMeta")
_ENTRY_TYPES = {int(t): t for t in EntryType}


def _append_to_wire(m: AppendEntries) -> list[Any]:
    flat: list[Any] = []
    for e in m.entries:
        flat += (e.index, e.term, int(e.type), e.data)
    return [m.term, m.src, m.dst, m.prev_index, m.prev_term, flat, m.commit]


def _append_from_wire(values: list[Any]) -> AppendEntries:
    if len(values) != 7:
        raise ValueError(f"expected 7 fields, got {len(values)}")
    term, src, dst, prev_index, prev_term, flat, commit = values
    for what, v in (("term", term), ("prev_index", prev_index), ("prev_term", prev_term), ("commit", commit)):
        if type(v) is not int or v < 0:
            raise ValueError(f"{what} must be a non-negative int, got {v!r:.40}")
    if type(src) is not str or type(dst) is not str:
        raise TypeError("src and dst must be strings")
    if type(flat) is not list or len(flat) % 4:
        raise ValueError("entries must be a flat list of (index, term, type, data) quadruples")
    entries = []
    types = _ENTRY_TYPES
    for i in range(0, len(flat), 4):
        index, eterm, etype, data = flat[i : i + 4]
        if type(index) is not int or type(eterm) is not int or index < 1 or eterm < 0:
            raise ValueError(f"entry index and term must be ints, got {index!r:.20}, {eterm!r:.20}")
        kind = types.get(etype) if type(etype) is int else None
        if kind is None or type(data) is not bytes:
            raise ValueError(f"entry {index}: bad type {etype!r:.20} or data that is not bytes")
        entries.append(Entry(index, eterm, kind, data))
    return AppendEntries(term, src, dst, prev_index, prev_term, tuple(entries), commit)


for _cls in MESSAGE_TYPES:
    if _cls is AppendEntries:
        register_type(_cls, name=f"global_kv.raft.{_cls.__name__}", wire=(_append_to_wire, _append_from_wire))
    else:
        register_type(_cls, name=f"global_kv.raft.{_cls.__name__}")


@register_type(name="global_kv.leader.RaftEnvelope")
@dataclass(frozen=True, slots=True)
class RaftEnvelope:
    cluster_id: str
    message: Any


@register_type(name="global_kv.leader.JoinProbe")
@dataclass(frozen=True, slots=True)
class JoinProbe:
    """From a leader about to add a member: "are you a replica, and of which cluster?"."""

    cluster_id: str


@register_type(name="global_kv.leader.JoinProbeAck")
@dataclass(frozen=True, slots=True)
class JoinProbeAck:
    """A replica's answer to `JoinProbe`: its cluster id and Raft id."""

    cluster_id: str
    replica: str


def peer_id(name: str, node: str) -> str:
    """The Raft id of the replica registered as `name` on `node`: "name@node"."""
    return f"{name}@{node}"


def peer_process(pid_str: str) -> tuple[str, str]:
    """(name, node) of a Raft id made by `peer_id` (registered names never contain '@')."""
    name, _, node = pid_str.partition("@")
    return name, node
