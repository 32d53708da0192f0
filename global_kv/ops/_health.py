"""The `/health` verdict of one replica: the seed's JSON, and when to answer 503.

A replica is healthy when it can take part in the cluster right now: it leads or
follows a known leader (has_quorum), its storage works, and it is not far behind
in applying what was committed. Load balancers and orchestrators act on the HTTP
status alone, so every unhealthy case must be a 503, never a 200 with a bad body.
This module decides; it never calls anything (the server feeds it a status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol import StatusResponse

__all__ = ["DEFAULT_MAX_COMMIT_LAG", "Health", "health_from_status"]

# Committed-but-unapplied entries beyond which a replica is too far behind to serve
# reads at the pace of the others (a healthy replica applies within one Ready).
DEFAULT_MAX_COMMIT_LAG = 1000


@dataclass(frozen=True)
class Health:
    """One health verdict; `reasons` says what made it unhealthy (empty when ok)."""

    status: str  # "ok" | "unhealthy" | "unavailable"
    node: str
    is_leader: bool
    has_quorum: bool
    commit_lag: int
    storage_ok: bool
    leader: str | None
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def to_json(self) -> dict[str, Any]:
        """The seed's fields first (status, is_leader, has_quorum, commit_lag, storage_ok), then ours."""
        return {
            "status": self.status,
            "is_leader": self.is_leader,
            "has_quorum": self.has_quorum,
            "commit_lag": self.commit_lag,
            "storage_ok": self.storage_ok,
            "node": self.node,
            "leader": self.leader,
            "reasons": list(self.reasons),
        }


def health_from_status(
    status: StatusResponse | None,
    *,
    node: str,
    error: str | None = None,
    max_commit_lag: int = DEFAULT_MAX_COMMIT_LAG,
    unread: str | None = None,
) -> Health:
    """The verdict for `status`; with no status (the replica did not answer) it is "unavailable".
    `unread`: why a linearizable read through the replica did not complete (None: it did)."""
    if status is None:
        return Health(
            status="unavailable",
            node=node,
            is_leader=False,
            has_quorum=False,
            commit_lag=0,
            storage_ok=False,
            leader=None,
            reasons=(f"the global replica did not answer: {error or 'not running'}",),
        )
    reasons = []
    has_quorum = status.has_quorum and unread is None
    if not status.has_quorum:
        reasons.append("no quorum: this replica neither leads nor follows a known leader")
    elif unread is not None:
        reasons.append(f"no quorum: a read through this replica did not complete ({unread})")
    if not status.storage_ok:
        reasons.append("storage failed: the replica stopped serving")
    if status.commit_lag > max_commit_lag:
        reasons.append(f"applying lags {status.commit_lag} committed entries behind (limit {max_commit_lag})")
    return Health(
        status="unhealthy" if reasons else "ok",
        node=node,
        is_leader=status.is_leader,
        has_quorum=has_quorum,
        commit_lag=status.commit_lag,
        storage_ok=status.storage_ok,
        leader=status.leader.node if status.leader is not None else None,
        reasons=tuple(reasons),
    )
