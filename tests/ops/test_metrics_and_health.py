"""The Prometheus exposition and the /health verdict, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ergo_py import PID, ProcessID
from global_kv.ops import METRIC_NAMES, MetricsIncomplete, health_from_status, render_metrics
from global_kv.protocol import StatusResponse

NODE = "n1@localhost"


def status(**changes: Any) -> StatusResponse:
    fields: dict[str, Any] = dict(  # noqa: C408 - keyword form reads as a StatusResponse
        node_id=PID(NODE, 7, 1),
        is_leader=True,
        leader=ProcessID("global", NODE),
        term=4,
        commit_index=120,
        last_applied=118,
        peers=tuple(ProcessID("global", f"n{i}@localhost") for i in (1, 2, 3)),
        lock_count=2,
        storage_size=4096,
        has_quorum=True,
        commit_lag=2,
        storage_ok=True,
    )
    fields.update(changes)
    return StatusResponse(**fields)


def metrics(**changes: Any) -> dict[str, Any]:
    """The shape GlobalActor.metrics() returns."""
    data: dict[str, Any] = {
        "is_leader": 1,
        "term": 4,
        "peers_count": 3,
        "commit_index": 120,
        "last_applied": 118,
        "replication_match": {"global@n1@localhost": 120, "global@n2@localhost": 120, "global@n3@localhost": 100},
        "writes_total": 1000,
        "reads_total": 5000,
        "locks_acquired_total": 10,
        "locks_released_total": 8,
        "commit_latency_ms": {"0.5": 2.0, "0.95": 5.0, "0.99": 10.0},
        "storage_size_bytes": 4096,
        "log_entries": 60,
        "snapshots_total": 1,
        "locks_held": 2,
        "lock_waiters": 3,
        "revision": 77,
        "compact_revision": 40,
        "leases_held": 5,
        "lease_expiries_total": 6,
        "watchers": 3,
        "watch_events_sent_total": 12,
        "leader_changes_total": 2,
        "replica_restarts_total": 1,
        "requests_rejected_total": {"invalid": 4},
    }
    data.update(changes)
    return data


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_seed_metric_is_exported_with_node_label_and_value() -> None:
    got = samples(render_metrics(metrics(), status(), node=NODE))
    node = (("node", NODE),)
    expected = {
        "global_is_leader": 1,
        "global_term": 4,
        "global_peers_count": 3,
        "global_commit_index": 120,
        "global_last_applied": 118,
        "global_writes_total": 1000,
        "global_reads_total": 5000,
        "global_locks_acquired_total": 10,
        "global_locks_released_total": 8,
        "global_storage_size_bytes": 4096,
        "global_log_entries": 60,
        "global_snapshots_total": 1,
        "global_locks_held": 2,
        "global_lock_waiters": 3,
        "global_revision": 77,
        "global_compact_revision": 40,
        "global_leases_held": 5,
        "global_lease_expiries_total": 6,
        "global_watchers": 3,
        "global_watch_events_sent_total": 12,
        "global_leader_changes_total": 2,
        "global_replica_restarts_total": 1,
        "global_has_quorum": 1,
        "global_commit_lag": 2,
        "global_storage_ok": 1,
    }
    for name, value in expected.items():
        assert got[(name, node)] == value, name
    for q, value in (("0.5", 2.0), ("0.95", 5.0), ("0.99", 10.0)):
        assert got[("global_commit_latency_ms", (("node", NODE), ("quantile", q)))] == value
    for reason, value in (("invalid", 4), ("too_large", 0), ("internal", 0)):
        assert got[("global_requests_rejected_total", (("node", NODE), ("reason", reason)))] == value


def test_replication_series_are_per_follower_by_node_name_without_the_leader_itself() -> None:
    got = samples(render_metrics(metrics(), status(), node=NODE))
    peers = {dict(labels).get("peer") for (name, labels) in got if name == "global_replication_lag_entries"}
    assert peers == {"n2@localhost", "n3@localhost"}
    lag = {dict(l)["peer"]: v for (n, l), v in got.items() if n == "global_replication_lag_entries"}
    assert lag == {"n2@localhost": 0, "n3@localhost": 20}  # commit 120 - match
    match = {dict(l)["peer"]: v for (n, l), v in got.items() if n == "global_replication_match_index"}
    assert match == {"n2@localhost": 120, "n3@localhost": 100}


def test_counters_are_typed_as_counters_and_names_match_the_declared_list() -> None:
    families = {
        f.name: f.type for f in text_string_to_metric_families(render_metrics(metrics(), status(), node=NODE).decode())
    }
    assert families["global_writes"] == "counter"
    assert families["global_locks_held"] == "gauge"
    exported = {f"{name}_total" if kind == "counter" else name for name, kind in families.items()}
    assert exported == set(METRIC_NAMES)


def test_replication_lag_ms_is_exported_only_when_the_replica_measures_it() -> None:
    without = samples(render_metrics(metrics(), status(), node=NODE))
    assert not any(name == "global_replication_lag_ms" for name, _ in without)
    with_ms = samples(render_metrics(metrics(replication_lag_ms={"global@n2@localhost": 3.5}), status(), node=NODE))
    assert with_ms[("global_replication_lag_ms", (("node", NODE), ("peer", "n2@localhost")))] == 3.5


def test_gc_pauses_are_exported_per_generation_when_the_replica_reports_them() -> None:
    assert not any(name.startswith("global_gc_") for name, _ in samples(render_metrics(metrics(), status(), node=NODE)))
    report = {"count": [40, 4, 1], "seconds": [0.01, 0.004, 0.03], "max_seconds": [0.001, 0.002, 0.03]}
    got = samples(render_metrics(metrics(gc_pause=report), status(), node=NODE))
    full = (("generation", "2"), ("node", NODE))
    assert got[("global_gc_pauses_total", full)] == 1
    assert got[("global_gc_pause_seconds_total", full)] == 0.03
    assert got[("global_gc_pause_max_seconds", (("generation", "1"), ("node", NODE)))] == 0.002


def test_a_missing_metric_raises_naming_it_instead_of_exporting_zero() -> None:
    data = metrics()
    del data["writes_total"]
    del data["commit_latency_ms"]
    with pytest.raises(MetricsIncomplete) as info:
        render_metrics(data, status(), node=NODE)
    assert info.value.missing == ("writes_total", "commit_latency_ms")


def test_health_is_ok_and_200_when_the_replica_can_serve() -> None:
    health = health_from_status(status(), node=NODE)
    assert health.http_status == 200
    body = health.to_json()
    assert list(body)[:5] == ["status", "is_leader", "has_quorum", "commit_lag", "storage_ok"]
    assert body["status"] == "ok" and body["is_leader"] is True and body["reasons"] == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"has_quorum": False, "is_leader": False, "leader": None}, "no quorum"),
        ({"storage_ok": False}, "storage failed"),
        ({"commit_lag": 5000}, "lags 5000"),
    ],
)
def test_each_unhealthy_condition_answers_503_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    health = health_from_status(status(**changes), node=NODE, max_commit_lag=1000)
    assert health.http_status == 503
    assert health.to_json()["status"] == "unhealthy"
    assert any(reason in r for r in health.reasons)


def test_a_replica_that_does_not_answer_is_unavailable_503() -> None:
    health = health_from_status(None, node=NODE, error="CallTimeout")
    assert health.http_status == 503
    assert health.to_json()["status"] == "unavailable"
    assert health.has_quorum is False and health.storage_ok is False
    assert "CallTimeout" in health.reasons[0]


def test_a_read_through_the_replica_that_did_not_complete_is_no_quorum_503() -> None:
    """A replica that follows a leader it cannot reach (a silent cut while its group was
    quiet) says it has a quorum; the read through it that did not complete says otherwise."""
    health = health_from_status(status(), node=NODE, unread="CallTimeout: no answer within 2.0 s")
    assert health.http_status == 503 and health.has_quorum is False
    assert health.reasons == (
        "no quorum: a read through this replica did not complete (CallTimeout: no answer within 2.0 s)",
    )
