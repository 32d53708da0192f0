"""`benchmarks/bench_apply.py` end to end, tiny: every engine and workload is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_apply_measures_every_engine_and_workload(tmp_path: Path) -> None:
    out = tmp_path / "apply.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_apply.py")]
    cmd += ["--batches", "5", "--batch", "4", "--keys", "50", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    rows = json.loads(out.read_text())["results"]
    assert {(r["engine"], r["workload"]) for r in rows} == {
        (e, w) for e in ("memory", "leveldb", "lmdb", "hybrid") for w in ("put", "delete_range+put")
    }
    assert all(r["us_per_write"] > 0 and r["writes"] == 20 for r in rows)
    assert "us/write" in result.stdout.decode()
