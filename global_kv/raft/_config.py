"""Tuning knobs of the Raft core, all in ticks, entries or bytes (never seconds).

The core has no clock: the caller decides how long a tick is (the actor shell uses
about 10 ms). Values are checked once, here, so the core can rely on them.
This module must never read the environment, a file, or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import RaftConfigError

__all__ = ["RaftConfig"]


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Configuration of one `RaftNode`.

    heartbeat_tick: a leader sends heartbeats every this many ticks.
    election_tick_min / election_tick_max: a follower that hears nothing from a leader
        starts an election after a timeout drawn uniformly from [min, max) (Raft §5.2).
        `election_tick_min` is also the CheckQuorum period and the time a follower
        ignores vote requests after hearing from its leader.
    max_entries_per_msg / max_bytes_per_msg: caps on one AppendEntries (at least one
        entry is always sent, whatever its size).
    max_inflight_msgs: AppendEntries pipelined to one follower before waiting for acks.
    pre_vote: run a PreVote round before raising the term (thesis §9.6).
    check_quorum: a leader that has not heard from a quorum for `election_tick_min`
        ticks steps down, and followers ignore vote requests while they hear from a
        leader (thesis §4.2.3, §6.2).
    lease_reads: a leader answers `read_index` from its lease without a heartbeat round
        when one is valid. Requires check_quorum. Clock assumption: the tick rates of
        any two replicas differ by less than `lease_margin_ticks` ticks over one
        `election_tick_min` period (see the module docstring of `_node`).
    lease_margin_ticks: how much earlier than `election_tick_min` the lease ends.
    snapshot_chunk_size: bytes of snapshot data per InstallSnapshot message.
    quiesce: an idle group stops ticking (CockroachDB's quiescence). At a heartbeat tick
        where every member holds, and has acknowledged, the whole committed log and
        nothing waits (no proposal, read or transfer), the leader sends one last
        heartbeat marked `quiesce` instead of a round, and stops its heartbeats and
        CheckQuorum; a follower that gets it holding the whole log stops its election
        timer. Any input but a tick wakes a replica. What a quiet group cannot notice by
        itself is a lost peer: the driver must call `RaftNode.wake()` when its failure
        detector (a monitor, a closed link) says a peer it talks to is gone. Safety does
        not depend on it, only how soon a dead leader is replaced.
    """

    heartbeat_tick: int = 5
    election_tick_min: int = 15
    election_tick_max: int = 30
    max_entries_per_msg: int = 100
    max_bytes_per_msg: int = 1 << 20
    max_inflight_msgs: int = 10
    pre_vote: bool = True
    check_quorum: bool = True
    lease_reads: bool = False
    lease_margin_ticks: int = 2
    snapshot_chunk_size: int = 1 << 20
    quiesce: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise RaftConfigError(f"invalid RaftConfig: {what} (got {self!r})")

        need(self.heartbeat_tick >= 1, "heartbeat_tick must be >= 1")
        need(
            self.election_tick_min > self.heartbeat_tick,
            "election_tick_min must be greater than heartbeat_tick",
        )
        need(
            self.election_tick_max > self.election_tick_min,
            "election_tick_max must be greater than election_tick_min (the range is [min, max))",
        )
        need(self.max_entries_per_msg >= 1, "max_entries_per_msg must be >= 1")
        need(self.max_bytes_per_msg >= 1, "max_bytes_per_msg must be >= 1")
        need(self.max_inflight_msgs >= 1, "max_inflight_msgs must be >= 1")
        need(self.snapshot_chunk_size >= 1, "snapshot_chunk_size must be >= 1")
        need(
            not self.lease_reads or self.check_quorum,
            "lease_reads requires check_quorum (the lease is what CheckQuorum guarantees)",
        )
        need(
            0 <= self.lease_margin_ticks < self.election_tick_min,
            "lease_margin_ticks must be in [0, election_tick_min)",
        )
