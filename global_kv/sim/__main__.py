"""`python -m global_kv.sim`: run many seeds (or replay one) and summarise.

    python -m global_kv.sim --seeds 5000            # seeds 0..4999
    python -m global_kv.sim --seeds 1000 --start 7000
    python -m global_kv.sim --seed 1234 -v          # replay one seed with its event log

Exit status 1 if any seed failed; each failure prints its seed and replay command.
"""

from __future__ import annotations

import argparse
import sys
import time

from .._errors import SimulationFailure
from ._simulation import SimResult, run_seed


def _summary(results: list[SimResult], failures: int, seconds: float) -> str:
    n = len(results) + failures
    if not results:
        return f"{n} seeds, {failures} failed, {seconds:.1f}s"
    with_snap = sum(1 for r in results if r.snapshot_installs)
    ops = sum(r.ops for r in results)
    unknown = sum(r.unknown_ops for r in results)
    lines = [
        f"seeds run:               {n} ({failures} failed) in {seconds:.1f}s ({seconds / n * 1000:.0f} ms/seed)",
        (
            f"InstallSnapshot applied: in {with_snap} seeds ({100 * with_snap / len(results):.1f}%), "
            f"{sum(r.snapshot_installs for r in results)} installs"
        ),
        f"client operations:       {ops} checked linearizable ({unknown} with unknown outcome)",
        f"leaders elected:         {sum(r.leaders for r in results)}",
        f"crashes:                 {sum(r.crashes for r in results)}",
        f"membership changes:      {sum(r.conf_changes for r in results)}",
        f"leadership transfers:    {sum(r.transfers for r in results)}",
        f"compactions:             {sum(r.compactions for r in results)}",
        f"messages sent / dropped: {sum(r.messages for r in results)} / {sum(r.dropped for r in results)}",
        f"seeds with lease reads:  {sum(1 for r in results if r.lease_reads)}",
        f"ticks (mean / max):      {sum(r.ticks for r in results) / len(results):.0f} / {max(r.ticks for r in results)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m global_kv.sim", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--seeds", type=int, default=100, help="how many seeds to run (default 100)"
    )
    parser.add_argument(
        "--start", type=int, default=0, help="first seed of a --seeds run (default 0)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="run (replay) this one seed"
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="cluster size 3..7 (default: chosen by the seed)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the event log of each run"
    )
    args = parser.parse_args(argv)
    seeds = (
        [args.seed]
        if args.seed is not None
        else range(args.start, args.start + args.seeds)
    )
    results: list[SimResult] = []
    failures = 0
    started = time.perf_counter()
    for seed in seeds:
        try:
            results.append(run_seed(seed, nodes=args.nodes, verbose=args.verbose))
        except SimulationFailure as exc:
            failures += 1
            print(f"FAIL seed {exc.seed}: {exc.kind}: {exc.detail}", file=sys.stderr)
            print(f"  replay: {exc.replay}", file=sys.stderr)
    print(_summary(results, failures, time.perf_counter() - started))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
