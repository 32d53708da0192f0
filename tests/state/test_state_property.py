"""Property tests: random command streams against a naive model, in random batch splits,
across restarts, replays and snapshot restores - every replica ends in the same state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ergo_py.ids import PID
from global_kv.raft import Entry, EntryType
from global_kv.state import (
    CAS,
    Applied,
    BatchDelete,
    BatchPut,
    CASFailedResult,
    Command,
    Delete,
    Granted,
    Lock,
    LockAcquire,
    LockExpire,
    LockHeldResult,
    LockNotHeldResult,
    LockRefresh,
    LockRelease,
    LockReleaseOwner,
    Ok,
    Op,
    Put,
    Released,
    SessionClose,
    SessionExpiredResult,
    SessionInfo,
    StaleTokenResult,
    StateMachine,
    decode_command,
    decode_value,
    encode_command,
    encode_value,
)
from global_kv.storage import open_engine

EXPIRY = 8
KEYS = [b"a", b"b", b"c"]
LOCK_KEYS = [b"L1", b"L2"]
OWNERS = [PID("x@h", 1, 1), PID("y@h", 2, 1), PID("x@h", 1, 2)]
CLIENTS = ["c0", "c1", "c2"]
VALUES = [b"", b"1", b"2", b"long value " * 40]

stored_values = st.builds(lambda raw, compress: encode_value(raw, compress, 8), st.sampled_from(VALUES), st.booleans())
maybe_values = st.none() | stored_values
keys = st.sampled_from(KEYS)
lock_keys = st.sampled_from(LOCK_KEYS)
owners = st.sampled_from(OWNERS)
ttls = st.sampled_from([0, 100, 5000])
# A token is either the current holder's (resolved when the step becomes an entry) or a guess.
tokens = st.none() | st.integers(1, 40)

ops = st.one_of(
    st.tuples(st.just("put"), keys, stored_values),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("cas"), keys, maybe_values, maybe_values),
    st.tuples(st.just("bput"), st.lists(st.tuples(keys, stored_values), max_size=3)),
    st.tuples(st.just("bdel"), st.lists(keys, max_size=3)),
    st.tuples(st.just("acquire"), lock_keys, owners, ttls),
    st.tuples(st.just("release"), lock_keys, tokens),
    st.tuples(st.just("refresh"), lock_keys, tokens, ttls),
    st.tuples(st.just("owner"), owners),
    st.tuples(st.just("expire"), lock_keys, tokens, st.sampled_from(["unarmed", "current", "granted"])),
    st.tuples(st.just("close"), st.sampled_from([f"{c}.{g}" for c in CLIENTS for g in range(3)])),
)
clients = st.sampled_from(CLIENTS)
steps = st.one_of(
    st.tuples(st.just("noop")),
    st.tuples(st.just("conf")),
    st.tuples(st.just("internal"), ops),
    st.tuples(st.just("client"), clients, ops, st.integers(0, 2)),
    st.tuples(st.just("client"), clients, ops, st.integers(0, 2)),
    st.tuples(st.just("retry"), clients, st.integers(0, 4)),
)


@dataclass
class ClientSim:
    """A client numbering its requests and acknowledging with some lag. When told its
    session expired it carries on as a new client (a new id), as a real one must."""

    name: str
    seq: int = 0
    ack: int = 1
    sent: dict[int, Op] = field(default_factory=dict)
    generation: int = 0

    @property
    def client_id(self) -> str:
        return f"{self.name}.{self.generation}"

    def renew(self) -> None:
        self.generation += 1
        self.seq, self.ack, self.sent = 0, 1, {}


def build_op(spec: tuple[Any, ...], locks: dict[bytes, Lock]) -> Op:
    kind, *a = spec

    def token(key: bytes, guess: int | None) -> int:
        if guess is None:
            held = locks.get(key)
            return held.token if held is not None else 1
        return guess

    if kind == "put":
        return Put(a[0], a[1])
    if kind == "delete":
        return Delete(a[0])
    if kind == "cas":
        return CAS(a[0], a[1], a[2])
    if kind == "bput":
        return BatchPut(tuple(a[0]))
    if kind == "bdel":
        return BatchDelete(tuple(a[0]))
    if kind == "acquire":
        return LockAcquire(a[0], a[1], a[2])
    if kind == "release":
        return LockRelease(a[0], token(a[0], a[1]))
    if kind == "refresh":
        return LockRefresh(a[0], token(a[0], a[1]), a[2])
    if kind == "owner":
        return LockReleaseOwner(a[0])
    if kind == "expire":
        held = locks.get(a[0])
        armed = 0  # "granted": a timer armed at the grant, perhaps refreshed since
        if held is not None and a[2] != "unarmed":
            armed = held.refreshed_index if a[2] == "current" else held.granted_index
        return LockExpire(a[0], token(a[0], a[1]), armed)
    return SessionClose(a[0])


class Model:
    """The rules, written as plainly as possible (sessions scanned every entry)."""

    def __init__(self) -> None:
        self.kv: dict[bytes, bytes] = {}
        self.locks: dict[bytes, Lock] = {}
        self.sessions: dict[str, dict[str, Any]] = {}

    def apply(self, entry: Entry) -> Any:
        i = entry.index
        for idle in [c for c, s in self.sessions.items() if i - s["last"] > EXPIRY]:
            del self.sessions[idle]
        if entry.type != EntryType.NORMAL:
            return None
        cmd = decode_command(entry.data)
        cid, seq = cmd.client_id, cmd.seq
        if cid is None:
            return self.execute(cmd.op, i)
        s = self.sessions.get(cid)
        if s is None:
            if cmd.ack > 1:
                return SessionExpiredResult(cid, seq)
            s = self.sessions[cid] = {"last": i, "ack": cmd.ack, "res": {}}
        else:
            cached = s["res"].get(seq)
            s["last"], s["ack"] = i, max(s["ack"], cmd.ack)
            s["res"] = {k: r for k, r in s["res"].items() if k >= s["ack"]}
            if cached is not None:
                return cached
            if seq < s["ack"]:
                return SessionExpiredResult(cid, seq)
        result = self.execute(cmd.op, i)
        refused_acquire = isinstance(cmd.op, LockAcquire) and isinstance(result, LockHeldResult)
        if self.sessions.get(cid) is s and not refused_acquire:  # a refused acquire is decided afresh
            s["res"][seq] = result
        return result

    def execute(self, op: Op, i: int) -> Any:
        kv, locks = self.kv, self.locks
        if isinstance(op, Put):
            kv[op.key] = decode_value(op.value)
        elif isinstance(op, Delete):
            kv.pop(op.key, None)
        elif isinstance(op, CAS):
            current = kv.get(op.key)
            if current != (None if op.expected is None else decode_value(op.expected)):
                return CASFailedResult(op.key, current)
            if op.new is None:
                kv.pop(op.key, None)
            else:
                kv[op.key] = decode_value(op.new)
        elif isinstance(op, BatchPut):
            kv.update((k, decode_value(val)) for k, val in op.items)
        elif isinstance(op, BatchDelete):
            for k in op.keys:
                kv.pop(k, None)
        elif isinstance(op, LockAcquire):
            if op.key in locks:
                return LockHeldResult(op.key, locks[op.key].owner, locks[op.key].token)
            locks[op.key] = Lock(op.key, op.owner, i, op.ttl_ms, i, i)
            return Granted(op.key, i, op.ttl_ms)
        elif isinstance(op, (LockRelease, LockRefresh, LockExpire)):
            held = locks.get(op.key)
            if held is None:
                return LockNotHeldResult(op.key)
            if held.token != op.token:
                return StaleTokenResult(op.key, op.token, held.token)
            if isinstance(op, LockRefresh):
                locks[op.key] = Lock(op.key, held.owner, held.token, op.ttl_ms, held.granted_index, i)
                return Granted(op.key, held.token, op.ttl_ms)
            if isinstance(op, LockExpire) and op.refreshed_index and op.refreshed_index != held.refreshed_index:
                return LockHeldResult(op.key, held.owner, held.token)
            del locks[op.key]
            return Released(((op.key, op.token),))
        elif isinstance(op, LockReleaseOwner):
            mine = sorted(k for k, lock in locks.items() if lock.owner == op.owner)
            released = tuple((k, locks.pop(k).token) for k in mine)
            return Released(released)
        elif isinstance(op, SessionClose):
            self.sessions.pop(op.client_id, None)
        return Ok()

    def session_infos(self) -> list[SessionInfo]:
        return [SessionInfo(c, s["last"], s["ack"], tuple(sorted(s["res"]))) for c, s in sorted(self.sessions.items())]


def make_log(spec: list[tuple[Any, ...]]) -> tuple[list[Entry], list[Any], Model]:
    """Entries for the steps (tokens resolved like a leader would), and the model's results."""
    model = Model()
    clients = {c: ClientSim(c) for c in CLIENTS}
    entries: list[Entry] = []
    results: list[Any] = []
    for step in spec:
        index = len(entries) + 1
        if step[0] in ("noop", "conf"):
            kind = EntryType.NOOP if step[0] == "noop" else EntryType.CONF_CHANGE
            entry = Entry(index, 1, kind, b"")
        else:
            if step[0] == "internal":
                cmd = Command(None, 0, 0, build_op(step[1], model.locks))
            elif step[0] == "client":
                c = clients[step[1]]
                c.seq += 1
                c.ack = max(c.ack, c.seq - step[3])
                c.sent[c.seq] = op = build_op(step[2], model.locks)
                cmd = Command(c.client_id, c.seq, c.ack, op)
            else:
                c = clients[step[1]]
                seq = c.seq - step[2]
                if seq < 1:
                    continue
                cmd = Command(c.client_id, seq, min(c.ack, seq), c.sent[seq])
            entry = Entry(index, 1, EntryType.NORMAL, encode_command(cmd))
        entries.append(entry)
        result = model.apply(entry)
        if result is not None:
            cmd = decode_command(entry.data)
            results.append(Applied(index, cmd.client_id, cmd.seq, result))
            if isinstance(result, SessionExpiredResult):
                clients[result.client_id.partition(".")[0]].renew()
    return entries, results, model


def check_against_model(sm: StateMachine, model: Model) -> None:
    assert sm.range() == sorted(model.kv.items())
    assert sm.locks() == [model.locks[k] for k in sorted(model.locks)]
    assert sm.sessions() == model.session_infos()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.lists(steps, min_size=15, max_size=60),
    splits=st.lists(st.integers(1, 12), min_size=1, max_size=20),
    restart_after=st.sets(st.integers(0, 20), max_size=3),
    replay_back=st.integers(0, 5),
    snapshot_at=st.integers(0, 60),
)
def test_random_logs_in_random_batches_reach_the_same_state(
    spec: list[tuple[Any, ...]],
    splits: list[int],
    restart_after: set[int],
    replay_back: int,
    snapshot_at: int,
) -> None:
    entries, expected, model = make_log(spec)

    # Replica 1: one entry at a time.
    one = StateMachine(open_engine("memory"), session_expiry_entries=EXPIRY)
    out_one: list[Applied] = []
    for entry in entries:
        out_one += one.apply([entry])
    assert out_one == expected
    check_against_model(one, model)

    # Replica 2: random batch sizes, restarts on the same engine, replayed overlaps.
    engine = open_engine("memory")
    two = StateMachine(engine, session_expiry_entries=EXPIRY)
    out_two: list[Applied] = []
    pos, batch_no = 0, 0
    while pos < len(entries):
        size = splits[batch_no % len(splits)]
        start = max(0, pos - replay_back)  # already-applied entries come again: skipped
        out_two += two.apply(entries[start : pos + size])
        pos += size
        if batch_no in restart_after:
            two = StateMachine(engine, session_expiry_entries=EXPIRY)
        batch_no += 1
    assert out_two == expected
    assert two.state_digest(sessions=True) == one.state_digest(sessions=True)
    check_against_model(two, model)

    # Replica 3: installs a snapshot of replica 1's state at some index, then catches up.
    cut = min(snapshot_at, len(entries))
    early = StateMachine(open_engine("memory"), session_expiry_entries=EXPIRY)
    early.apply(entries[:cut])
    three = StateMachine(open_engine("memory"), session_expiry_entries=EXPIRY)
    with early.snapshot_chunks(chunk_size=64) as stream:
        three.restore_chunks(stream, stream.last_index)
    out_three = three.apply(entries)
    assert out_three == [a for a in expected if a.index > cut]
    assert three.state_digest(sessions=True) == one.state_digest(sessions=True)
    assert three.locks() == one.locks() and three.owners() == one.owners()


def test_the_generator_reaches_every_outcome() -> None:
    """Guards the property test's strength: its logs produce every kind of result."""
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(spec=st.lists(steps, min_size=30, max_size=45))
    def collect(spec: list[tuple[Any, ...]]) -> None:
        seen.update(type(a.result).__name__ for a in make_log(spec)[1])

    collect()
    assert seen == {
        "Ok", "Granted", "Released", "CASFailedResult", "LockHeldResult", "LockNotHeldResult",
        "StaleTokenResult", "SessionExpiredResult",
    }  # fmt: skip
