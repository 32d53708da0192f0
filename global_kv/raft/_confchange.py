"""Membership changes: what a CONF_CHANGE entry says, and how it is encoded.

Single-server changes (Raft thesis §4.1): each entry adds or removes one server, and
it takes effect on every replica as soon as the entry is in its log (committed or
not); truncating the entry reverts it. The entry stores the change *and* the whole
resulting membership, so a replica that joins late learns the membership from any one
conf entry, and decoding never depends on earlier entries.

The encoding is canonical JSON (stdlib, deterministic): the same change encodes to the
same bytes on every replica. This module must never import a codec or do I/O.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from .._errors import ConfChangeRejected, RaftInvariantError
from ._log_types import ConfState

__all__ = [
    "ConfChange",
    "ConfChangeType",
    "apply_conf_change",
    "decode_conf_entry",
    "encode_conf_entry",
]

_VERSION = 1


class ConfChangeType(enum.IntEnum):
    """The three single-server changes. Stored as an int: values never change meaning."""

    ADD_VOTER = 0  # add a voter, or promote a learner to voter
    ADD_LEARNER = 1  # add a non-voting member that receives the log
    REMOVE_NODE = 2  # remove a voter or learner (the leader too)


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change, as proposed with `RaftNode.propose_conf_change`."""

    type: ConfChangeType
    node_id: str


def apply_conf_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The membership after `change`, or `ConfChangeRejected` if it makes no sense.

    Order of voters and learners is kept stable (appended at the end) so every replica
    derives byte-identical entries.
    """
    node = change.node_id
    if not isinstance(node, str) or not node:
        raise ConfChangeRejected(change, "node ids are non-empty strings")
    voters, learners = list(conf.voters), list(conf.learners)
    if change.type == ConfChangeType.ADD_VOTER:
        if node in voters:
            raise ConfChangeRejected(change, f"{node!r} is already a voter")
        if node in learners:
            learners.remove(node)
        voters.append(node)
    elif change.type == ConfChangeType.ADD_LEARNER:
        if node in voters:
            raise ConfChangeRejected(
                change,
                f"{node!r} is a voter; demoting a voter to learner is not supported",
            )
        if node in learners:
            raise ConfChangeRejected(change, f"{node!r} is already a learner")
        learners.append(node)
    elif change.type == ConfChangeType.REMOVE_NODE:
        if node in voters:
            if len(voters) == 1:
                raise ConfChangeRejected(change, "cannot remove the last voter")
            voters.remove(node)
        elif node in learners:
            learners.remove(node)
        else:
            raise ConfChangeRejected(change, f"{node!r} is not a member")
    else:
        raise ConfChangeRejected(change, f"unknown change type {change.type!r}")
    return ConfState(voters=tuple(voters), learners=tuple(learners))


def encode_conf_entry(change: ConfChange | None, conf: ConfState) -> bytes:
    """Entry data for a CONF_CHANGE entry; `change` is None for the bootstrap entry."""
    doc = {
        "v": _VERSION,
        "op": None if change is None else int(change.type),
        "node": None if change is None else change.node_id,
        "voters": list(conf.voters),
        "learners": list(conf.learners),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_conf_entry(data: bytes) -> tuple[ConfChange | None, ConfState]:
    """(change, membership after it) from CONF_CHANGE entry data.

    Raises `RaftInvariantError`: a conf entry that does not decode means the log is
    corrupt or was written by something else, and guessing the membership is unsafe.
    """
    try:
        doc = json.loads(data)
        if doc["v"] != _VERSION:
            raise ValueError(f"unknown version {doc['v']!r}")
        voters = tuple(str(v) for v in doc["voters"])
        learners = tuple(str(v) for v in doc["learners"])
        change = None if doc["op"] is None else ConfChange(ConfChangeType(doc["op"]), str(doc["node"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RaftInvariantError(f"undecodable configuration entry {data[:80]!r}: {exc}") from exc
    return change, ConfState(voters=voters, learners=learners)
