"""The Jepsen suite in CI: the checkers catch what they must, and a short faulty run is clean.

The short run is ~75 s of workload (every fault kind of CI_KINDS once: leader/random
kill -9 and restart, SIGSTOP past the election timeout and past the lock TTL, lock-owner
kill -9 and SIGSTOP, an isolated leader and a bridge partition through the proxy, a
follower and the leader removed and re-added, a member replaced via the spare) on a
real 3-node LevelDB cluster; longer runs (every kind): `python -m tests.jepsen`.
"""

from __future__ import annotations

import os

import pytest
import trio

from global_kv.checker import UNKNOWN, Operation

from ._checks import (
    check_convergence,
    check_holds,
    check_inserts,
    check_lease_cycles,
    check_linearizable,
    check_presences,
    check_watches,
)
from ._nemesis import FAULT_KINDS, make_schedule
from ._record import Hold, Insert, LeaseCycle, Recorder
from ._run import JepsenConfig, run_jepsen

# With 3 nodes a majority split isolates one node, as partition-random does, and both
# resemble pause-random to the others: the CI run keeps the isolated leader and the bridge.
CI_KINDS = tuple(k for k in FAULT_KINDS if k not in ("partition-random", "partition-majority"))


def test_schedule_is_seeded_and_covers_every_fault_kind() -> None:
    a = make_schedule(5, 120, ttl=2.0)
    assert a == make_schedule(5, 120, ttl=2.0)
    assert a != make_schedule(6, 120, ttl=2.0)
    assert {f.kind for f in a} == set(FAULT_KINDS)
    pauses = [f for f in a if f.kind in ("pause-long", "owner-pause", "partition-leader")]
    assert len(pauses) >= 3 and all(f.duration > 2.0 for f in pauses)  # longer than the lock TTL
    partitions = [f for f in a if f.kind.startswith("partition")]
    assert partitions and all(f.duration > 0.9 for f in partitions)  # past the election timeout (3 x 0.3 s)
    ci = make_schedule(3, 75, ttl=2.0, fault_kinds=CI_KINDS)
    assert {f.kind for f in ci} == set(CI_KINDS)
    with pytest.raises(ValueError):
        make_schedule(3, 75, ttl=2.0, fault_kinds=("partition-leader", "unplug-the-moon"))


def test_linearizability_check_finds_a_stale_read_and_passes_a_good_history() -> None:
    rec = Recorder()
    rec.ops += [
        Operation(0, ("put", "a", b"1"), 0.0, None, 1.0),
        Operation(1, ("put", "a", b"2"), 2.0, None, 3.0),
        Operation(2, ("get", "a"), 4.0, b"2", 5.0),
        Operation(3, ("put", "a", b"3"), 6.0, UNKNOWN, None),
    ]
    assert check_linearizable(rec, 10) == []
    rec.ops.append(Operation(2, ("get", "a"), 10.0, b"1", 11.0))
    [anomaly] = check_linearizable(rec, 10)
    assert anomaly.kind == "not-linearizable"


def test_insert_check_finds_lost_and_phantom_writes() -> None:
    inserts = [Insert("u-0-1", b"x", 0.0, True), Insert("u-0-2", b"y", 1.0, None), Insert("u-0-3", b"z", 1.0, False)]
    assert check_inserts(inserts, {b"u-0-1": b"x", b"u-0-2": b"y"}) == []
    assert check_inserts(inserts, {b"u-0-1": b"x"}) == []  # an unknown insert may be absent
    kinds = [a.kind for a in check_inserts(inserts, {b"u-0-2": b"y", b"u-0-3": b"z", b"u-9": b"?"})]
    assert kinds == ["lost-write", "phantom-write"]


async def test_hold_check_finds_overlap_token_order_and_fencing_violations() -> None:
    rec = Recorder()
    rec.holds += [Hold("w0", 5, 2.0, 0.0, 0.1, 0.5, "released"), Hold("w1", 7, 2.0, 0.4, 0.6, 0.9, "released")]
    rec.counter.increment("w0", 5)
    rec.counter.increment("w1", 7)
    assert rec.counter.increment("w0", 5) is False
    assert check_holds(rec, 10.0) == []
    # A hold granted while another was live and not expired, with a lower token.
    rec.holds.append(Hold("w2", 6, 2.0, 0.65, 0.7, 0.8, "released"))
    kinds = {a.kind for a in check_holds(rec, 10.0)}
    assert kinds == {"mutual-exclusion", "token-order"}
    # After the TTL ran out the overlap is legitimate (the paused-owner case) ...
    del rec.holds[1:]
    rec.holds[0].end = 3.0
    rec.holds.append(Hold("w2", 9, 2.0, 2.5, 2.6, 2.7, "released"))
    assert check_holds(rec, 10.0) == []
    # ... and so is one after the owner was killed, but not one before.
    rec.holds[0] = Hold("owner", 5, 0.0, 0.0, 0.1, 2.55, "killed")
    assert check_holds(rec, 10.0) == []
    rec.holds[0].end = 2.65
    assert [a.kind for a in check_holds(rec, 10.0)] == ["mutual-exclusion"]
    rec.holds[0].end = 2.55
    rec.counter.log[1].accepted = False  # a refusal of the highest token is a fencing bug too
    assert {a.kind for a in check_holds(rec, 10.0)} == {"fencing"}


def test_watch_check_finds_a_gap_a_repeat_and_a_stale_stream() -> None:
    good = [(2, "put", b"a", b"1"), (3, "put", b"b", b"2"), (4, "delete", b"a", b"")]
    final = {b"b": b"2", b"u-1": b"x"}
    assert check_watches({"n1": good, "n2": list(good)}, final) == []
    gap = [good[0], good[2]]
    kinds = {a.kind for a in check_watches({"n1": good, "n2": gap}, final)}
    assert kinds == {"watch-gap", "watch-state"}
    repeat = [*good, good[1]]
    assert "watch-order" in {a.kind for a in check_watches({"n1": repeat}, final)}


def test_presence_check_finds_a_lease_bound_key_that_outlived_its_owner() -> None:
    assert check_presences([("presence/owner1", 0.4)], {}) == []
    late = check_presences([("presence/owner1", None), ("presence/owner2", 12.0)], {b"presence/owner1": b"here"})
    assert [a.kind for a in late] == ["lease-owner", "lease-owner"]


def test_lease_check_finds_keys_that_went_early_split_came_back_or_stayed() -> None:
    good = LeaseCycle(1, 1.5, alive_from=10.0, gone=11.6)
    assert check_lease_cycles([good], {b"a": b"1"}, b"ttl/") == []
    early = LeaseCycle(2, 1.5, alive_from=10.0, gone=11.4)
    split = LeaseCycle(3, 1.5, alive_from=10.0, gone=12.0, split=True)
    back = LeaseCycle(4, 1.5, alive_from=10.0, gone=12.0, back=True)
    kept = LeaseCycle(5, 1.5, alive_from=10.0, gone=12.0, lease_after=True)
    never = LeaseCycle(6, 1.5, alive_from=10.0)
    found = check_lease_cycles([good, early, split, back, kept, never], {b"ttl/0-1/k1": b"x"}, b"ttl/")
    kinds = ["lease-early", "lease-split", "lease-back", "lease-kept", "lease-late", "lease-late"]
    assert [a.kind for a in found] == kinds
    assert [c.lease_id for c in found[0].items] == [2]


def test_convergence_check_finds_divergent_and_silent_nodes() -> None:
    same = {b"a": b"1"}
    assert check_convergence({"n1": same, "n2": dict(same)}) == []
    kinds = [a.kind for a in check_convergence({"n1": same, "n2": {b"a": b"2"}, "n3": None})]
    assert kinds == ["unresponsive", "divergence"]


async def test_short_run_under_every_fault_kind_is_clean() -> None:
    config = JepsenConfig(seconds=75, seed=3, nodes=3, checker_timeout=60, fault_kinds=CI_KINDS)
    with trio.fail_after(200):
        report = await run_jepsen(config)
    print(report.format())
    assert report.ok, report.format()
    assert {e.fault.kind for e in report.events} == set(CI_KINDS), report.format()
    # At least one membership change went all the way: removed, then added back and caught up.
    assert any(e.fault.kind.startswith("member") and "re-added" in e.note for e in report.events), report.format()
    assert report.counts["kv_ok"] > 500 and report.counts["inserts_ok"] > 50, report.counts
    assert report.counts["lock_holds"] > 20, report.counts
    assert report.counts["watch_events"] > 100, report.counts  # a watcher at every node, checked
    assert report.counts["owner_leases"] >= 1, report.counts  # a killed owner's lease-bound key, checked
    assert report.counts["ttl_leases"] >= 10, report.counts  # TTL-bound keys checked against their lease's end
    # Every process the run started is gone (nodes and owners were reaped).
    for pid in report.pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"process {pid} outlived the run")
