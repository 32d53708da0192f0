"""Configuration, membership changes, messages and progress bookkeeping."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from global_kv._errors import ConfChangeRejected, RaftConfigError, RaftInvariantError
from global_kv.raft import (
    MESSAGE_TYPES,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    RaftConfig,
    _messages,
    apply_conf_change,
    decode_conf_entry,
    encode_conf_entry,
)
from global_kv.raft._progress import Progress, ProgressState


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"heartbeat_tick": 0}, "heartbeat_tick"),
        ({"heartbeat_tick": 15}, "greater than heartbeat_tick"),
        ({"election_tick_max": 15}, "election_tick_max"),
        ({"max_inflight_msgs": 0}, "max_inflight_msgs"),
        ({"max_entries_per_msg": 0}, "max_entries_per_msg"),
        ({"snapshot_chunk_size": 0}, "snapshot_chunk_size"),
        ({"lease_reads": True, "check_quorum": False}, "requires check_quorum"),
        ({"lease_margin_ticks": 15}, "lease_margin_ticks"),
    ],
)
def test_config_rejects_out_of_range_values(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(RaftConfigError, match=fragment):
        RaftConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults_match_the_shell_plan() -> None:
    cfg = RaftConfig()
    assert (
        cfg.max_entries_per_msg,
        cfg.max_inflight_msgs,
        cfg.pre_vote,
        cfg.check_quorum,
    ) == (100, 10, True, True)
    assert isinstance(RaftConfigError("x"), ValueError)


V = ConfChangeType


@pytest.mark.parametrize(
    ("conf", "change", "expected"),
    [
        (("a", "b"), (V.ADD_VOTER, "c"), (("a", "b", "c"), ())),
        (("a", "b"), (V.ADD_LEARNER, "c"), (("a", "b"), ("c",))),
        ((("a", "b"), ("c",)), (V.ADD_VOTER, "c"), (("a", "b", "c"), ())),
        (("a", "b", "c"), (V.REMOVE_NODE, "b"), (("a", "c"), ())),
        ((("a",), ("c",)), (V.REMOVE_NODE, "c"), (("a",), ())),
    ],
)
def test_apply_conf_change(conf: object, change: tuple[ConfChangeType, str], expected: tuple) -> None:
    voters, learners = conf if isinstance(conf[0], tuple) else (conf, ())  # type: ignore[index]
    out = apply_conf_change(ConfState(voters, learners), ConfChange(*change))
    assert (out.voters, out.learners) == expected


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ((V.ADD_VOTER, "a"), "already a voter"),
        ((V.ADD_LEARNER, "a"), "demoting"),
        ((V.ADD_LEARNER, "l"), "already a learner"),
        ((V.REMOVE_NODE, "zz"), "not a member"),
        ((V.ADD_VOTER, ""), "non-empty"),
    ],
)
def test_invalid_conf_changes_are_rejected(change: tuple[ConfChangeType, str], fragment: str) -> None:
    with pytest.raises(ConfChangeRejected, match=fragment) as info:
        apply_conf_change(ConfState(("a", "b"), ("l",)), ConfChange(*change))
    assert info.value.change == ConfChange(*change)


def test_cannot_remove_the_last_voter() -> None:
    with pytest.raises(ConfChangeRejected, match="last voter"):
        apply_conf_change(ConfState(("a",)), ConfChange(V.REMOVE_NODE, "a"))


def test_conf_entry_round_trip_is_canonical() -> None:
    change = ConfChange(V.ADD_VOTER, "n@host")
    conf = ConfState(("a", "n@host"), ("l",))
    data = encode_conf_entry(change, conf)
    assert data == encode_conf_entry(change, conf)
    assert decode_conf_entry(data) == (change, conf)
    assert decode_conf_entry(encode_conf_entry(None, conf)) == (None, conf)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"v": 2}', b'{"v":1,"op":9,"node":"a","voters":[],"learners":[]}'],
)
def test_undecodable_conf_entry_raises(data: bytes) -> None:
    with pytest.raises(RaftInvariantError, match="undecodable"):
        decode_conf_entry(data)


_PLAIN = {int, str, bytes, bool, tuple[Entry, ...], tuple[str, ...]}


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_messages_are_frozen_slotted_values_of_plain_fields(cls: type) -> None:
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in cls.__dict__
    hints = typing.get_type_hints(cls, vars(_messages))
    assert [f.name for f in dataclasses.fields(cls)][:3] == ["term", "src", "dst"]
    for name, hint in hints.items():
        assert hint in _PLAIN, f"{cls.__name__}.{name}: {hint}"


def test_every_message_type_is_listed() -> None:
    names = set(typing.get_args(_messages.Message))
    assert names == set(MESSAGE_TYPES)


def test_progress_ignores_stale_rejections() -> None:
    pr = Progress(next_index=11, max_inflight=2, is_learner=False)
    assert pr.state is ProgressState.PROBE
    assert not pr.maybe_decr_to(5, 0)  # not the probe we sent (next - 1 == 10)
    assert pr.maybe_decr_to(10, 6) and pr.next == 7  # the hint lets us skip 3 entries
    pr.maybe_update(6)
    pr.become_replicate()
    assert pr.next == 7
    assert not pr.maybe_decr_to(6, 0)  # a rejection at or below match is stale
    pr.sent_entries(8)
    pr.sent_entries(9)
    assert pr.inflight_full() and pr.is_paused()
    pr.free_le(8)
    assert not pr.inflight_full()
    assert pr.maybe_decr_to(9, 0) and pr.next == 7
