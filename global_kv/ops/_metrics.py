"""Prometheus exposition of one replica's metrics, under the seed's names and labels.

The values come from the replica itself (`MetricsRequest` and `StatusRequest` calls to
the local `global` process); this module only names and formats them, with
prometheus-client doing the text format. It keeps no state between scrapes and
must never invent a value: a metric the replica did not report raises
`MetricsIncomplete` instead of being exported as zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..protocol import StatusResponse
from ._errors import MetricsIncomplete

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "metric_families", "render_metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class _Scalar:
    key: str  # in the MetricsRequest dict
    kind: str  # "gauge" | "counter"
    help: str


# One series per node (label `node`), in the seed's order: cluster, replication,
# operations, storage, locks.
_SCALARS = (
    _Scalar("is_leader", "gauge", "1 if this replica is the Raft leader now, else 0"),
    _Scalar("term", "gauge", "current Raft term of this replica"),
    _Scalar("peers_count", "gauge", "members of the cluster as this replica sees them (itself included)"),
    _Scalar("commit_index", "gauge", "highest log index known to be committed"),
    _Scalar("last_applied", "gauge", "highest log index applied to the state machine"),
    _Scalar("writes_total", "counter", "client writes this replica answered as leader"),
    _Scalar("reads_total", "counter", "client reads this replica served from its state"),
    _Scalar("locks_acquired_total", "counter", "lock grants this replica answered as leader"),
    _Scalar("locks_released_total", "counter", "lock releases (unlock, expiry, owner down) seen as leader"),
    _Scalar("storage_size_bytes", "gauge", "approximate size of the storage engine on disk or in memory"),
    _Scalar("log_entries", "gauge", "Raft log entries kept since the last snapshot"),
    _Scalar("snapshots_total", "counter", "snapshots this replica took or installed since it started"),
    _Scalar("locks_held", "gauge", "locks held in the replicated lock table"),
    _Scalar("lock_waiters", "gauge", "waiters queued for locks (known on the leader only)"),
    _Scalar("revision", "gauge", "the store's revision (etcd's): one more per committed change"),
    _Scalar("compact_revision", "gauge", "history at or below this revision is compacted (0: none)"),
    _Scalar("leases_held", "gauge", "leases in the replicated lease table"),
    _Scalar("lease_expiries_total", "counter", "leases this replica saw end by expiry"),
    _Scalar("watchers", "gauge", "watches this member serves now"),
    _Scalar("watch_events_sent_total", "counter", "watch events this member delivered to watchers"),
    _Scalar("leader_changes_total", "counter", "times this node saw a new leader (kept across replica restarts)"),
    _Scalar("replica_restarts_total", "counter", "times this node's supervisor restarted its crashed replica"),
)
_REJECTED = "requests_rejected_total"
# Every reason is exported, 0 until it happens, so that an alert has a series to watch.
REJECT_REASONS = ("invalid", "too_large", "internal")
_LATENCY = "commit_latency_ms"
_MATCH = "replication_match"
_LAG_MS = "replication_lag_ms"  # optional: exported when the replica measures it
_GC = "gc_pause"  # optional: exported when the replica reports it

METRIC_NAMES = (
    *(f"global_{s.key}" for s in _SCALARS),
    f"global_{_LATENCY}",
    f"global_{_REJECTED}",
    "global_replication_match_index",
    "global_replication_lag_entries",
    "global_has_quorum",
    "global_commit_lag",
    "global_storage_ok",
)


def _peer_node(peer: Any) -> str:
    """The node part of a replica id ("global@n2@host" -> "n2@host"), the seed's `peer` label."""
    text = str(getattr(peer, "node", peer))
    _name, sep, node = text.partition("@")
    return node if sep and "@" in node else text


def metric_families(metrics: Mapping[str, Any], status: StatusResponse, *, node: str) -> Iterator[Metric]:
    """The metric families of one replica; raises MetricsIncomplete if the replica left one out."""
    required = [s.key for s in _SCALARS] + [_LATENCY, _MATCH, _REJECTED]
    missing = tuple(k for k in required if k not in metrics)
    if missing:
        raise MetricsIncomplete(missing)
    for scalar in _SCALARS:
        name = f"global_{scalar.key}"
        family: Metric
        if scalar.kind == "counter":
            family = CounterMetricFamily(name, scalar.help, labels=["node"])
        else:
            family = GaugeMetricFamily(name, scalar.help, labels=["node"])
        family.add_metric([node], float(metrics[scalar.key]))
        yield family

    rejected = CounterMetricFamily(
        f"global_{_REJECTED}",
        "client requests refused without being served: invalid (a malformed field), too_large (over a "
        "size limit), internal (serving raised; the replica kept serving)",
        labels=["node", "reason"],
    )
    counts = metrics[_REJECTED]
    for reason in sorted(set(REJECT_REASONS) | set(counts)):
        rejected.add_metric([node, str(reason)], float(counts.get(reason, 0)))
    yield rejected

    latency = GaugeMetricFamily(
        f"global_{_LATENCY}",
        "client write latency on the leader, propose to apply (recent window)",
        labels=["node", "quantile"],
    )
    for quantile, value in sorted(metrics[_LATENCY].items(), key=lambda kv: float(kv[0])):
        latency.add_metric([node, str(quantile)], float(value))
    yield latency

    match = GaugeMetricFamily(
        "global_replication_match_index",
        "highest log index the leader knows each follower stores",
        labels=["node", "peer"],
    )
    lag = GaugeMetricFamily(
        "global_replication_lag_entries",
        "committed entries a follower still lacks (leader's view)",
        labels=["node", "peer"],
    )
    commit = int(metrics["commit_index"])
    for peer, index in sorted(metrics[_MATCH].items(), key=lambda kv: str(kv[0])):
        peer_node = _peer_node(peer)
        if peer_node == node:
            continue  # the leader's own progress is not replication
        match.add_metric([node, peer_node], float(index))
        lag.add_metric([node, peer_node], float(max(0, commit - int(index))))
    yield match
    yield lag

    if _LAG_MS in metrics:
        lag_ms = GaugeMetricFamily(
            f"global_{_LAG_MS}", "replication lag of each follower in milliseconds", labels=["node", "peer"]
        )
        for peer, ms in sorted(metrics[_LAG_MS].items(), key=lambda kv: str(kv[0])):
            if _peer_node(peer) != node:
                lag_ms.add_metric([node, _peer_node(peer)], float(ms))
        yield lag_ms

    if _GC in metrics:
        yield from _gc_families(metrics[_GC], node)

    for name, value, help_ in (
        ("global_has_quorum", status.has_quorum, "1 if this replica leads or follows a known leader"),
        ("global_commit_lag", status.commit_lag, "committed entries not yet applied on this replica"),
        ("global_storage_ok", status.storage_ok, "0 once a storage error stopped this replica from serving"),
    ):
        gauge = GaugeMetricFamily(name, help_, labels=["node"])
        gauge.add_metric([node], float(value))
        yield gauge


_GC_FAMILIES = (
    ("global_gc_pauses", CounterMetricFamily, "count", "collections of Python's garbage collector"),
    ("global_gc_pause_seconds", CounterMetricFamily, "seconds", "time the process stood still in collections"),
    ("global_gc_pause_max_seconds", GaugeMetricFamily, "max_seconds", "the longest collection pause since start"),
)


def _gc_families(report: Mapping[str, Any], node: str) -> Iterator[Metric]:
    """Per generation (0, 1, 2), from the replica's `gc_pause` report."""
    for name, kind, key, help_ in _GC_FAMILIES:
        family = kind(name, f"{help_}, by generation", labels=["node", "generation"])
        for generation, value in enumerate(report[key][:3]):
            family.add_metric([node, str(generation)], float(value))
        yield family


class _Families:
    """What `generate_latest` wants: something with `collect()`."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def render_metrics(metrics: Mapping[str, Any], status: StatusResponse, *, node: str) -> bytes:
    """Prometheus text exposition for one replica; serve it with `CONTENT_TYPE`."""
    return generate_latest(_Families(list(metric_families(metrics, status, node=node))))
