"""The end-of-run checkers: linearizability, lost inserts, fencing, mutual exclusion, convergence.

Each returns a list of `Anomaly` (empty = passed). They read the `Recorder` and the
final states only; they must never talk to the cluster or excuse a finding silently:
anything not proven fine is reported (a checker timeout is an anomaly too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from global_kv.checker import check_operations, kv_model

from ._record import Hold, Insert, LeaseCycle, Recorder
from ._workload import LEASE_PREFIX

__all__ = [
    "Anomaly",
    "check_all",
    "check_convergence",
    "check_holds",
    "check_inserts",
    "check_lease_cycles",
    "check_linearizable",
]


@dataclass
class Anomaly:
    """One finding: `kind` (which guarantee), a human-readable `detail`, offending `items`."""

    kind: str
    detail: str
    items: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"[{self.kind}] {self.detail}"]
        lines += [f"    {item}" for item in self.items[:20]]
        if len(self.items) > 20:
            lines.append(f"    ... and {len(self.items) - 20} more")
        return "\n".join(lines)


def check_linearizable(recorder: Recorder, timeout: float) -> list[Anomaly]:
    """The KV history (final reads included) against the per-key model; unknown verdict = anomaly."""
    result = check_operations(kv_model(), recorder.ops, timeout=timeout)
    if result.ok is True:
        return []
    kind = "not-linearizable" if result.ok is False else "linearizability-unknown"
    items: list[Any] = list(result.longest_prefix[-10:])
    if result.stuck_operation is not None:
        items.append(f"stuck at: {result.stuck_operation}")
    return [Anomaly(kind, result.info, items)]


def check_inserts(inserts: Sequence[Insert], final: Mapping[bytes, bytes]) -> list[Anomaly]:
    """Every acknowledged unique insert is in the final state with its value; nothing unasked is."""
    anomalies = []
    lost = [i for i in inserts if i.ok and final.get(i.key.encode()) != i.value]
    if lost:
        anomalies.append(Anomaly("lost-write", f"{len(lost)} acknowledged inserts missing from the final state", lost))
    attempted = {i.key.encode(): i for i in inserts}
    phantom = [
        (k, v) for k, v in final.items() if k not in attempted or attempted[k].ok is False or attempted[k].value != v
    ]
    if phantom:
        anomalies.append(
            Anomaly(
                "phantom-write", f"{len(phantom)} keys in the final state no client wrote (or wrote otherwise)", phantom
            )
        )
    return anomalies


def _lease_over(a: Hold, at: float) -> bool:
    """True when `a` had certainly lost the lock by `at`: its TTL ran out or its owner was killed."""
    if a.ttl > 0 and a.invoke + a.ttl <= at:
        return True
    return a.how_ended == "killed" and a.end is not None and a.end <= at


def check_holds(recorder: Recorder, end_of_run: float) -> list[Anomaly]:
    """Fencing and mutual exclusion over the recorded holds and fenced writes.

    - tokens are unique per grant, and a grant known to precede another (returned
      before the other was asked for) has the lower token;
    - two holds overlap only if the earlier's lease was over (TTL or owner killed) by
      the time the later one was granted, or the later one's TTL had run out before its
      holder learned of the grant (the client's lease counts from its request);
    - the fenced counter never accepted a token lower than one it had accepted.
    """
    anomalies = []
    holds = sorted(recorder.holds, key=lambda h: h.start)
    by_token: dict[int, Hold] = {}
    dup = []
    for h in holds:
        if h.token in by_token:
            dup.append((by_token[h.token], h))
        by_token[h.token] = h
    if dup:
        anomalies.append(Anomaly("duplicate-token", f"{len(dup)} fencing tokens granted twice", dup))
    order = []
    for a in holds:
        for b in holds:
            if a.start < b.invoke and a.token >= b.token:
                order.append((a, b))
    if order:
        anomalies.append(
            Anomaly("token-order", f"{len(order)} later grants with a token not above an earlier one", order)
        )
    overlap = []
    for i, a in enumerate(holds):
        a_end = a.end if a.end is not None else end_of_run
        for b in holds[i + 1 :]:
            if b.start >= a_end:
                break
            # A grant that reached its holder after its own TTL had run out (a retried acquire
            # answered from its session after a leader change) gave no exclusive time at all:
            # only fencing protects that holder's writes (checked below).
            if not _lease_over(a, b.start) and not _lease_over(b, b.start):
                overlap.append((a, b))
    if overlap:
        anomalies.append(
            Anomaly("mutual-exclusion", f"{len(overlap)} overlapping holds with no lease expiry between", overlap)
        )
    highest = 0
    bad = []
    for w in recorder.counter.log:
        if w.accepted and w.token < highest:
            bad.append(w)
        if w.accepted:
            highest = max(highest, w.token)
        elif w.token >= w.highest_before:
            bad.append(w)
    if bad:
        anomalies.append(
            Anomaly("fencing", f"{len(bad)} fenced writes accepted below the highest token (or refused wrongly)", bad)
        )
    accepted = sum(1 for w in recorder.counter.log if w.accepted)
    if accepted != recorder.counter.value:
        anomalies.append(
            Anomaly("fencing", f"counter is {recorder.counter.value} but {accepted} increments were accepted")
        )
    return anomalies


def check_convergence(states: Mapping[str, Mapping[bytes, bytes] | None]) -> list[Anomaly]:
    """Every node answered and all hold identical state (compared as sorted key/value lists)."""
    silent = [name for name, s in states.items() if s is None]
    anomalies = []
    if silent:
        anomalies.append(Anomaly("unresponsive", f"{len(silent)} nodes did not answer after healing", silent))
    answered = {name: s for name, s in states.items() if s is not None}
    if len({tuple(sorted(s.items())) for s in answered.values()}) > 1:
        names = sorted(answered)
        ref = answered[names[0]]
        diffs = []
        for name in names[1:]:
            s = answered[name]
            for k in sorted(set(ref) | set(s)):
                if ref.get(k) != s.get(k):
                    diffs.append(f"{k!r}: {names[0]}={ref.get(k)!r} {name}={s.get(k)!r}")
        anomalies.append(Anomaly("divergence", "nodes hold different state after healing", diffs))
    return anomalies


def replay(events: list[tuple[int, str, bytes, bytes]]) -> dict[bytes, bytes]:
    """The state a watch's events build from nothing."""
    state: dict[bytes, bytes] = {}
    for _, kind, key, value in events:
        if kind == "put":
            state[key] = value
        else:
            state.pop(key, None)
    return state


def check_watches(
    watches: Mapping[str, list[tuple[int, str, bytes, bytes]]], final: Mapping[bytes, bytes]
) -> list[Anomaly]:
    """Every watcher's stream: revisions never go back, no (revision, key) twice; all
    streams are one and the same history (the watchers started at revision 1 and caught
    up); replayed, it gives the final state of the watched keys."""
    anomalies: list[Anomaly] = []
    streams = {name: events for name, events in watches.items()}
    for name, events in streams.items():
        seen: set[tuple[int, bytes]] = set()
        last = 0
        for revision, _kind, key, _value in events:
            if revision < last or (revision, key) in seen:
                anomalies.append(Anomaly("watch-order", f"{name}'s watch went back or repeated", [(revision, key)]))
                break
            seen.add((revision, key))
            last = revision
    if len({tuple(events) for events in streams.values()}) > 1:
        lengths = {name: len(events) for name, events in streams.items()}
        anomalies.append(Anomaly("watch-gap", "the watchers' streams differ (a gap, or disagreeing events)", [lengths]))
    for name, events in streams.items():
        state = replay(events)
        wanted = {k: v for k, v in final.items() if b"a" <= k < b"f"}
        if state != wanted:
            anomalies.append(Anomaly("watch-state", f"{name}'s watch replayed is not the final state", [state, wanted]))
    return anomalies


def check_presences(presences: Sequence[tuple[str, float | None]], final: Mapping[bytes, bytes]) -> list[Anomaly]:
    """A key put under a process-owned lease is gone soon after its owner's kill -9 (its
    lease's TTL was 60 s: only the owner's death can have ended it), and not in the end."""
    late = [
        f"{key}: {'still there' if gone is None else f'{gone:.1f} s'}"
        for key, gone in presences
        if gone is None or gone > 10
    ]
    anomalies = [Anomaly("lease-owner", "a lease-bound key outlived its killed owner", late)] if late else []
    left = [key for key, _ in presences if key.encode() in final]
    if left:
        anomalies.append(Anomaly("lease-owner", "a dead owner's lease-bound key is in the final state", left))
    return anomalies


def check_lease_cycles(cycles: Sequence[LeaseCycle], final: Mapping[bytes, bytes], prefix: bytes) -> list[Anomaly]:
    """TTL-bound keys vanish exactly when their lease ends: never before its TTL has run
    since the last keep-alive that succeeded, both keys in one revision (no read sees one
    without the other), never back, the lease gone with them; and none is left at the end."""
    found = {
        "lease-early": [c for c in cycles if c.gone is not None and c.gone < c.alive_from + c.ttl],
        "lease-split": [c for c in cycles if c.split],
        "lease-back": [c for c in cycles if c.back],
        "lease-kept": [c for c in cycles if c.lease_after],
        "lease-late": [c for c in cycles if c.gone is None],
    }
    details = {
        "lease-early": "keys vanished before their lease's TTL had run since its last keep-alive",
        "lease-split": "a read saw one key of a lease without the other",
        "lease-back": "a lease-bound key came back after it was gone",
        "lease-kept": "the lease outlived its keys",
        "lease-late": "a lease-bound key was never seen gone",
    }
    anomalies = [Anomaly(kind, details[kind], items) for kind, items in found.items() if items]
    left = [key for key in final if key.startswith(prefix)]
    if left:
        anomalies.append(Anomaly("lease-late", "lease-bound keys are in the final state", left))
    return anomalies


def check_all(
    recorder: Recorder,
    final: Mapping[bytes, bytes],
    states: Mapping[str, Mapping[bytes, bytes] | None],
    end_of_run: float,
    checker_timeout: float,
) -> list[Anomaly]:
    return (
        check_linearizable(recorder, checker_timeout)
        + check_inserts(recorder.inserts, {k: v for k, v in final.items() if k.startswith(b"u-")})
        + check_holds(recorder, end_of_run)
        + check_convergence(states)
        + check_watches(recorder.watches, final)
        + check_presences(recorder.presences, final)
        + check_lease_cycles(recorder.lease_cycles, final, LEASE_PREFIX.encode())
    )
