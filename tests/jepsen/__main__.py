"""`python -m tests.jepsen --minutes N --seed S [--nodes 3|5] [--no-partitions]`: a soak run; exit 1 on any anomaly."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from ._run import JepsenConfig, run_jepsen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.jepsen", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="how long the workload and nemesis run")
    parser.add_argument("--seed", type=int, default=1, help="fixes the fault schedule and the workload")
    parser.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    parser.add_argument("--ttl", type=float, default=2.0, help="lock TTL in seconds")
    parser.add_argument(
        "--no-partitions", action="store_true", help="nodes dial each other directly: no proxy, no partitions"
    )
    parser.add_argument("--faults", help="only these fault kinds, comma-separated (default: every kind)")
    parser.add_argument("--verbose", action="store_true", help="show the client node's connection warnings")
    args = parser.parse_args(argv)
    # Under a nemesis the client node warns on every refused dial; the report says what matters.
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)
    config = JepsenConfig(
        seconds=args.minutes * 60,
        seed=args.seed,
        nodes=args.nodes,
        lock_ttl=args.ttl,
        checker_timeout=max(120.0, args.minutes * 30),
        partitions=not args.no_partitions,
        fault_kinds=tuple(args.faults.split(",")) if args.faults else None,
    )
    report = trio.run(run_jepsen, config)
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
