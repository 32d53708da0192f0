"""The pure replica, driven by hand: one member that leads alone, inputs in, effects out.

The simulator drives the same code under faults (tests/sim); these pin down single
rules where a failure names the rule."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from ergo_py.ids import PID
from global_kv._errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeadershipTransferInProgress,
    LeaseNotFound,
    LockHeld,
    NotLeader,
)
from global_kv.protocol import (
    CompactRequest,
    CompactResponse,
    Compare,
    DeleteRangeResponse,
    GetRequest,
    KVDeleteRangeRequest,
    KVPutRequest,
    KVRangeRequest,
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseTimeToLiveRequest,
    LockRequest,
    PutRequest,
    PutResponse,
    RangeResponse,
    ResponseHeader,
    SessionTag,
    TxnRequest,
    TxnResponse,
    UnlockRequest,
    WatchAck,
    WatchCreateRequest,
)
from global_kv.raft import RaftConfig, RaftNode, Role
from global_kv.replica import (
    AppliedEntries,
    Forward,
    GlobalReplica,
    Monitor,
    Notify,
    Proposing,
    ReplicaOptions,
    Reply,
    RoleChanged,
)
from global_kv.replica import _watches as watches_module
from global_kv.state import Command, CompactHistory, KeyValue, LeaseExpire, StateMachine
from global_kv.storage import MemoryStorage

A, B = PID("a", 1, 1), PID("b", 1, 1)


class Host:
    def is_connected(self, node: str) -> bool:
        return True

    def can_reach(self, node: str) -> bool:
        return True

    def is_gone(self, owner: Any) -> bool:
        return False

    def leader_hint(self, raft_id: str | None) -> str | None:
        return raft_id


def _replica(voters: tuple[str, ...] = ("n0",)) -> GlobalReplica:
    raft = RaftNode.bootstrap("n0", voters, RaftConfig(), random.Random(7))
    return GlobalReplica(raft, StateMachine(MemoryStorage()), ReplicaOptions(), Host())


def _drive(replica: GlobalReplica, now: float = 0.0) -> list[Any]:
    """Every Ready persisted at once (a single member sends nothing); the effects."""
    while (rd := replica.ready(now)) is not None:
        replica.persisted(rd, now)
    return replica.take_effects()


def _leading() -> GlobalReplica:
    replica = _replica()
    for _ in range(100):
        replica.tick()
        effects = _drive(replica)
        if replica.role is Role.LEADER:
            assert any(type(e) is RoleChanged for e in effects)
            return replica
    raise AssertionError("a lone member did not become leader")


def _replies(effects: list[Any]) -> dict[Any, tuple[bool, Any]]:
    return {e.ref: (e.ok, e.value) for e in effects if type(e) is Reply}


def _tag(client: str, seq: int) -> SessionTag:
    return SessionTag(client, seq, seq)


def _nested(depth: int) -> TxnRequest:
    txn = TxnRequest()
    for _ in range(depth - 1):
        txn = TxnRequest((), (txn,))
    return txn


def test_a_write_is_answered_once_applied_after_the_apply_is_reported() -> None:
    replica = _leading()
    replica.request("c", 1, PutRequest(b"k", b"v", _tag("c", 1)), 0.0)
    assert replica.take_effects() == []  # batched until the next Ready
    effects = _drive(replica)
    kinds = [type(e) for e in effects]
    assert kinds.index(AppliedEntries) < kinds.index(Reply)
    assert _replies(effects) == {1: (True, None)}
    replica.request("c", 2, GetRequest(b"k"), 0.0)
    assert _replies(_drive(replica)) == {2: (True, b"v")}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (GetRequest(b"", ""), "key"),
        (GetRequest(b"k", "sometimes"), "consistency"),
        (PutRequest(b"k", b"v", SessionTag("c", 0, 0)), "session.seq"),
        (KVRangeRequest(b"k", sort_order="sideways"), "sort_order"),
        (KVRangeRequest(b"k", sort_target="size"), "sort_target"),
        (KVRangeRequest(b"k", keys_only=1), "keys_only"),  # type: ignore[arg-type]
        (KVRangeRequest(b"k", max_mod_revision=-2), "max_mod_revision"),
        (TxnRequest((), (KVPutRequest(b"k", b"1"), KVPutRequest(b"k", b"2"))), "success"),
        (TxnRequest((), (), (KVDeleteRangeRequest(b"a", b"z"), KVPutRequest(b"k", b"2"))), "failure"),
        (TxnRequest((), ("put k",)), "success"),  # type: ignore[arg-type]
        (TxnRequest(("k == 1",)), "compare"),  # type: ignore[arg-type]
        (TxnRequest((), (KVPutRequest(b"", b"1"),)), "key"),
        (_nested(9), "txn"),
        ("not a request", "request"),
    ],
)
def test_a_malformed_request_is_the_callers_error_and_proposes_nothing(request_: Any, field: str) -> None:
    replica = _leading()
    last = replica.raft.last_index
    assert replica.request("c", 9, request_, 0.0) is True
    ((ok, error),) = _replies(replica.take_effects()).values()
    assert not ok and isinstance(error, InvalidRequest) and error.field == field
    _drive(replica)
    assert replica.raft.last_index == last
    assert replica.counters.rejected["invalid"] == 1


def test_without_a_leader_a_write_is_told_not_leader_and_with_one_it_is_forwarded() -> None:
    replica = _replica(("n0", "n1", "n2"))
    replica.request("c", 1, PutRequest(b"k", b"v", _tag("c", 1)), 0.0)
    ((ok, error),) = _replies(replica.take_effects()).values()
    assert not ok and type(error) is NotLeader and error.leader_hint is None
    replica.leader_id = "n1"  # as a soft state naming the leader would set it
    replica.request("c", 2, PutRequest(b"k", b"v", _tag("c", 2)), 0.0)
    (forward,) = replica.take_effects()
    assert forward == Forward("c", 2, PutRequest(b"k", b"v", _tag("c", 2)), 1, "n1")


def test_a_retried_waiting_acquire_keeps_one_place_in_line_and_is_granted_once() -> None:
    replica = _leading()
    replica.request("a", 1, LockRequest(b"L", A, 30.0, 0.0, _tag("a", 1)), 0.0)
    assert _replies(_drive(replica)) == {1: (True, replica.sm.lock(b"L").token)}  # type: ignore[union-attr]
    wait = LockRequest(b"L", B, 30.0, 10.0, _tag("b", 1))
    replica.request("b", 2, wait, 0.0)
    replica.request("b", 3, wait, 1.0)  # its client retried: same session tag
    effects = _drive(replica, 1.0)
    assert replica.locks.waiter_count() == 1 and _replies(effects) == {}
    assert Monitor(B) in effects
    token = replica.sm.lock(b"L").token  # type: ignore[union-attr]
    replica.request("a", 4, UnlockRequest(b"L", token, _tag("a", 2)), 2.0)
    replies = _replies(_drive(replica, 2.0))
    granted = replica.sm.lock(b"L")
    assert granted is not None and granted.owner == B
    assert replies == {4: (True, None), 3: (True, granted.token)}  # the latest attempt hears it


def test_an_acquire_refused_as_held_is_decided_afresh_when_retried() -> None:
    replica = _leading()
    replica.request("a", 1, LockRequest(b"L", A, 30.0, 0.0, _tag("a", 1)), 0.0)
    _drive(replica)
    token = replica.sm.lock(b"L").token  # type: ignore[union-attr]
    try_b = LockRequest(b"L", B, 30.0, 0.0, _tag("b", 1))
    replica.request("b", 2, try_b, 0.0)
    ((ok, error),) = _replies(_drive(replica)).values()
    assert not ok and isinstance(error, LockHeld)
    replica.request("a", 3, UnlockRequest(b"L", token, _tag("a", 2)), 0.0)
    _drive(replica)
    replica.request("b", 4, try_b, 0.0)  # the same request again (its answer was lost)
    assert _replies(_drive(replica)) == {4: (True, replica.sm.lock(b"L").token)}  # type: ignore[union-attr]


def test_a_range_is_served_at_a_past_revision_with_a_header() -> None:
    replica = _leading()
    for seq, value in enumerate((b"1", b"2"), start=1):
        replica.request("c", seq, PutRequest(b"k", value, _tag("c", seq)), 0.0)
        _drive(replica)
    now = replica.sm.revision
    replica.request("c", 10, KVRangeRequest(b"k", b"", now - 1), 0.0)
    replica.request("c", 11, KVRangeRequest(b"\x00", b"\x00"), 0.0)
    replies = _replies(_drive(replica))
    old, everything = replies[10][1], replies[11][1]
    assert old == RangeResponse(
        ResponseHeader(now, replica.term, "n0"), (KeyValue(b"k", now - 1, now - 1, 1, b"1"),), False, 1
    )
    assert everything.kvs == (KeyValue(b"k", now - 1, now, 2, b"2"),) and everything.header.revision == now
    replica.propose(Command(None, 0, 0, CompactHistory(now)), None, None, None)
    _drive(replica)
    replica.request("c", 12, KVRangeRequest(b"k", b"", now - 1), 0.0)
    replica.request("c", 13, KVRangeRequest(b"k", b"", now + 5), 0.0)
    replica.request("c", 14, KVRangeRequest(b"k", b"", -1), 0.0)
    replies = _replies(_drive(replica))
    assert type(replies[12][1]) is Compacted and replies[12][1].compact_revision == now
    assert type(replies[13][1]) is FutureRevision
    assert type(replies[14][1]) is InvalidRequest and replies[14][1].field == "revision"
    replica.request("c", 15, KVRangeRequest(b"\x00", b"\x00", sort_order="descend", keys_only=True, limit=1), 0.0)
    (newest,) = _replies(_drive(replica))[15][1].kvs
    assert newest == KeyValue(b"k", now - 1, now, 2, b"")


def test_etcds_writes_are_answered_with_their_own_revision() -> None:
    replica = _leading()
    replica.request("c", 1, KVPutRequest(b"k", b"1", session=_tag("c", 1)), 0.0)
    replica.request("c", 2, KVPutRequest(b"k", b"2", prev_kv=True, session=_tag("c", 2)), 0.0)
    replies = _replies(_drive(replica))
    first, second = replies[1][1], replies[2][1]
    assert type(first) is PutResponse and first.prev_kv is None
    assert second.header.revision == first.header.revision + 1 == replica.sm.revision
    assert second.prev_kv == KeyValue(b"k", first.header.revision, first.header.revision, 1, b"1")
    assert second.header.raft_term == replica.term and second.header.member_id == "n0"
    # Retried (its answer was lost): the session answers it again, with its own revision.
    replica.request("c", 3, KVPutRequest(b"k", b"2", prev_kv=True, session=_tag("c", 2)), 0.0)
    replica.request("c", 4, KVDeleteRangeRequest(b"a", b"\x00", True, _tag("c", 3)), 0.0)
    replies = _replies(_drive(replica))
    assert replies[3] == (True, second)
    deleted = replies[4][1]
    assert type(deleted) is DeleteRangeResponse and deleted.deleted == 1 and deleted.prev_kvs[0].value == b"2"
    replica.request("c", 5, CompactRequest(deleted.header.revision, _tag("c", 4)), 0.0)
    replica.request("c", 6, KVPutRequest(b"k", b"", ignore_value=True, session=_tag("c", 5)), 0.0)
    replica.request("c", 7, KVPutRequest(b"k", b"x", lease=3, session=_tag("c", 6)), 0.0)
    replies = _replies(_drive(replica))
    assert replies[5] == (True, CompactResponse(ResponseHeader(deleted.header.revision, replica.term, "n0")))
    assert not replies[6][0] and type(replies[6][1]) is KeyNotFound
    assert not replies[7][0] and type(replies[7][1]) is LeaseNotFound and replies[7][1].lease_id == 3
    assert replica.sm.compact_revision == deleted.header.revision


def _snapshot_now(replica: GlobalReplica) -> None:
    index, chunks = replica.sm.snapshot()
    replica.compact(index, b"".join(chunks))


def test_a_snapshot_is_due_after_interval_entries_that_add_up_to_half_the_last_one() -> None:
    raft = RaftNode.bootstrap("n0", ("n0",), RaftConfig(), random.Random(7))
    replica = GlobalReplica(raft, StateMachine(MemoryStorage()), ReplicaOptions(snapshot_interval=5), Host())
    for _ in range(100):
        replica.tick()
        _drive(replica)
    value = b"v" * 1000
    seq = 0

    def write(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            replica.request("c", seq, PutRequest(b"k%d" % seq, value, _tag("c", seq)), 0.0)
            _drive(replica)

    write(5)
    assert replica.snapshot_due()  # the interval: the first snapshot is empty
    _snapshot_now(replica)
    size = replica.raft.snapshot_size
    assert size > 5 * 1000  # five keys, each with its history
    write(5)  # 5 entries, but ~5 KB of log: less than half of the snapshot's size
    assert not replica.snapshot_due()
    write(int(size / 2 / 1000) - 4)
    assert replica.snapshot_due()
    _snapshot_now(replica)
    write(1)
    assert not replica.snapshot_due()
    replica.request_snapshot()  # an operator's request is honoured whatever the sizes
    assert replica.snapshot_due()


def test_a_transaction_is_answered_with_one_header_for_all_its_responses() -> None:
    replica = _leading()
    replica.request("c", 1, KVPutRequest(b"k", b"1", session=_tag("c", 1)), 0.0)
    _drive(replica)
    txn = TxnRequest(
        (Compare(b"k", "value", "=", b"1"),),
        (KVPutRequest(b"k", b"2", prev_kv=True), KVRangeRequest(b"k"), TxnRequest((), (KVDeleteRangeRequest(b"x"),))),
        (),
        _tag("c", 2),
    )
    replica.request("c", 2, txn, 0.0)
    replica.request("c", 3, replace(txn, session=_tag("c", 3)), 0.0)  # the compare now fails
    replies = _replies(_drive(replica))
    ok, answer = replies[2]
    rev = replica.sm.revision
    header = ResponseHeader(rev, replica.term, "n0")
    assert ok and answer == TxnResponse(
        header,
        True,
        (
            PutResponse(header, KeyValue(b"k", rev - 1, rev - 1, 1, b"1")),
            RangeResponse(header, (KeyValue(b"k", rev - 1, rev, 2, b"2"),), False, 1),
            TxnResponse(header, True, (DeleteRangeResponse(header, 0),)),
        ),
    )
    assert replies[3] == (True, TxnResponse(header, False, ()))


def test_a_lease_expires_at_the_deadline_each_replica_armed_when_it_applied_the_keep_alive() -> None:
    replica = _leading()
    replica.request("c", 1, LeaseGrantRequest(2.0, session=_tag("c", 1)), 0.0)
    (granted,) = _replies(_drive(replica, 0.0)).values()
    lease_id = granted[1].lease_id
    assert granted[0] and granted[1].ttl == 2.0
    replica.request("c", 2, KVPutRequest(b"svc/a", b"up", lease=lease_id, session=_tag("c", 2)), 0.0)
    _drive(replica, 0.0)
    replica.request("c", 3, LeaseKeepAliveRequest(lease_id, _tag("c", 3)), 1.5)
    assert _replies(_drive(replica, 1.5))[3][1] == LeaseKeepAliveResponse(
        ResponseHeader(replica.sm.revision, replica.term, "n0"), lease_id, 2.0
    )
    replica.check(3.0)  # 2 s after the grant, but 1.5 s after the keep-alive: alive
    _drive(replica, 3.0)
    assert replica.sm.get(b"svc/a") == b"up"
    replica.request("c", 10, LeaseTimeToLiveRequest(lease_id, keys=True), 3.0)
    ttl = _replies(_drive(replica, 3.0))[10][1]
    assert (ttl.ttl, ttl.granted_ttl, ttl.keys) == (0.5, 2.0, (b"svc/a",))
    replica.check(3.5)  # its deadline: the leader proposes the expiry
    effects = _drive(replica, 3.5)
    assert any(type(e) is Proposing and type(e.op) is LeaseExpire for e in effects)
    assert replica.sm.get(b"svc/a") is None and replica.sm.lease(lease_id) is None
    replica.request("c", 11, LeaseTimeToLiveRequest(lease_id), 4.0)
    replica.request("c", 12, LeaseLeasesRequest(), 4.0)
    replies = _replies(_drive(replica, 4.0))
    assert replies[11][1].ttl == -1 and replies[12][1].leases == ()


def test_a_process_owned_lease_is_revoked_when_its_owner_goes_down() -> None:
    replica = _leading()
    replica.request("c", 1, LeaseGrantRequest(60.0, owner=A, session=_tag("c", 1)), 0.0)
    effects = _drive(replica)
    lease_id = _replies(effects)[1][1].lease_id
    assert Monitor(A) in effects  # watched from the grant on
    replica.request("c", 2, KVPutRequest(b"presence/a", b"up", lease=lease_id, session=_tag("c", 2)), 0.0)
    _drive(replica)
    replica.owner_down(A, False, 1.0)
    _drive(replica, 1.0)
    assert replica.sm.get(b"presence/a") is None and replica.sm.lease(lease_id) is None


def test_a_gone_owners_release_that_was_refused_is_proposed_again_until_it_applies() -> None:
    replica = _leading()
    replica.request("c", 1, LeaseGrantRequest(3600.0, owner=A, session=_tag("c", 1)), 0.0)
    replica.request("c", 2, LockRequest(b"job", A, session=_tag("c", 2)), 0.0)
    effects = _drive(replica)
    lease_id = _replies(effects)[1][1].lease_id

    def refuse(datas: Any) -> int:
        raise LeadershipTransferInProgress("n1")

    replica.raft.propose_batch = refuse  # type: ignore[method-assign]
    replica.owner_down(A, False, 1.0)  # its DOWN comes once; the release is refused
    _drive(replica, 1.0)
    del replica.raft.propose_batch
    assert replica.sm.lease(lease_id) is not None and replica.sm.locks_of(A)
    assert replica.check_pending()
    replica.check(1.5)  # before expiry_retry (1 s): not yet
    _drive(replica, 1.5)
    assert replica.sm.lease(lease_id) is not None
    replica.check(2.0)
    _drive(replica, 2.0)
    assert replica.sm.lease(lease_id) is None and not replica.sm.locks_of(A)
    replica.check(3.0)
    assert not replica.locks.releasing


def _notified(effects: list[Any]) -> list[Any]:
    return [e.message for e in effects if type(e) is Notify]


def test_a_watch_is_sent_a_window_of_batches_then_waits_for_acks_and_loses_nothing() -> None:
    replica = _leading()
    watcher = PID("w", 1, 1)
    for seq in range(1, 9):  # eight revisions before the watch
        replica.request("c", seq, PutRequest(b"k%d" % seq, b"v", _tag("c", seq)), 0.0)
        _drive(replica)
    start = replica.sm.revision - 7
    # Batches of whole revisions: BATCH_EVENTS is 1000, so force one revision per batch.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(watches_module, "BATCH_EVENTS", 1)
        replica.request("c", 100, WatchCreateRequest(b"k", watcher, b"l", start), 0.0)
        sent = _notified(_drive(replica))
        assert [m.revision for m in sent] == [start, start + 1, start + 2, start + 3]  # the window
        replica.watch_ack(watcher, WatchAck(1, start), 0.0)
        more = _notified(replica.take_effects())
        assert [m.revision for m in more] == [start + 4]
        for revision in range(start + 1, start + 8):
            replica.watch_ack(watcher, WatchAck(1, revision), 0.0)
        rest = _notified(replica.take_effects())
    got = [e.kv.key for m in sent + more + rest for e in m.events]
    assert got == [b"k%d" % i for i in range(1, 9)]
    replica.watcher_down(watcher)
    assert replica.watches.count() == 0


def test_a_watch_behind_the_compaction_is_cancelled_with_the_reason() -> None:
    replica = _leading()
    watcher = PID("w", 1, 1)
    replica.request("c", 1, PutRequest(b"k", b"1", _tag("c", 1)), 0.0)
    _drive(replica)
    first = replica.sm.revision
    replica.request("c", 2, PutRequest(b"k", b"2", _tag("c", 2)), 0.0)
    _drive(replica)
    replica.propose(Command(None, 0, 0, CompactHistory(replica.sm.revision)), None, None, None)
    _drive(replica)
    replica.request("c", 10, WatchCreateRequest(b"k", watcher, b"", first), 0.0)
    ((ok, error),) = _replies(_drive(replica)).values()
    assert not ok and type(error) is Compacted and error.compact_revision == replica.sm.revision


@pytest.mark.parametrize(("mode", "retention"), [("revision", 10.0), ("periodic", 1.0)])
def test_automatic_compaction_keeps_what_its_mode_says(mode: str, retention: float) -> None:
    raft = RaftNode.bootstrap("n0", ("n0",), RaftConfig(), random.Random(7))
    options = ReplicaOptions(auto_compaction_mode=mode, auto_compaction_retention=retention)
    replica = GlobalReplica(raft, StateMachine(MemoryStorage()), options, Host())
    for _ in range(100):
        replica.tick()
        _drive(replica)
    now = 0.0
    for seq in range(1, 41):
        now = seq * 0.1
        replica.request("c", seq, PutRequest(b"k", b"%d" % seq, _tag("c", seq)), now)
        _drive(replica, now)
        replica.check(now)
        _drive(replica, now)
    sm = replica.sm
    if mode == "revision":  # at most the last 10 revisions (and a tenth more) are kept
        assert sm.revision - 11 <= sm.compact_revision <= sm.revision - 10
    else:  # about a second of history: 10 writes at 10 a second
        assert sm.revision - 12 <= sm.compact_revision <= sm.revision - 9
    assert sm.compact_revision > 1
