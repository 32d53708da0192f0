"""`python -m global_kv.sim`: run many seeds (or replay one) and summarise.

    python -m global_kv.sim --seeds 5000            # seeds 0..4999
    python -m global_kv.sim --seeds 1000 --start 7000
    python -m global_kv.sim --seed 1234 -v          # replay one seed with its event log
    python -m global_kv.sim --seeds 2000 --lock-heavy   # 4 lock clients on 1 key, frequent pauses
    python -m global_kv.sim --seeds 100000 --start 10000   # a long run (about an hour)

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
    n_ok = len(results)
    with_snap = sum(1 for r in results if r.snapshot_installs)
    ops = sum(r.ops for r in results)
    unknown = sum(r.unknown_ops for r in results)
    lines = [
        f"seeds run:               {n} ({failures} failed) in {seconds:.1f}s ({seconds / n * 1000:.0f} ms/seed)",
        (
            f"InstallSnapshot applied: in {with_snap} seeds ({100 * with_snap / len(results):.1f}%), "
            f"{sum(r.snapshot_installs for r in results)} installs"
        ),
        (
            f"client operations:       {ops} checked linearizable ({unknown} with unknown outcome; "
            f"{sum(r.transactions for r in results)} two-key transactions)"
        ),
        (
            f"leases:                  {sum(r.lease_grants for r in results)} granted, "
            f"{sum(r.lease_keepalives for r in results)} keep-alives, "
            f"{sum(r.lease_expiries for r in results)} expiries checked against the TTL, "
            f"{sum(r.lease_owner_deaths for r in results)} owners died holding one"
        ),
        (
            f"watches:                 {sum(r.watch_events for r in results)} events checked against the "
            f"history, {sum(r.watch_resumes for r in results)} resumes at another member"
        ),
        f"leaders elected:         {sum(r.leaders for r in results)}",
        f"crashes:                 {sum(r.crashes for r in results)}",
        f"membership changes:      {sum(r.conf_changes for r in results)}",
        f"leadership transfers:    {sum(r.transfers for r in results)}",
        f"compactions:             {sum(r.compactions for r in results)}",
        f"messages sent / dropped: {sum(r.messages for r in results)} / {sum(r.dropped for r in results)}",
        f"seeds with lease reads:  {sum(1 for r in results if r.lease_reads)}",
        (
            f"seeds that went quiet:   {sum(1 for r in results if r.quiet_ticks)} "
            f"({sum(r.quiet_ticks for r in results)} replica-ticks with no timer running)"
        ),
        f"ticks (mean / max):      {sum(r.ticks for r in results) / n_ok:.0f} / {max(r.ticks for r in results)}",
        f"seeds with lock clients: {sum(1 for r in results if r.lock_clients)} "
        f"(lock-clock skew up to {max(r.max_clock_skew for r in results):.2f}x between replicas)",
        (
            f"lock grants:             {sum(r.lock_grants for r in results)} "
            f"({sum(r.lock_expiries for r in results)} ended by TTL expiry, "
            f"{sum(r.owner_releases for r in results)} by owner death/loss, "
            f"{sum(r.lock_refreshes for r in results)} refreshes)"
        ),
        (
            f"client pauses (0.8-3 TTL): {sum(r.pauses for r in results)} "
            f"({sum(r.stale_holders for r in results)} resumed believing they held a lock they had lost); "
            f"client deaths {sum(r.client_deaths for r in results)}, "
            f"cut-offs {sum(r.client_isolations for r in results)}"
        ),
        (
            f"protected writes:        {sum(r.protected_writes for r in results)} accepted, "
            f"{sum(r.stale_writes_refused for r in results)} stale tokens refused, "
            f"{sum(r.overlapping_writes for r in results)} accepted while a newer holder existed"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m global_kv.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    parser.add_argument("--start", type=int, default=0, help="first seed of a --seeds run (default 0)")
    parser.add_argument("--seed", type=int, default=None, help="run (replay) this one seed")
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="cluster size 3..7 (default: chosen by the seed)",
    )
    parser.add_argument(
        "--lock-heavy",
        action="store_true",
        help="four lock clients on one key, frequent pauses, maximal clock skew",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the event log of each run")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    results: list[SimResult] = []
    failures = 0
    started = time.perf_counter()
    for seed in seeds:
        try:
            results.append(run_seed(seed, nodes=args.nodes, verbose=args.verbose, lock_heavy=args.lock_heavy))
        except SimulationFailure as exc:
            failures += 1
            print(f"FAIL seed {exc.seed}: {exc.kind}: {exc.detail}", file=sys.stderr)
            print(f"  replay: {exc.replay}", file=sys.stderr)
    print(_summary(results, failures, time.perf_counter() - started))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
