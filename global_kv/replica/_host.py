"""What a replica may ask of the runtime it runs on: questions, never actions.

The answers are the runtime's view now (which links are up, which nodes it can dial,
which local processes are gone, how a Raft id is named to clients). The actor shell
answers from its ergo_py node; the simulator from its ground truth, so the same
replica code takes its decisions from either.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Host"]


class Host(Protocol):
    def is_connected(self, node: str) -> bool:
        """A link to `node` is up now."""
        ...

    def can_reach(self, node: str) -> bool:
        """`node` can be sent to now or dialled (False for a client without a listener
        that has not dialled us)."""
        ...

    def is_gone(self, owner: Any) -> bool:
        """`owner` is a process of this very node, and it has exited."""
        ...

    def leader_hint(self, raft_id: str | None) -> Any:
        """What a `NotLeader` names for the replica `raft_id` (None: unknown)."""
        ...
