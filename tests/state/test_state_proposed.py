"""`StateMachine.proposed`: the proposer applies its own commands without decoding them
again, and ends in the state of a replica that decoded every entry."""

from __future__ import annotations

from typing import Any

import pytest

import global_kv.state._machine as machine_module
from global_kv.raft import Entry, EntryType
from global_kv.state import (
    Command,
    Compare,
    DeleteRange,
    KVPut,
    LeaseGrant,
    LockAcquire,
    RangeOptions,
    StateMachine,
    Txn,
    TxnRange,
    encode_command,
)
from global_kv.storage import StorageEngine, open_engine
from tests.state.state_support import A, v


def _commands() -> list[Command]:
    first = TxnRange(b"lock/", b"lock0", 0, 1, RangeOptions("ascend", "create", True))
    out = [Command("c", 1, 0, LeaseGrant(7, 60_000)), Command(None, 0, 0, LockAcquire(b"job", A, 5_000))]
    seq = 2
    for i in range(20):
        key = b"lock/%x" % i
        campaign = Txn(
            (Compare(key, "create", "=", 0),), (KVPut(key, v(b"x"), 7), TxnRange(key), first), (TxnRange(key),)
        )
        out += [Command("c", seq, seq - 1, campaign), Command("c", seq + 1, seq, DeleteRange(key, prev_kv=True))]
        seq += 2
    return out


def _entries(commands: list[Command]) -> list[Entry]:
    return [Entry(i + 1, 1, EntryType.NORMAL, encode_command(c)) for i, c in enumerate(commands)]


def _decoding_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> Any:
        raise AssertionError("decoded an entry its proposer had given")

    monkeypatch.setattr(machine_module, "_decode_command", refuse)


def test_the_proposer_applies_its_own_commands_undecoded_into_the_same_state(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _commands()
    entries = _entries(commands)
    follower: StorageEngine = open_engine("memory")
    decoded = StateMachine(follower)
    expected = decoded.apply(entries)
    proposer = StateMachine(open_engine("memory"))
    for entry, command in zip(entries, commands, strict=True):
        proposer.proposed(entry.data, command)
    _decoding_refused(monkeypatch)
    assert proposer.apply(entries) == expected
    assert proposer.state_digest(sessions=True) == decoded.state_digest(sessions=True)


def test_an_entry_it_did_not_propose_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _commands()[:3]
    entries = _entries(commands)
    sm = StateMachine(open_engine("memory"))
    sm.proposed(entries[0].data, commands[0])
    sm.proposed(encode_command(Command("other", 1, 0, KVPut(b"k", v(b"y")))), commands[1])  # other bytes
    _decoding_refused(monkeypatch)
    assert len(sm.apply(entries[:1])) == 1
    with pytest.raises(AssertionError, match="decoded"):
        sm.apply(entries[1:2])


def test_commands_never_applied_are_dropped_past_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_module, "_MAX_PROPOSED_BYTES", 1_000)
    commands = _commands()
    entries = _entries(commands)
    sm = StateMachine(open_engine("memory"))
    for entry, command in zip(entries, commands, strict=True):
        sm.proposed(entry.data, command)  # (more than 1,000 bytes of entry data)
    _decoding_refused(monkeypatch)
    with pytest.raises(AssertionError, match="decoded"):
        sm.apply(entries[:1])  # the first was dropped: it is decoded
