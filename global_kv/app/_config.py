"""`GlobalConfig`: the seed's configuration, with its defaults, checked once at start.

Times are milliseconds as in the seed. A bad value is refused with a message that
names the field and the allowed range; nothing is silently adjusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ergo_py import ProcessID

from ..leader import LeaderConfigError, LeaderOptions
from ..replica import READ_CONSISTENCIES
from ..storage import ENGINE_NAMES

__all__ = ["GlobalConfig", "READ_CONSISTENCIES", "GlobalConfigError"]


class GlobalConfigError(LeaderConfigError):
    """A GlobalConfig value is out of range; the message names it."""


@dataclass(frozen=True)
class GlobalConfig:
    """Configuration of one Global replica (same on every member but data_dir)."""

    cluster_id: str = "global"
    bootstrap: Sequence[ProcessID] = field(default_factory=tuple)
    # Raft
    election_timeout_min: int = 150
    election_timeout_max: int = 300
    heartbeat_interval: int = 50
    tick_interval: int = 10
    # An idle group stops heartbeating; monitors of the peers wake it (RaftConfig.quiesce).
    quiesce: bool = True
    # Storage
    storage_type: str = "memory"
    data_dir: str | None = None
    snapshot_interval: int = 10_000
    snapshot_threshold: int = 5_000
    # Replication
    max_entries_per_msg: int = 100
    max_inflight_msgs: int = 10
    # Locks
    default_lock_ttl: int = 0  # seconds; 0 = no TTL
    lock_check_interval: int = 1000  # ms
    max_lock_waiters: int = 100
    # A lock owner on a node this leader cannot dial (a client without a listener) gets this
    # long (ms) to link to a new leader before it counts as gone.
    owner_grace_period: int = 5000
    # Watches: an idle watch that asked for progress notifications gets one this often (ms;
    # checked every lock_check_interval).
    watch_progress_interval: int = 5000
    # Automatic compaction of the key history, as etcd's --auto-compaction-mode/-retention:
    # "" (off, the default), "revision" (keep the last N revisions) or "periodic" (keep N
    # seconds of history).
    auto_compaction_mode: str = ""
    auto_compaction_retention: int = 0
    # Limits on what one client request may carry or get back (etcd's --max-request-bytes).
    max_request_bytes: int = 1_572_864
    max_response_bytes: int = 8 * 1024 * 1024
    max_batch_items: int = 10_000
    # Performance
    read_consistency: str = "linearizable"
    compress_values: bool = False
    compress_threshold: int = 1024
    # Operational
    client_url: str = ""  # this node's etcd API, as etcd's MemberList shows it ("": none)
    metrics_enabled: bool = False
    log_level: str = "INFO"
    session_expiry_entries: int = 100_000

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise GlobalConfigError(f"invalid GlobalConfig: {what}")

        need(bool(self.cluster_id), "cluster_id must be a non-empty string")
        need(isinstance(self.client_url, str), "client_url must be a string (a URL, or empty)")
        need(
            0 < self.election_timeout_min < self.election_timeout_max,
            "need 0 < election_timeout_min < election_timeout_max (ms)",
        )
        need(
            0 < self.heartbeat_interval < self.election_timeout_min,
            "need 0 < heartbeat_interval < election_timeout_min (ms)",
        )
        need(0 < self.tick_interval <= self.heartbeat_interval, "need 0 < tick_interval <= heartbeat_interval (ms)")
        need(
            self.storage_type in ENGINE_NAMES,
            f"storage_type must be one of {sorted(ENGINE_NAMES)}, got {self.storage_type!r}",
        )
        need(
            self.storage_type == "memory" or bool(self.data_dir),
            f"storage_type {self.storage_type!r} is durable and needs a data_dir",
        )
        need(self.snapshot_interval >= 1, "snapshot_interval must be >= 1")
        need(0 <= self.snapshot_threshold, "snapshot_threshold must be >= 0")
        need(self.max_entries_per_msg >= 1, "max_entries_per_msg must be >= 1")
        need(self.max_inflight_msgs >= 1, "max_inflight_msgs must be >= 1")
        need(self.default_lock_ttl >= 0, "default_lock_ttl must be >= 0 seconds (0 = no TTL)")
        need(self.lock_check_interval > 0, "lock_check_interval must be > 0 ms")
        need(self.watch_progress_interval > 0, "watch_progress_interval must be > 0 ms")
        need(
            self.auto_compaction_mode in ("", "revision", "periodic"),
            'auto_compaction_mode must be "", "revision" or "periodic"',
        )
        need(
            self.auto_compaction_retention > 0 if self.auto_compaction_mode else self.auto_compaction_retention >= 0,
            "auto_compaction_retention must be > 0 with a mode (revisions or seconds)",
        )
        need(self.max_lock_waiters >= 0, "max_lock_waiters must be >= 0")
        need(
            self.read_consistency in READ_CONSISTENCIES,
            f"read_consistency must be one of {READ_CONSISTENCIES}, got {self.read_consistency!r}",
        )
        need(self.owner_grace_period >= 0, "owner_grace_period must be >= 0 ms")
        need(
            1024 <= self.max_request_bytes <= 8 * 1024 * 1024,
            "max_request_bytes must be 1 KiB..8 MiB (one entry must fit a message)",
        )
        need(
            64 * 1024 <= self.max_response_bytes <= 12 * 1024 * 1024,
            "max_response_bytes must be 64 KiB..12 MiB (below the 16 MiB message limit)",
        )
        need(self.max_batch_items >= 1, "max_batch_items must be >= 1")
        need(self.compress_threshold >= 0, "compress_threshold must be >= 0 bytes")
        need(self.session_expiry_entries >= 1000, "session_expiry_entries must be >= 1000")
        need(
            self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
            f"unknown log_level {self.log_level!r}",
        )

    @property
    def lease_reads(self) -> bool:
        return self.read_consistency == "lease"

    def leader_options(self) -> LeaderOptions:
        return LeaderOptions(
            cluster_id=self.cluster_id,
            bootstrap=tuple(self.bootstrap),
            election_timeout=(self.election_timeout_min / 1000, self.election_timeout_max / 1000),
            heartbeat_interval=self.heartbeat_interval / 1000,
            tick_interval=self.tick_interval / 1000,
            data_dir=self.data_dir if self.storage_type != "memory" else None,
            lease_reads=self.lease_reads,
            quiesce=self.quiesce,
            max_entries_per_msg=self.max_entries_per_msg,
            max_inflight_msgs=self.max_inflight_msgs,
            snapshot_interval=self.snapshot_interval,
        )
