"""etcd's transactions in the state machine: compares, branches, nested transactions, one
revision for all of it, refusals that change nothing; random transactions against a
plain model of etcd's semantics."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from global_kv._errors import InvalidRequest, RequestTooLarge
from global_kv.state import (
    MAX_RESULT_BYTES,
    CompactedResult,
    CompactHistory,
    Compare,
    DeleteRange,
    DeleteResult,
    KeyNotFoundResult,
    KeyValue,
    KVPut,
    Put,
    PutResult,
    RangeOptions,
    RangeResult,
    StateMachine,
    Txn,
    TxnRange,
    TxnRefusedResult,
    TxnResult,
    decode_value,
    encode_value,
    txn_conflict,
)
from global_kv.storage import MemoryStorage
from tests.state.state_support import Log, v


def _apply(sm: StateMachine, log: Log, op: object) -> object:
    (applied,) = sm.apply([log.cmd(op)])
    return applied.result


def _put(key: bytes, value: bytes, prev_kv: bool = False) -> KVPut:
    return KVPut(key, v(value), prev_kv=prev_kv)


@pytest.fixture
def sm() -> StateMachine:
    return StateMachine(MemoryStorage())


@pytest.fixture
def log() -> Log:
    return Log()


def test_a_transaction_is_one_revision_and_answers_per_operation(sm: StateMachine, log: Log) -> None:
    _apply(sm, log, Put(b"a", v(b"1")))
    before = sm.revision
    txn = Txn(
        (Compare(b"a", "value", "=", v(b"1")),),
        (_put(b"a", b"2", prev_kv=True), _put(b"b", b"3"), TxnRange(b"a", b"c"), DeleteRange(b"zz")),
        (_put(b"never", b"x"),),
    )
    result = _apply(sm, log, txn)
    rev = before + 1
    assert sm.revision == rev
    assert result == TxnResult(
        rev,
        True,
        (
            PutResult(rev, KeyValue(b"a", before, before, 1, b"1")),
            PutResult(rev, None),
            RangeResult((KeyValue(b"a", before, rev, 2, b"2"), KeyValue(b"b", rev, rev, 1, b"3")), False, 2),
            DeleteResult(rev, 0, ()),
        ),
    )
    assert sm.get(b"never") is None
    # A failing compare runs the failure branch; a read-only one moves no revision.
    result = _apply(sm, log, Txn((Compare(b"a", "version", ">", 5),), (_put(b"x", b"1"),), (TxnRange(b"a"),)))
    assert type(result) is TxnResult and not result.succeeded and result.revision == rev == sm.revision
    assert sm.get(b"x") is None


def test_compares_follow_etcd_on_missing_keys_and_ranges(sm: StateMachine, log: Log) -> None:
    _apply(sm, log, Put(b"k1", v(b"a")))
    _apply(sm, log, Put(b"k2", v(b"b")))

    def holds(*compares: Compare) -> bool:
        result = _apply(sm, log, Txn(compares))
        assert type(result) is TxnResult
        return result.succeeded

    assert not holds(Compare(b"missing", "value", "=", v(b"")))  # a value compare on no key fails
    assert holds(Compare(b"missing", "version", "=", 0)) and holds(Compare(b"missing", "create", "=", 0))
    assert holds(Compare(b"k1", "value", "<", v(b"b"))) and not holds(Compare(b"k1", "value", ">", v(b"b")))
    assert holds(Compare(b"k", "version", "=", 1, b"l"))  # every key in the range
    assert not holds(Compare(b"k", "value", "=", v(b"a"), b"l"))  # k2 is "b"
    assert holds(Compare(b"k1", "mod", "<", sm.revision), Compare(b"k2", "lease", "=", 0))
    assert not holds(Compare(b"k1", "create", "!=", 2))


def test_nested_compares_are_decided_on_the_state_before_the_transaction(sm: StateMachine, log: Log) -> None:
    inner = Txn((Compare(b"flag", "version", "=", 0),), (_put(b"seen", b"absent"),), (_put(b"seen", b"present"),))
    result = _apply(sm, log, Txn((), (_put(b"flag", b"1"), inner)))
    assert type(result) is TxnResult and result.responses[1] == TxnResult(
        sm.revision, True, (PutResult(sm.revision, None),)
    )
    assert sm.get(b"seen") == b"absent"  # as etcd: the flag written before it does not count


def test_a_branch_that_writes_a_key_twice_is_refused_whole(sm: StateMachine, log: Log) -> None:
    for txn in (
        Txn((), (_put(b"k", b"1"), _put(b"k", b"2"))),
        Txn((), (DeleteRange(b"a", b"z"), _put(b"k", b"1"))),
        Txn((), (_put(b"k", b"1"), Txn((), (DeleteRange(b"k"),)))),
        Txn((), (), (Txn((), (_put(b"k", b"1"),)), Txn((), (), (_put(b"k", b"1"),)))),
    ):
        before = sm.revision
        result = _apply(sm, log, txn)
        assert type(result) is TxnRefusedResult and "duplicate key" in result.reason
        assert sm.revision == before and sm.get(b"k") is None
        with pytest.raises(InvalidRequest, match="written twice"):
            raise result.to_exception()
    # Allowed: two deletes of one key, and both branches of one nested txn writing it.
    ok = Txn((), (DeleteRange(b"k"), DeleteRange(b"a", b"z"), Txn((), (_put(b"zz", b"1"),), (_put(b"zz", b"2"),))))
    assert txn_conflict(ok) is None and type(_apply(sm, log, ok)) is TxnResult


def test_refusals_are_decided_before_anything_is_applied(sm: StateMachine, log: Log) -> None:
    for i in range(4):
        _apply(sm, log, Put(b"k", v(b"%d" % i)))
    _apply(sm, log, CompactHistory(sm.revision - 1))
    before = sm.revision
    cases = [
        (Txn((), (_put(b"a", b"1"), TxnRange(b"k", revision=2))), CompactedResult),
        (Txn((), (_put(b"a", b"1"), KVPut(b"nope", b"", ignore_value=True))), KeyNotFoundResult),
    ]
    for txn, kind in cases:
        assert type(_apply(sm, log, txn)) is kind
        assert sm.revision == before and sm.get(b"a") is None
    big = v(b"x" * (MAX_RESULT_BYTES // 3))
    for i in range(4):
        _apply(sm, log, Put(b"big%d" % i, big))
    before = sm.revision
    result = _apply(sm, log, Txn((), (_put(b"a", b"1"), TxnRange(b"big", b"bih"))))
    assert type(result) is TxnRefusedResult and result.too_large and sm.revision == before
    with pytest.raises(RequestTooLarge):
        raise result.to_exception()
    limited = _apply(sm, log, Txn((), (TxnRange(b"big", b"bih", limit=1, options=RangeOptions(keys_only=True)),)))
    assert type(limited) is TxnResult and limited.responses[0].count == 4  # type: ignore[union-attr]


def test_prev_kvs_over_the_result_budget_refuse_the_delete_whole_in_a_txn_or_alone(sm: StateMachine, log: Log) -> None:
    """A write is never applied and then refused for its answer: a delete (or a txn's puts
    and deletes) whose prev_kvs would pass MAX_RESULT_BYTES changes nothing; without
    prev_kv the same delete goes through."""
    big = v(b"x" * (MAX_RESULT_BYTES // 3))
    for i in range(4):
        _apply(sm, log, Put(b"big%d" % i, big))
    before = sm.revision
    alone = _apply(sm, log, DeleteRange(b"big", b"bih", prev_kv=True))
    assert type(alone) is TxnRefusedResult and alone.too_large and alone.field == "prev_kv"
    assert alone.to_exception().about_the_reply  # type: ignore[attr-defined]
    puts = tuple(KVPut(b"big%d" % i, v(b"y"), prev_kv=True) for i in range(4))
    for ops in [(DeleteRange(b"big", b"bih", prev_kv=True),), puts]:
        inside = _apply(sm, log, Txn((), ops))
        assert type(inside) is TxnRefusedResult and inside.too_large
    assert sm.revision == before and len(sm.range_kv(b"big", b"bih").kvs) == 4
    fits = _apply(sm, log, DeleteRange(b"big0", prev_kv=True))
    assert type(fits) is DeleteResult and fits.deleted == 1 and len(fits.prev_kvs) == 1
    done = _apply(sm, log, DeleteRange(b"big", b"bih"))
    assert type(done) is DeleteResult and done.deleted == 3 and sm.range_kv(b"big", b"bih").count == 0


def test_a_range_inside_sees_the_writes_before_it_and_a_past_revision_does_not(sm: StateMachine, log: Log) -> None:
    _apply(sm, log, Put(b"k", v(b"old")))
    _apply(sm, log, Put(b"j", v(b"j")))
    then = sm.revision
    ops = (_put(b"k", b"new"), TxnRange(b"k"), TxnRange(b"k", revision=then), DeleteRange(b"j"), TxnRange(b"j"))
    result = _apply(sm, log, Txn((), ops))
    assert type(result) is TxnResult
    now, past, gone = (r.kvs for r in (result.responses[1], result.responses[2], result.responses[4]))  # type: ignore[union-attr]
    assert [kv.value for kv in now] == [b"new"] and [kv.value for kv in past] == [b"old"] and gone == ()


# --- random transactions against a model -------------------------------------------------


class _Store:
    """etcd's store, plainly: key -> KeyValue, one revision per changing transaction."""

    def __init__(self) -> None:
        self.revision = 1
        self.kvs: dict[bytes, KeyValue] = {}

    def found(self, kvs: dict[bytes, KeyValue], key: bytes, end: bytes) -> list[KeyValue]:
        inside = [k for k in kvs if (k == key if end == b"" else k >= key and (end == b"\x00" or k < end))]
        return [kvs[k] for k in sorted(inside)]

    def holds(self, c: Compare) -> bool:
        found = self.found(self.kvs, c.key, c.range_end)
        if not found:
            if c.target == "value":
                return False
            found = [KeyValue(c.key, 0, 0, 0, b"")]
        field = {"version": "version", "create": "create_revision", "mod": "mod_revision", "value": "value"}
        ops = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
        want = decode_value(c.value) if type(c.value) is bytes else c.value
        return all(ops[c.result](getattr(kv, field.get(c.target, "lease")), want) for kv in found)

    def paths(self, txn: Txn) -> Iterator[list[object]]:
        """Every set of writes one run of `txn`'s branches could make (for the duplicate rule)."""
        for branch in (txn.success, txn.failure):
            yield from self._branch(branch)

    def _branch(self, ops: tuple[object, ...]) -> Iterator[list[object]]:
        choices = []
        for op in ops:
            if type(op) is Txn:
                choices.append([w for p in self.paths(op) for w in [p]])
            else:
                choices.append([[op]])
        for combo in itertools.product(*choices):
            yield [w for part in combo for w in part]

    def conflicts(self, txn: Txn) -> bool:
        for writes in self.paths(txn):
            puts = [w.key for w in writes if type(w) is KVPut]
            if len(puts) != len(set(puts)):
                return True
            for d in (w for w in writes if type(w) is DeleteRange):
                if self.found({k: KeyValue(k, 0, 0, 0, b"") for k in puts}, d.key, d.range_end):
                    return True
        return False

    def run(self, txn: Txn) -> tuple[bool, list[object]]:
        """Apply `txn` (compares decided first, on the state before it); the branch taken and
        the responses, with revision 0 where the revision goes."""
        decided = {}

        def decide(t: Txn) -> None:
            decided[id(t)] = all(self.holds(c) for c in t.compare)
            for op in t.success if decided[id(t)] else t.failure:
                if type(op) is Txn:
                    decide(op)

        decide(txn)
        main = self.revision + 1
        changed = False

        def execute(t: Txn) -> tuple[bool, list[object]]:
            nonlocal changed
            responses: list[object] = []
            for op in t.success if decided[id(t)] else t.failure:
                if type(op) is KVPut:
                    old = self.kvs.get(op.key)
                    create, version = (old.create_revision, old.version + 1) if old else (main, 1)
                    self.kvs[op.key] = KeyValue(op.key, create, main, version, decode_value(op.value))
                    changed = True
                    responses.append(("put",))
                elif type(op) is DeleteRange:
                    gone = self.found(self.kvs, op.key, op.range_end)
                    for kv in gone:
                        del self.kvs[kv.key]
                    changed = changed or bool(gone)
                    responses.append(("delete", len(gone)))
                elif type(op) is TxnRange:
                    responses.append(("range", self.found(self.kvs, op.key, op.range_end)))
                else:
                    responses.append(execute(op))  # type: ignore[arg-type]
            return decided[id(t)], responses

        out = execute(txn)
        if changed:
            self.revision = main
        return out


def _shape(result: TxnResult) -> tuple[bool, list[object]]:
    out: list[object] = []
    for r in result.responses:
        if type(r) is PutResult:
            out.append(("put",))
        elif type(r) is DeleteResult:
            out.append(("delete", r.deleted))
        elif type(r) is RangeResult:
            out.append(("range", list(r.kvs)))
        else:
            out.append(_shape(r))  # type: ignore[arg-type]
    return result.succeeded, out


def _random_txn(rng: random.Random, keys: list[bytes], depth: int = 0) -> Txn:
    def compare() -> Compare:
        target = rng.choice(["version", "create", "mod", "value", "lease"])
        value: int | bytes = v(rng.choice([b"", b"1", b"2", b"3"])) if target == "value" else rng.randrange(6)
        end = rng.choice([b"", b"", b"\x00", b"c"])
        return Compare(rng.choice(keys), target, rng.choice(["=", "!=", "<", ">"]), value, end)

    def op() -> object:
        roll = rng.random()
        if roll < 0.45:
            return _put(rng.choice(keys), rng.choice([b"1", b"2", b"3"]))
        if roll < 0.65:
            return DeleteRange(rng.choice(keys), rng.choice([b"", b"", b"c"]))
        if roll < 0.9 or depth >= 2:
            return TxnRange(rng.choice(keys), rng.choice([b"", b"\x00"]))
        return _random_txn(rng, keys, depth + 1)

    return Txn(
        tuple(compare() for _ in range(rng.randrange(3))),
        tuple(op() for _ in range(rng.randrange(4))),  # type: ignore[misc]
        tuple(op() for _ in range(rng.randrange(3))),  # type: ignore[misc]
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_transactions_do_what_etcds_semantics_say(seed: int) -> None:
    rng = random.Random(seed)
    sm, log, model = StateMachine(MemoryStorage()), Log(), _Store()
    keys = [b"a", b"b", b"b1", b"c", b"d"]
    refused = ran = 0
    for _ in range(250):
        txn = _random_txn(rng, keys)
        result = _apply(sm, log, txn)
        if model.conflicts(txn):
            assert type(result) is TxnRefusedResult, txn
            refused += 1
            continue
        assert type(result) is TxnResult, (txn, result)
        assert _shape(result) == model.run(txn), txn
        assert sm.revision == model.revision == result.revision
        assert list(sm.range_kv(b"\x00", b"\x00").kvs) == [model.kvs[k] for k in sorted(model.kvs)]
        ran += 1
    assert refused > 10 and ran > 100


def test_a_transaction_crosses_the_log_and_the_session_cache_intact(sm: StateMachine, log: Log) -> None:
    txn = Txn((Compare(b"k", "version", "=", 0),), (_put(b"k", b"1"), TxnRange(b"k")))
    (first,) = sm.apply([log.cmd(txn, "cli", 1, 0)])
    (again,) = sm.apply([log.cmd(txn, "cli", 1, 0)])  # a retry: answered from the session
    assert again.result == first.result and sm.get(b"k") == decode_value(encode_value(b"1"))
