"""Locks in the simulator: the leader's TTL clock, owner death, the lock invariants, and
proof that each invariant notices the bug it is there for."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import pytest

from ergo_py.ids import PID
from global_kv._errors import RaftInvariantError, StaleToken
from global_kv.client import FencedResource
from global_kv.raft import Entry, EntryType, Role
from global_kv.replica._locks import LockService
from global_kv.sim import FencedStore, Simulation, TokenFence, _lock_clients
from global_kv.sim._lock_monitor import LockMonitor
from global_kv.sim._replica import SimReplica
from global_kv.state import (
    Command,
    Granted,
    Lock,
    LockAcquire,
    LockExpire,
    LockHeldResult,
    LockRelease,
    LockReleaseOwner,
    LockTimers,
    Op,
    Released,
    Result,
    _machine,
    encode_command,
)
from tests.sim.sim_support import first_failure

Patch = Callable[[object, str, object], None]
A, B = PID("lc0", 1, 1), PID("lc1", 1, 1)


# --- the protected resource ------------------------------------------------------------


def test_fenced_store_refuses_older_tokens_and_reports_only_accepted_writes() -> None:
    seen: list[tuple[bytes, int, PID]] = []
    store = FencedStore(b"L0", TokenFence(b"L0"), lambda k, t, w: seen.append((k, t, w)))
    assert [store.write(t, A) for t in (3, 5, 5, 4, 9)] == [True, True, True, False, True]
    assert (store.accepted, store.refused) == (4, 1)
    assert [t for _, t, _ in seen] == [3, 5, 5, 9]
    fence = TokenFence(b"k")
    fence.check(7)
    with pytest.raises(StaleToken):
        fence.check(6)


# --- the reference model of the lock table ((a), (b), (c), (d)) --------------------------


def _commit(lm: LockMonitor, index: int, op: Op, result: Result, client: str | None = None, seq: int = 0) -> None:
    """The first application of entry `index` (a request of `client` numbered `seq`, or
    `index` if not given; no client: the leader's own command)."""
    seq = seq or index
    cmd = Command(client, seq, seq, op) if client else Command(None, 0, 0, op)
    lm.on_commit(Entry(index, 1, EntryType.NORMAL, encode_command(cmd)), result)


@pytest.fixture
def lm() -> LockMonitor:
    monitor = LockMonitor(Simulation(0))
    _commit(monitor, 3, LockAcquire(b"L", A, 10), Granted(b"L", 3, 10), "a")
    return monitor


def test_the_model_accepts_a_correct_lock_history(lm: LockMonitor) -> None:
    _commit(lm, 4, LockAcquire(b"L", B, 10), LockHeldResult(b"L", A, 3), "b")
    _commit(lm, 5, LockAcquire(b"L", A, 10), Granted(b"L", 3, 10), "a", seq=3)  # a retry
    _commit(lm, 6, LockExpire(b"L", 3, 3), Released(((b"L", 3),)))
    _commit(lm, 7, LockAcquire(b"L", B, 10), Granted(b"L", 7, 10), "b")
    lm.on_told(B, b"L", 7, 1.0)
    lm.on_protected_write(b"L", 3, A, 2.0)  # the expired holder, before B's first write
    lm.on_protected_write(b"L", 7, B, 3.0)
    _commit(lm, 8, LockReleaseOwner(B), Released(((b"L", 7),)))
    assert lm.holders == {} and lm.ended == {3: "expired", 7: "released: owner down"}
    assert lm.stats_expiries == 1 and lm.stats_owner_releases == 1 and lm.stats_overlaps == 1


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("two holders", r"\(a\) entry 4 grants"),
        ("token going back", r"\(a\) entry 2 grants"),
        ("refusal the model disagrees with", r"\(a\) entry 4 refused"),
        ("retry answered differently", r"\(a\) request \('a', 3\) retried"),
        ("owner release missing a lock", r"\(a\) entry 4: LockReleaseOwner"),
        ("grant told but never committed", r"\(c\) <lc1.1.1> was told"),
        ("resource accepting an older token", r"\(b\) resource b'L' accepted token 3 after accepting 4"),
        ("write after releasing", r"\(d\) <lc0.1.1> wrote b'L' with token 3 after its hold was released"),
    ],
)
def test_the_model_rejects(lm: LockMonitor, case: str, match: str) -> None:
    with pytest.raises(RaftInvariantError, match=match):
        if case == "two holders":
            _commit(lm, 4, LockAcquire(b"L", B, 10), Granted(b"L", 4, 10), "b")
        elif case == "token going back":
            _commit(lm, 2, LockAcquire(b"M", B, 10), Granted(b"M", 2, 10), "b")
        elif case == "refusal the model disagrees with":
            _commit(lm, 4, LockAcquire(b"L", B, 10), LockHeldResult(b"L", B, 1), "b")
        elif case == "retry answered differently":
            _commit(lm, 4, LockAcquire(b"L", A, 10), LockHeldResult(b"L", A, 3), "a", seq=3)
        elif case == "owner release missing a lock":
            _commit(lm, 4, LockReleaseOwner(A), Released(()))
        elif case == "grant told but never committed":
            lm.on_told(B, b"L", 4, 1.0)
        elif case == "resource accepting an older token":
            lm.highest_accepted[b"L"] = 4
            lm.on_protected_write(b"L", 3, A, 1.0)
        else:
            _commit(lm, 4, LockRelease(b"L", 3), Released(((b"L", 3),)), "a")
            lm.on_protected_write(b"L", 3, A, 1.0)


def test_an_expiry_before_the_ttl_on_the_leaders_own_clock_is_refused() -> None:
    sim = Simulation(0)
    r = sim.replicas["n0"]
    r.rate, r.lead_since = 1.25, 10
    r.lock_since[(b"L", 3, 3)] = (20, 40)  # applied at tick 20, TTL 40
    sim.now = 51  # 31 ticks at 1.25 = 38.75 < 40
    with pytest.raises(RaftInvariantError, match=r"\(d\) n0 proposes LockExpire.*38.75 of the TTL 40"):
        sim.lock_monitor.on_internal_proposal(r, LockExpire(b"L", 3, 3))
    sim.now = 52  # 40.0: due
    sim.lock_monitor.on_internal_proposal(r, LockExpire(b"L", 3, 3))
    r.lead_since = 30  # became leader after applying it: timed from then
    with pytest.raises(RaftInvariantError, match="since tick 30"):
        sim.lock_monitor.on_internal_proposal(r, LockExpire(b"L", 3, 3))
    with pytest.raises(RaftInvariantError, match="never applied"):
        sim.lock_monitor.on_internal_proposal(r, LockExpire(b"L", 3, 9))


# --- the leader's lock service in a calm cluster -----------------------------------------


def _calm_cluster(seed: int = 1) -> Simulation:
    """Three replicas, no faults, no workload: only what a test proposes."""
    sim = Simulation(seed, nodes=3, lock_heavy=True)
    sim.chaos = False
    sim.net.loss = sim.net.dup = 0.0
    sim.net.max_delay = 1
    sim.p_slow_disk = 0.0
    sim.workload.accepting = sim.lock_workload.accepting = False
    for _ in range(300):
        sim._tick()
        leader = sim._stable_leader()
        if leader is not None and leader.replica is not None and leader.replica.locks.term:
            for c in sim.lock_workload.clients:
                c.dial_only = False  # a replica may dial every owner: no grace periods here
            return sim
    raise AssertionError("no stable leader in a calm cluster")


def _tick_until(sim: Simulation, done: Callable[[], bool], limit: int = 200) -> int:
    for _ in range(limit):
        sim._tick()
        if done():
            return sim.now
    raise AssertionError(f"not done within {limit} ticks")


def _grant(sim: Simulation, leader: SimReplica, owner: PID, ttl: int) -> tuple[int, int]:
    """Propose an acquire on the leader: the tick it is applied there (its timer
    starts), and the lock's token."""
    assert leader.node is not None
    leader.node.propose(encode_command(Command("test", 1, 1, LockAcquire(b"L0", owner, ttl))))
    tick = _tick_until(sim, lambda: leader.sm is not None and leader.sm.lock(b"L0") is not None)
    lock = leader.sm.lock(b"L0")  # type: ignore[union-attr]
    assert lock is not None
    return tick, lock.token


def _expiry_attempted_by(sim: Simulation, r: SimReplica) -> Callable[[], bool]:
    return lambda: any(a[0] == r.id for a in sim.lock_monitor.expiry_attempts)


@pytest.mark.parametrize("rate", [1.25, 1.0, 0.8])
def test_the_leader_times_a_ttl_on_its_own_skewed_clock(rate: float) -> None:
    sim = _calm_cluster()
    leader = sim._stable_leader()
    assert leader is not None
    leader.rate = rate
    owner = sim.lock_workload.clients[0].pid  # alive and connected: only the TTL can end it
    applied, token = _grant(sim, leader, owner, ttl=40)
    proposed = _tick_until(sim, _expiry_attempted_by(sim, leader))
    assert proposed - applied in (math.ceil(40 / rate), math.ceil(40 / rate) + 1)
    _tick_until(sim, lambda: not sim.lock_monitor.holders, limit=10)
    assert sim.lock_monitor.ended == {token: "expired"}


def test_a_new_leader_re_arms_from_its_own_now() -> None:
    sim = _calm_cluster()
    old = sim._stable_leader()
    assert old is not None and old.node is not None
    old.rate = 1.0
    applied, _ = _grant(sim, old, sim.lock_workload.clients[0].pid, ttl=40)
    _tick_until(sim, lambda: sim.now >= applied + 25)
    new = next(r for r in sim.live_replicas() if r is not old)
    new.rate = 0.8
    old.node.transfer_leadership(new.id)
    _tick_until(sim, lambda: new.replica is not None and new.replica.locks.term > 0)
    started = new.service_since
    proposed = _tick_until(sim, _expiry_attempted_by(sim, new))
    assert proposed - started in (50, 51)  # 40 on a 0.8x clock, from when it led
    assert proposed - applied > 40  # the holder kept it longer than its TTL, never less
    assert not any(a[0] == old.id for a in sim.lock_monitor.expiry_attempts)


@pytest.mark.parametrize("how", ["dies", "is cut off"])
def test_an_owner_that_dies_or_is_cut_off_loses_its_locks_at_once(how: str) -> None:
    sim = _calm_cluster()
    leader = sim._stable_leader()
    assert leader is not None
    client = sim.lock_workload.clients[0]
    applied, token = _grant(sim, leader, client.pid, ttl=1000)
    if how == "dies":
        sim.lock_workload._die(client)
    else:
        sim.net.blocked = {(client.name, leader.id), (leader.id, client.name)}
    released = _tick_until(sim, lambda: token in sim.lock_monitor.ended, limit=20)
    assert sim.lock_monitor.ended[token] == "released: owner down"
    assert released - applied < 10  # not the TTL: the owner's monitor fired


# --- seeds: the scenarios happen, and every check notices its bug ---------------------------


def test_lock_heavy_seeds_exercise_every_scenario_with_the_clients_fenced_resource() -> None:
    results = []
    stores = []
    for seed in range(100):
        sim = Simulation(seed, lock_heavy=True, fence_factory=FencedResource)
        results.append(sim.run())
        stores += sim.lock_workload.stores.values()

    def s(field: str) -> int:
        return sum(getattr(r, field) for r in results)

    assert s("lock_grants") > 200 and s("lock_refreshes") > 40
    assert s("lock_expiries") > 40 and s("owner_releases") > 30
    assert s("pauses") > 60 and s("stale_holders") > 20, "paused holders must lose their locks"
    assert s("client_deaths") > 50 and s("client_isolations") > 30
    assert s("stale_writes_refused") >= 5, "stale holders must try to write"
    assert s("overlapping_writes") >= 2, "an expired holder must sometimes write before the next one"
    assert sum(1 for r in results if r.max_clock_skew > 1.3) > 30
    # The client's own FencedResource was the fence, and it did the refusing.
    assert all(isinstance(st.fence, FencedResource) for st in stores)
    assert sum(st.fence.rejected for st in stores) == s("stale_writes_refused")  # type: ignore[attr-defined]


def _steal_held_locks(patch: Patch) -> None:
    """The state machine grants without checking: it takes the lock from its holder."""
    execute = _machine.StateMachine._execute

    def greedy(self: _machine.StateMachine, op: Op, index: int, batch: object) -> Result:
        if type(op) is LockAcquire:
            held = self._locks.get(op.key)
            if held is not None:
                self._locks.remove(held, batch)  # type: ignore[arg-type]
        return execute(self, op, index, batch)  # type: ignore[arg-type]

    patch(_machine.StateMachine, "_execute", greedy)


def _expire_despite_refresh(patch: Patch) -> None:
    """The state machine ignores LockExpire's refreshed_index (an expiry beats a refresh)."""
    execute = _machine.StateMachine._execute

    def sloppy(self: _machine.StateMachine, op: Op, index: int, batch: object) -> Result:
        if type(op) is LockExpire:
            op = LockExpire(op.key, op.token, 0)
        return execute(self, op, index, batch)  # type: ignore[arg-type]

    patch(_machine.StateMachine, "_execute", sloppy)


def _fence_that_does_not_check(patch: Patch) -> dict[str, object]:
    class Trusting:
        def __init__(self, key: bytes) -> None:
            self.key = key

        def check(self, token: int) -> None:
            """Accepts everything."""

    return {"fence_factory": Trusting}


def _tell_grant_on_propose(patch: Patch) -> None:
    """A leader that answers an acquire as soon as it is sent, not once committed."""
    submit = _lock_clients.LockWorkload._submit

    def eager(self: _lock_clients.LockWorkload, c: _lock_clients.LockClient) -> None:
        submit(self, c)
        r = c.replica
        if c.state == _lock_clients.WAIT and c.kind == _lock_clients.ACQUIRE and r is not None and r.node:
            c.inbox = (True, r.node.last_index + 1)

    patch(_lock_clients.LockWorkload, "_submit", eager)


def _half_ttl(patch: Patch) -> None:
    arm = LockTimers._arm

    def half(self: LockTimers, lock: Lock, now: float) -> None:
        arm(self, dataclasses.replace(lock, ttl_ms=lock.ttl_ms // 2), now)

    patch(LockTimers, "_arm", half)


def _keep_follower_deadlines(patch: Patch) -> None:
    """Deadlines armed when a follower applied the grant, not re-armed on becoming leader."""

    def become_leader(self: LockService, term: int, now: float) -> None:
        self.term, self.lead_since = term, now

    def become_follower(self: LockService, leader_hint: object) -> None:
        self.term = 0

    patch(LockService, "active", property(lambda self: True))  # track deadlines while following
    patch(LockService, "become_leader", become_leader)
    patch(LockService, "become_follower", become_follower)


def _no_rearm_on_refresh(patch: Patch) -> None:
    on_result = LockService.on_result

    def keep_old_deadline(self: LockService, index: int, result: Result, *args: object) -> bool:
        if type(result) is Granted:
            lock = self.replica.sm.lock(result.key)
            if lock is not None and lock.refreshed_index != lock.token:
                return False
        return on_result(self, index, result, *args)  # type: ignore[arg-type]

    patch(LockService, "on_result", keep_old_deadline)


def _never_expire(patch: Patch) -> None:
    patch(LockTimers, "_arm", lambda self, lock, now: None)


def _suspect_everyone(patch: Patch) -> None:
    """A failure detector that reports every owner down (a paused one, a connected one)."""
    check = LockService.check

    def suspicious(self: LockService, now: float) -> None:
        check(self, now)
        if self.active:
            for owner in self.replica.sm.owners():
                self._owner_gone(owner, now, False)

    patch(LockService, "check", suspicious)


def _disarm_on_cached_release(patch: Patch) -> None:
    """Every `Released` pair disarms its key, even a retry's cached
    answer naming an old token (which then disarms the key's next holder)."""
    on_result = LockService.on_result

    def disarm(self: LockService, index: int, result: Result, *args: object) -> bool:
        if self.term and type(result) is Released:
            for key, _ in result.locks:
                self.timers.deadlines.pop(key, None)
        return on_result(self, index, result, *args)  # type: ignore[arg-type]

    patch(LockService, "on_result", disarm)


def _expiring_per_token(patch: Patch) -> None:
    """Expiries remembered per (key, token), not per lock state: once proposed, a lock
    whose refresh won the race is not tried again while that token holds (until the
    retry), though it has a new deadline."""
    due, drop = LockTimers.due, LockTimers._drop_expiring

    def per_token_due(self: LockTimers, lock_of: Callable[[bytes], object], now: float) -> list[LockExpire]:
        tried = {(key, token) for (key, token, _), when in self._expiring.items() if now - when < self.retry_after}
        return [op for op in due(self, lock_of, now) if (op.key, op.token) not in tried]  # type: ignore[arg-type]

    patch(LockTimers, "due", per_token_due)
    patch(LockTimers, "_drop_expiring", lambda self, key, token=None: None if token is None else drop(self, key, token))


@pytest.mark.parametrize(
    ("inject", "seeds", "kind", "match"),
    [
        pytest.param(_steal_held_locks, 20, "safety", r"lock invariant \(a\) entry \d+ grants", id="steal_held_locks"),
        pytest.param(
            _expire_despite_refresh,
            60,
            "safety",
            r"lock invariant \(a\) .* with stale refresh",
            id="expire_despite_refresh",
        ),
        pytest.param(
            _fence_that_does_not_check, 40, "safety", r"lock invariant \(b\) resource", id="fence_that_does_not_check"
        ),
        pytest.param(
            _tell_grant_on_propose,
            10,
            "safety",
            r"lock invariant \(c\) .* no committed entry",
            id="tell_grant_on_propose",
        ),
        pytest.param(_half_ttl, 20, "safety", r"lock invariant \(d\) .* proposes LockExpire", id="half_ttl"),
        pytest.param(
            _keep_follower_deadlines,
            20,
            "safety",
            r"lock invariant \(d\) .* (proposes LockExpire|has not tried)",
            id="keep_follower_deadlines",
        ),
        pytest.param(
            _no_rearm_on_refresh, 30, "safety", r"lock invariant \(d\) .* proposes LockExpire", id="no_rearm_on_refresh"
        ),
        pytest.param(
            _suspect_everyone, 10, "safety", r"lock invariant \(d\) .* alive and connected", id="suspect_everyone"
        ),
        pytest.param(
            _never_expire, 20, "safety", r"lock invariant \(d\) .* has not tried to expire", id="never_expire"
        ),
        pytest.param(
            _disarm_on_cached_release,
            100,
            "safety",
            r"lock invariant \(d\) .* has not tried to expire",
            id="disarm_on_cached_release",
        ),
        pytest.param(
            _expiring_per_token,
            100,
            "safety",
            r"lock invariant \(d\) .* has not tried to expire",
            id="expiring_per_token",
        ),
    ],
)
def test_it_notices(
    inject: Callable[[Patch], dict[str, object] | None], seeds: int, kind: str, match: str, patch: Patch
) -> None:
    """Each injected bug is caught within `seeds` lock-heavy seeds, by the named check."""
    options = inject(patch) or {}
    exc = first_failure(range(seeds), lock_heavy=True, **options)
    assert exc.kind == kind, exc
    assert re.search(match, exc.detail.splitlines()[0]), exc
    assert f"--seed {exc.seed} --lock-heavy -v" in str(exc)


def test_lock_roles_follow_the_core() -> None:
    """The lock service is active exactly on the replica whose core leads its term."""
    sim = _calm_cluster()
    for r in sim.live_replicas():
        assert r.replica is not None
        assert bool(r.replica.locks.term) == (r.replica.raft.role is Role.LEADER)
