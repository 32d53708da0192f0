"""The worker-pool example runs: jobs flow from the leader, and continue under a new leader."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import trio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leader_worker_pool.py"


def load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("leader_worker_pool", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("leader_worker_pool", module)
    spec.loader.exec_module(sys.modules["leader_worker_pool"])
    module = sys.modules["leader_worker_pool"]
    return module


async def test_worker_pool_example_fails_over_with_a_higher_token() -> None:
    example = load_example()
    with trio.fail_after(60):
        log = await example.run(12)
    tokens = [int(m.group(1)) for line in log if (m := re.search(r"became leader, fencing token (\d+)", line))]
    assert len(tokens) >= 2 and tokens == sorted(set(tokens)), log
    ran = [
        (int(m.group(1)), int(m.group(2)))
        for line in log
        if (m := re.search(r"ran job (\d+) .* \(token (\d+)\)", line))
    ]
    numbers = [n for n, _ in ran]
    assert len(numbers) == len(set(numbers)), "a job ran twice"
    kill = next(i for i, line in enumerate(log) if "killing" in line)
    after = [
        t for line in log[kill:] if (m := re.search(r"ran job \d+ .* \(token (\d+)\)", line)) for t in [int(m.group(1))]
    ]
    assert after and min(after) > tokens[0]
    assert not any("REJECTED" in line for line in log)
