"""The CI run of the Raft simulator: 1,000 seeds, zero violations.

Each case runs a block of seeds; a failure names the seed and the one-line replay
command. `python -m global_kv.sim --seeds N` runs more (see its --help).
"""

from __future__ import annotations

import pytest

from global_kv._errors import SimulationFailure
from global_kv.sim import SimResult, run_seed

BLOCK = 100
BLOCKS = 10  # 1,000 seeds


@pytest.mark.parametrize(
    "block", range(BLOCKS), ids=lambda b: f"seeds{b * BLOCK}-{b * BLOCK + BLOCK - 1}"
)
def test_simulated_seeds_are_safe_live_and_linearizable(block: int) -> None:
    results: list[SimResult] = []
    for seed in range(block * BLOCK, (block + 1) * BLOCK):
        try:
            results.append(run_seed(seed))
        except SimulationFailure as exc:
            pytest.fail(f"{exc}", pytrace=False)
    # The runs must actually exercise what they claim to.
    assert sum(r.ops for r in results) > 20 * BLOCK
    assert sum(1 for r in results if r.snapshot_installs) >= BLOCK // 4, (
        "InstallSnapshot too rare"
    )
    assert (
        sum(r.crashes for r in results) > BLOCK
        and sum(r.conf_changes for r in results) > BLOCK // 4
    )
    assert sum(r.transfers for r in results) > BLOCK // 10
    assert (
        sum(r.unknown_ops for r in results) > 0 and sum(r.dropped for r in results) > 0
    )
