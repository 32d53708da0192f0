"""`benchmarks/bench_codec.py` end to end, tiny: every hot control is encoded and decoded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_codec_times_every_hot_control(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_codec.py"), "--number", "50", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    rows = {r["control"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {
        "Call GetRequest",
        "Call PutRequest, 100-byte value",
        "Reply, 100-byte value",
        "Send AppendEntries, 16 entries",
    }
    assert all(r["encode_us"] > 0 and r["decode_us"] > 0 and r["bytes"] > 0 for r in rows.values())
    assert rows["Send AppendEntries, 16 entries"]["items"] == 16
    assert "a get's round trip" in result.stdout.decode()
