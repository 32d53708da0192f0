"""`benchmarks/bench_cluster.py` end to end, tiny: every workload kind measures, failover recovers, nothing is left."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import trio

from tests.os_processes import processes_with

ROOT = Path(__file__).resolve().parents[2]


async def test_bench_cluster_runs_every_workload_and_reaps_its_processes(tmp_path: Path) -> None:
    marker = secrets.token_hex(8)
    out = tmp_path / "cluster.json"
    env = dict(os.environ, BENCH_TEST_MARKER=marker)
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_cluster.py"),
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--clients",
        "2",
        "--workloads",
        "W1,W2,W3,W4,W5,W5hot,W6",
        "--storage",
        "memory",
        "--json",
        str(out),
    ]
    with trio.fail_after(120):
        result = await trio.run_process(
            cmd, env=env, capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL
        )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    report = json.loads(out.read_text())
    rows = {r["workload"]: r for r in report["results"]}
    assert set(rows) == {"W1", "W2", "W3", "W4", "W5", "W5hot", "W6"}
    for row in rows.values():
        assert row["ops"] > 0 and row["ops_per_s"] > 0, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], row
    # The leader was killed under load and writes came back (well within the client's timeout).
    assert rows["W6"]["recovery_s"] is not None and 0 < rows["W6"]["recovery_s"] < 5, rows["W6"]
    assert "| W1 | 2 |" in result.stdout.decode()
    assert processes_with(f"BENCH_TEST_MARKER={marker}") == []
