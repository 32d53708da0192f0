"""The Raft core's messages as they cross between nodes.

The core's messages are plain frozen dataclasses (the core imports no codec); here
they are registered with ergo_py's CBOR codec under fixed names, so moving a class
never breaks a running cluster. `RaftEnvelope` adds the cluster id: a replica drops
traffic from another cluster instead of letting it disturb elections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ergo_py.net import register_type

from ..raft import MESSAGE_TYPES, ConfState, Entry, EntryType, SnapshotMeta

__all__ = ["RaftEnvelope", "peer_id", "peer_process"]

register_type(EntryType, name="global_kv.raft.EntryType")
register_type(Entry, name="global_kv.raft.Entry")
register_type(ConfState, name="global_kv.raft.ConfState")
register_type(SnapshotMeta, name="global_kv.raft.SnapshotMeta")
for _cls in MESSAGE_TYPES:
    register_type(_cls, name=f"global_kv.raft.{_cls.__name__}")


@register_type(name="global_kv.leader.RaftEnvelope")
@dataclass(frozen=True, slots=True)
class RaftEnvelope:
    cluster_id: str
    message: Any


def peer_id(name: str, node: str) -> str:
    """The Raft id of the replica registered as `name` on `node`: "name@node"."""
    return f"{name}@{node}"


def peer_process(pid_str: str) -> tuple[str, str]:
    """(name, node) of a Raft id made by `peer_id` (registered names never contain '@')."""
    name, _, node = pid_str.partition("@")
    return name, node
