"""Leases in the state machine: grant, keys put with a lease, keep-alive, revoke, expiry
that loses to a keep-alive, process-owned leases ended with their owner, and the table
surviving a restart and a snapshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from global_kv.state import (
    Delete,
    KeyValue,
    KVPut,
    Lease,
    LeaseExistsResult,
    LeaseExpire,
    LeaseGrant,
    LeaseGrantedResult,
    LeaseNotFoundResult,
    LeaseRefresh,
    LeaseRevoke,
    LeaseRevokedResult,
    LockAcquire,
    LockReleaseOwner,
    StateMachine,
    Txn,
    TxnRefusedResult,
)
from global_kv.storage import MemoryStorage, StorageEngine
from tests.state.state_support import A, B, Log, v


def _apply(sm: StateMachine, log: Log, op: object) -> object:
    (applied,) = sm.apply([log.cmd(op)])
    return applied.result


def test_a_lease_carries_its_keys_and_revoking_it_deletes_them_in_one_revision() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    granted = _apply(sm, log, LeaseGrant(0, 5000))
    assert granted == LeaseGrantedResult(1, 5000)  # the id: the granting entry's index
    assert sm.lease(1) == Lease(1, 5000, 1, 1)
    _apply(sm, log, KVPut(b"svc/a", v(b"1"), lease=1))
    _apply(sm, log, KVPut(b"svc/b", v(b"2"), lease=1))
    _apply(sm, log, KVPut(b"other", v(b"3")))
    assert sm.get_kv(b"svc/a") == KeyValue(b"svc/a", 2, 2, 1, b"1", 1)
    assert sm.lease_keys(1) == [b"svc/a", b"svc/b"]
    before = sm.revision
    assert _apply(sm, log, LeaseRevoke(1)) == LeaseRevokedResult(1, before + 1, 2)
    assert sm.revision == before + 1 and sm.lease(1) is None
    assert sm.get(b"svc/a") is None and sm.get(b"svc/b") is None and sm.get(b"other") is not None
    assert sm.get_kv(b"svc/a", before) is not None  # the history keeps it
    assert _apply(sm, log, LeaseRevoke(1)) == LeaseNotFoundResult(1)
    assert _apply(sm, log, KVPut(b"late", v(b"x"), lease=1)) == LeaseNotFoundResult(1)
    assert sm.get(b"late") is None


def test_a_key_moves_between_leases_and_leaves_one_when_deleted_or_put_without() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    _apply(sm, log, LeaseGrant(10, 1000))
    _apply(sm, log, LeaseGrant(20, 1000))
    _apply(sm, log, KVPut(b"k", v(b"1"), lease=10))
    _apply(sm, log, KVPut(b"k", v(b"2"), lease=20))
    _apply(sm, log, KVPut(b"j", v(b"1"), lease=10))
    _apply(sm, log, KVPut(b"j", v(b"2")))  # lease 0: detached
    _apply(sm, log, KVPut(b"i", v(b"1"), lease=10))
    _apply(sm, log, Delete(b"i"))
    assert sm.lease_keys(10) == [] and sm.lease_keys(20) == [b"k"]
    assert _apply(sm, log, LeaseRevoke(10)) == LeaseRevokedResult(10, sm.revision, 0)
    assert sm.get(b"k") is not None and sm.get(b"j") is not None
    _apply(sm, log, KVPut(b"k", b"", lease=0, ignore_value=True, ignore_lease=True))  # keeps lease 20
    assert sm.lease_keys(20) == [b"k"]


def test_an_expiry_loses_to_a_keep_alive_applied_before_it() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    _apply(sm, log, LeaseGrant(0, 1000))
    _apply(sm, log, KVPut(b"k", v(b"1"), lease=1))
    assert _apply(sm, log, LeaseRefresh(1)) == LeaseGrantedResult(1, 1000)
    assert sm.lease(1).refreshed_index == 3  # type: ignore[union-attr]
    # The leader's timer was armed from the grant (index 1): the keep-alive wins.
    assert _apply(sm, log, LeaseExpire(1, 1)) == LeaseGrantedResult(1, 1000)
    assert sm.get(b"k") is not None
    revoked = _apply(sm, log, LeaseExpire(1, 3))
    assert type(revoked) is LeaseRevokedResult and revoked.deleted == 1 and sm.get(b"k") is None
    assert _apply(sm, log, LeaseRefresh(1)) == LeaseNotFoundResult(1)


def test_ids_chosen_by_clients_are_kept_and_never_given_twice() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    assert _apply(sm, log, LeaseGrant(2, 1000)) == LeaseGrantedResult(2, 1000)
    assert _apply(sm, log, LeaseGrant(2, 1000)) == LeaseExistsResult(2)
    # Entry 3 would take id 3; entry 2 chose 2 and is not in its way, but a chosen id
    # equal to a later index is: the later grant takes the next free id.
    assert _apply(sm, log, LeaseGrant(4, 1000)) == LeaseGrantedResult(4, 1000)
    assert _apply(sm, log, LeaseGrant(0, 1000)) == LeaseGrantedResult(5, 1000)


def test_an_owners_death_revokes_its_leases_and_releases_its_locks_together() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    _apply(sm, log, LeaseGrant(0, 60_000, A))
    _apply(sm, log, LeaseGrant(0, 60_000, B))
    _apply(sm, log, KVPut(b"presence/a", v(b"up"), lease=1))
    _apply(sm, log, KVPut(b"presence/b", v(b"up"), lease=2))
    _apply(sm, log, LockAcquire(b"job", A))
    assert sm.owners() == sorted([A, B]) and [lease.id for lease in sm.leases_of(A)] == [1]
    _apply(sm, log, LockReleaseOwner(A))
    assert sm.get(b"presence/a") is None and sm.lease(1) is None and sm.lock(b"job") is None
    assert sm.get(b"presence/b") is not None and sm.owners() == [B]


def test_a_txn_put_with_a_missing_lease_is_refused_whole() -> None:
    sm, log = StateMachine(MemoryStorage()), Log()
    result = _apply(sm, log, Txn((), (KVPut(b"a", v(b"1")), KVPut(b"b", v(b"1"), lease=9))))
    assert result == LeaseNotFoundResult(9) and sm.get(b"a") is None
    assert not isinstance(result, TxnRefusedResult)


@pytest.mark.parametrize("how", ["restart", "snapshot"])
def test_leases_and_their_keys_survive_a_restart_and_a_snapshot(
    engines: Callable[..., StorageEngine], tmp_path: Path, how: str
) -> None:
    engine = engines("leveldb", tmp_path / "db")
    sm, log = StateMachine(engine), Log()
    _apply(sm, log, LeaseGrant(0, 5000, A))
    _apply(sm, log, KVPut(b"k", v(b"1"), lease=1))
    _apply(sm, log, LeaseRefresh(1))
    if how == "restart":
        again = StateMachine(engine)
    else:
        again = StateMachine(engines("memory"))
        with sm.snapshot_chunks() as stream:
            again.restore_chunks(stream, stream.last_index)
    assert again.lease(1) == Lease(1, 5000, 1, 3, A) and again.lease_keys(1) == [b"k"]
    assert again.state_digest() == sm.state_digest()
    (revoked,) = again.apply([log.cmd(LockReleaseOwner(A))])
    assert again.get(b"k") is None and again.lease(1) is None
