"""Helpers for the simulator's tests: find the first seed that notices an injected bug."""

from __future__ import annotations

from typing import Any

from global_kv._errors import SimulationFailure
from global_kv.sim import Simulation


def first_failure(seeds: range, **options: Any) -> SimulationFailure:
    """The failure of the first seed in `seeds` that fails (AssertionError if none does)."""
    for seed in seeds:
        try:
            Simulation(seed, **options).run()
        except SimulationFailure as exc:
            return exc
    raise AssertionError(f"no seed in {seeds} noticed the bug")
