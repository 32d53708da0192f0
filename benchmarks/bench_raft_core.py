"""Committed entries per second of the sans-IO Raft core: 3 replicas, in memory, no I/O.

Measures the core's own cost (propose, replicate, acknowledge, commit, hand out for
applying) so that the actor shell's budget is known. Messages are handed from one core
to the next directly; "persisting" a Ready is appending to a list. One round = the
leader takes a batch of proposals, then every Ready is handled and every message
delivered until the cluster is quiet, as a shell would do between two mailbox reads.

    python benchmarks/bench_raft_core.py            # table + benchmarks/results/bench_raft_core.json
    python benchmarks/bench_raft_core.py --quick    # smaller run
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import deque
from pathlib import Path

from global_kv.raft import Message, RaftConfig, RaftNode, Role

IDS = ("n0", "n1", "n2")


def _cluster(cfg: RaftConfig) -> dict[str, RaftNode]:
    nodes = {i: RaftNode.bootstrap(i, IDS, cfg, random.Random(n)) for n, i in enumerate(IDS)}
    return nodes


def _pump(nodes: dict[str, RaftNode], stored: dict[str, list[object]], applied: dict[str, int]) -> int:
    """Handle Readies and deliver messages until quiet; returns messages delivered."""
    queue: deque[Message] = deque()
    delivered = 0
    while True:
        for i, node in nodes.items():
            while node.has_ready():
                rd = node.ready()
                queue.extend(rd.messages)
                if rd.entries:
                    stored[i].append(rd.entries)  # "persist"
                queue.extend(rd.persisted_messages)
                applied[i] += len(rd.committed_entries)
                node.advance()
        if not queue:
            return delivered
        while queue:
            m = queue.popleft()
            nodes[m.dst].step(m)
            delivered += 1


def run(batch: int, size: int, total: int, per_call: bool) -> dict[str, object]:
    cfg = RaftConfig(heartbeat_tick=5, election_tick_min=15, election_tick_max=30)
    nodes = _cluster(cfg)
    stored: dict[str, list[object]] = {i: [] for i in IDS}
    applied = {i: 0 for i in IDS}
    leader = nodes["n0"]
    leader.campaign()
    _pump(nodes, stored, applied)
    assert leader.role is Role.LEADER
    payload = b"x" * size
    datas = [payload] * batch
    start_applied = applied["n0"]
    rounds = messages = 0
    t0 = time.perf_counter()
    while applied["n0"] - start_applied < total:
        if per_call:
            for d in datas:
                leader.propose(d)
        else:
            leader.propose_batch(datas)
        messages += _pump(nodes, stored, applied)
        rounds += 1
    elapsed = time.perf_counter() - t0
    committed = applied["n0"] - start_applied
    assert all(applied[i] == applied["n0"] for i in IDS), "followers did not apply everything"
    return {
        "batch": batch,
        "entry_bytes": size,
        "propose": "propose" if per_call else "propose_batch",
        "committed_entries": committed,
        "seconds": round(elapsed, 4),
        "entries_per_s": round(committed / elapsed),
        "us_per_entry": round(elapsed / committed * 1e6, 2),
        "rounds": rounds,
        "messages_per_round": round(messages / rounds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer entries per case")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "results" / "bench_raft_core.json"),
    )
    args = parser.parse_args(argv)
    total = 20_000 if args.quick else 100_000
    cases = [
        (1, 100, True),
        (10, 100, True),
        (100, 100, True),
        (100, 100, False),
        (1000, 100, False),
        (100, 1024, False),
    ]
    rows = []
    for batch, size, per_call in cases:
        n = min(total, max(2_000, total // 10)) if batch == 1 else total
        rows.append(run(batch, size, n, per_call))
    header = (
        f"{'batch':>6} {'bytes':>6} {'API':>14} {'entries':>9} {'entries/s':>10} {'us/entry':>9} {'msgs/round':>10}"
    )
    print("Raft core, 3 replicas in one process, no I/O (committed entries per second on the leader)")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['batch']:>6} {r['entry_bytes']:>6} {r['propose']:>14} {r['committed_entries']:>9} "
            f"{r['entries_per_s']:>10} {r['us_per_entry']:>9} {r['messages_per_round']:>10}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "bench_raft_core",
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
