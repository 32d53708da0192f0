"""The settings a replica decides by. Times are seconds on the replica's own clock.

The shell builds them from `GlobalConfig` (`GlobalConfig.replica_options()`), the
simulator from its seed (one simulated tick is one millisecond there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._validate import Limits

__all__ = ["ReplicaOptions"]


@dataclass(frozen=True, slots=True)
class ReplicaOptions:
    # Values of at least `compress_threshold` bytes are stored zlib-compressed if set.
    compress_values: bool = False
    compress_threshold: int = 1024
    # A read that names no consistency level gets this one.
    read_consistency: str = "linearizable"
    # A range or prefix answer stops adding pairs at this many bytes.
    max_response_bytes: int = 4 * 1024 * 1024
    # An acquire without a TTL gets this many seconds (0: until released or its owner dies).
    default_lock_ttl: float = 0.0
    max_lock_waiters: int = 1000
    # A TTL expiry proposed but not decided this long (lost with a leader) is proposed again.
    expiry_retry: float = 1.0
    # How long an owner on a node we cannot dial may take to link to a new leader.
    owner_grace_period: float = 10.0
    # A ReadIndex round that has not come back in this long is failed (its readers retry).
    read_round_timeout: float = 5.0
    # Every this many applied entries, the driver snapshots and compacts the log, once the
    # entries since the last snapshot add up to this fraction of its size (so snapshots
    # of a big state, with its history, cost each entry a bounded amount).
    snapshot_interval: int = 10_000
    snapshot_log_fraction: float = 0.5
    # An idle, caught-up watch that asked for progress notifications gets one this often.
    watch_progress_interval: float = 5.0
    # Automatic compaction of the key history (off by default): "revision" keeps the last
    # `auto_compaction_retention` revisions, "periodic" that many seconds of history.
    auto_compaction_mode: str = ""
    auto_compaction_retention: float = 0.0
    limits: Limits = field(default_factory=lambda: Limits(max_request_bytes=1 << 20, max_batch_items=1000))
