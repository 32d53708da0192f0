"""`LeaderOptions`: how a LeaderActor's replica is configured, in seconds, turned into ticks.

The Raft core counts ticks; the actor shell counts one every `tick_interval` seconds
of its clock (waking only for the ticks the core says can do something) and converts
the seconds given here. Bad values are refused at start with a message that
says which and why, never silently adjusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ergo_py import ProcessID

from .._errors import GlobalKVError
from ..raft import RaftConfig

__all__ = ["LeaderOptions", "LeaderConfigError"]


class LeaderConfigError(GlobalKVError, ValueError):
    """A LeaderOptions / GlobalConfig value is out of range."""


@dataclass(frozen=True)
class LeaderOptions:
    """Options of one replica.

    cluster_id: replicas only talk to replicas of the same cluster.
    bootstrap: every initial member (ProcessIDs, this replica among them) - the same
        list on each. A replica not in the list starts empty and waits to be added
        with `join` from the leader.
    election_timeout: (min, max) seconds; a follower that hears no leader for a random
        time in this range starts an election.
    heartbeat_interval: seconds between a leader's heartbeats.
    tick_interval: the shell's clock resolution (seconds per Raft tick).
    data_dir: where term, vote and log are persisted (fsync before acknowledging), and
        whose replica it is (an IDENTITY file: cluster id, node, replica name, written at
        the first start and checked at every later one). None keeps them in memory: a
        restarted replica has lost its log and, if it was a member, must be removed and
        added again (it stops with `LogLost` otherwise).
    quiesce: an idle group stops its heartbeats and election timers (`RaftConfig.quiesce`);
        the shell monitors every peer it hears from and wakes the replica when one is
        lost, so a dead leader is still replaced at once.
    join_timeout: seconds a leader gives a node it is asked to add (`join` with
        `reply_to`) to be connected and to answer as a replica of this cluster.
    """

    cluster_id: str
    bootstrap: Sequence[ProcessID] = ()
    election_timeout: tuple[float, float] = (0.150, 0.300)
    heartbeat_interval: float = 0.050
    tick_interval: float = 0.010
    data_dir: str | None = None
    pre_vote: bool = True
    check_quorum: bool = True
    lease_reads: bool = False
    quiesce: bool = True
    max_entries_per_msg: int = 100
    max_inflight_msgs: int = 10
    snapshot_interval: int = 10_000
    join_timeout: float = 1.5
    seed: int | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise LeaderConfigError(f"invalid leader options: {what}")

        need(isinstance(self.cluster_id, str) and bool(self.cluster_id), "cluster_id must be a non-empty string")
        need(
            all(isinstance(p, ProcessID) for p in self.bootstrap),
            f"bootstrap must be ProcessIDs, got {list(self.bootstrap)!r}",
        )
        need(len(set(self.bootstrap)) == len(self.bootstrap), "bootstrap lists a member twice")
        lo, hi = self.election_timeout
        need(0 < self.tick_interval <= self.heartbeat_interval, "need 0 < tick_interval <= heartbeat_interval")
        need(self.heartbeat_interval < lo, "heartbeat_interval must be shorter than the election timeout")
        need(lo < hi, f"election_timeout must be (min, max) with min < max, got {self.election_timeout}")
        need(self.max_entries_per_msg >= 1, "max_entries_per_msg must be >= 1")
        need(self.max_inflight_msgs >= 1, "max_inflight_msgs must be >= 1")
        need(self.snapshot_interval >= 1, "snapshot_interval must be >= 1")
        need(self.join_timeout > 0, "join_timeout must be > 0 seconds")

    def ticks(self, seconds: float) -> int:
        return max(1, round(seconds / self.tick_interval))

    def raft_config(self) -> RaftConfig:
        lo, hi = self.election_timeout
        heartbeat = self.ticks(self.heartbeat_interval)
        election_min = max(self.ticks(lo), heartbeat + 1)
        return RaftConfig(
            heartbeat_tick=heartbeat,
            election_tick_min=election_min,
            election_tick_max=max(self.ticks(hi), election_min + 1),
            max_entries_per_msg=self.max_entries_per_msg,
            max_inflight_msgs=self.max_inflight_msgs,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum or self.lease_reads,
            lease_reads=self.lease_reads,
            quiesce=self.quiesce,
        )
