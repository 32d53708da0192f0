"""`benchmarks/bench_wakeup.py` end to end, tiny: every loop and sleep length is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_wakeup_measures_every_loop(tmp_path: Path) -> None:
    out = tmp_path / "wakeup.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_wakeup.py"), "--seconds", "0.05", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    rows = json.loads(out.read_text())["results"]
    assert {(r["loop"], r["sleep_ms"]) for r in rows} == {
        (loop, ms) for loop in ("time.sleep", "epoll.poll", "trio.sleep") for ms in (0.0, 1.0, 10.0)
    }
    assert all(r["n"] > 0 and r["cpu_us_per_wakeup"] >= 0 for r in rows)
    assert "| trio.sleep | 10 |" in result.stdout.decode()
