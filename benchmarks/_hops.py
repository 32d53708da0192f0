"""Where one request's time goes, hop by hop, from the trace files of `bench_cluster.py --trace`.

Input: the client's (start, end) monotonic times of each sequential request (C=1), and
the events every node recorded (`global_kv/_trace.py`: time, event, index, peer). Inside
each request's window its hops are found by what joins them: the member the client
asked ("via", when not the leader), the leader's receipt, then for a put the entry's
index (the AppendEntries that carries it, both fsyncs, the first follower's ack: the
quorum) and for a linearizable get the heartbeat round the read waits for; then the
apply and the reply. The timeline is each milestone's median offset from the client's
send, and a hop is the gap between two in a row; the last ends at the client's receive.
Medians of offsets, not of gaps, so the hops add up to the timeline; a milestone seen in
fewer than half the requests (a read served from the lease: no round) is left out.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_events", "timeline", "format_timeline"]

Event = tuple[float, str, str]  # time, role (leader / follower / node name), event


def load_events(directory: Path, names: Mapping[int, str]) -> dict[str, list[tuple[float, str, int, str]]]:
    """node name -> its events, time-ordered, from DIR/trace-PID.jsonl (PIDs named by `names`)."""
    out: dict[str, list[tuple[float, str, int, str]]] = {}
    for path in directory.glob("trace-*.jsonl"):
        pid = int(path.stem.split("-")[1])
        name = names.get(pid, f"pid{pid}")
        rows = [tuple(json.loads(line)) for line in path.read_text().splitlines() if line]
        out[name] = sorted(rows)  # type: ignore[arg-type]
    return out


class _Node:
    def __init__(self, rows: list[tuple[float, str, int, str]]) -> None:
        self.rows = rows
        self.times = [r[0] for r in rows]

    def first(self, event: str, after: float, until: float, index: int = 0) -> tuple[float, int] | None:
        """The first `event` in (after, until] with at least `index`."""
        for t, name, i, _ in self.rows[bisect.bisect_right(self.times, after) : bisect.bisect_right(self.times, until)]:
            if name == event and i >= index:
                return t, i
        return None


def _arrival(
    nodes: Mapping[str, _Node], leader: str, start: float, end: float
) -> tuple[list[tuple[str, float]], tuple[float, int] | None]:
    """The member the client asked, if not the leader, and the leader's receipt."""
    out: list[tuple[str, float]] = []
    via = [hit[0] for n, node in nodes.items() if n != leader and (hit := node.first("request", start, end))]
    if via:
        out.append(("via request", min(via)))
    asked = nodes[leader].first("request", start, end)
    if asked:
        out.append(("leader request", asked[0]))
    return out, asked


def _put_milestones(nodes: Mapping[str, _Node], leader: str, start: float, end: float) -> list[tuple[str, float]]:
    lead = nodes[leader]
    out, asked = _arrival(nodes, leader, start, end)
    sent = asked and lead.first("ae_send", asked[0], end)
    if not asked or not sent:
        return []
    index = sent[1]
    out.append(("leader ae_send", sent[0]))
    if hit := lead.first("fsync_start", asked[0], end, index):
        out.append(("leader fsync_start", hit[0]))
    if hit := lead.first("fsync_end", asked[0], end, index):
        out.append(("leader fsync_end", hit[0]))
    acked = lead.first("ack_recv", sent[0], end, index)
    if acked is None:
        return []
    raft_id = next((p for t, e, _, p in lead.rows if t == acked[0] and e == "ack_recv"), "")
    f = nodes.get(raft_id.partition("@")[2])  # a Raft id is "process@node"
    if f is not None:
        for event in ("ae_recv", "fsync_start", "fsync_end", "ack_send"):
            if hit := f.first(event, sent[0], acked[0], index):
                out.append((f"quorum follower {event}", hit[0]))
    out.append(("leader ack_recv", acked[0]))
    if applied := lead.first("applied", asked[0], end, index):
        out.append(("leader applied", applied[0]))
        if reply := lead.first("reply", applied[0], end):
            out.append(("leader reply", reply[0]))
    return out


def _get_milestones(nodes: Mapping[str, _Node], leader: str, start: float, end: float) -> list[tuple[str, float]]:
    lead = nodes[leader]
    out, asked = _arrival(nodes, leader, start, end)
    if not asked:
        return []
    sent = lead.first("hb_send", asked[0], end)
    if sent:
        seq = sent[1]
        out.append(("leader hb_send (read round)", sent[0]))
        acked = lead.first("hback_recv", sent[0], end, seq)
        if acked:
            for n, node in nodes.items():
                if n != leader and (hit := node.first("hb_recv", sent[0], acked[0], seq)):
                    out.append(("follower hb_recv", hit[0]))
                    break
            out.append(("leader hback_recv (quorum)", acked[0]))
    if reply := lead.first("reply", asked[0], end):
        out.append(("leader reply", reply[0]))
    return out


def timeline(
    kind: str,
    ops: Iterable[tuple[float, float]],
    events: Mapping[str, list[tuple[float, str, int, str]]],
    leader: str,
) -> dict[str, Any]:
    """Median offset (ms from the client's send) of each milestone of `kind` (put or get)
    requests, joined by Raft index (put) or heartbeat round (get), and the hops between."""
    nodes = {name: _Node(rows) for name, rows in events.items()}
    milestones = _put_milestones if kind == "put" else _get_milestones
    offsets: dict[str, list[float]] = {}
    latencies: list[float] = []
    count = 0
    for start, end in ops:
        count += 1
        latencies.append(1000 * (end - start))
        for name, t in milestones(nodes, leader, start, end):
            offsets.setdefault(name, []).append(1000 * (t - start))
    kept = {k: statistics.median(v) for k, v in offsets.items() if len(v) >= count / 2}
    steps = sorted(kept.items(), key=lambda kv: kv[1])
    median_latency = statistics.median(latencies) if latencies else 0.0
    hops = []
    previous_name, previous_at = "client send", 0.0
    for name, at in [*steps, ("client receive", median_latency)]:
        hops.append({"from": previous_name, "to": name, "ms": round(at - previous_at, 3), "at_ms": round(at, 3)})
        previous_name, previous_at = name, at
    return {
        "requests": count,
        "median_latency_ms": round(median_latency, 3),
        "seen": {k: len(v) for k, v in offsets.items()},
        "hops": hops,
    }


def format_timeline(label: str, result: Mapping[str, Any]) -> str:
    lines = [
        f"{label}: {result['requests']} requests, median latency {result['median_latency_ms']:.3f} ms",
        "| hop | median ms | at ms |",
        "|---|---:|---:|",
    ]
    for hop in result["hops"]:
        lines.append(f"| {hop['from']} → {hop['to']} | {hop['ms']:.3f} | {hop['at_ms']:.3f} |")
    return "\n".join(lines)
