"""The JSON report the small benchmarks write: the machine's CPU count and load, then their rows.

Imported by the benchmark scripts run as `python benchmarks/<name>.py` (their folder
is then on `sys.path`); it measures nothing itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_report(path: str, rows: list[dict[str, Any]]) -> None:
    """Write `rows` with the CPU count and load average to `path` (folders made), and say where."""
    report = {"cpus": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()], "results": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {path}")
