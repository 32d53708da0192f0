"""The Raft messages' wire forms: every message round-trips, and a malformed
AppendEntries (its compact form is decoded by our own code) is a DecodeError."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from ergo_py.net import DecodeError, decode, encode
from ergo_py.net._codec import TAG_OBJECT
from global_kv.leader import RaftEnvelope
from global_kv.raft import AppendEntries, AppendEntriesResponse, Entry, EntryType, Heartbeat

ENTRIES = (
    Entry(7, 2, EntryType.NORMAL, b"put"),
    Entry(8, 2, EntryType.NOOP, b""),
    Entry(9, 3, EntryType.CONF_CHANGE, b"\x00conf"),
)


@pytest.mark.parametrize(
    "message",
    [
        AppendEntries(3, "global@a@h", "global@b@h", 6, 2, ENTRIES, 8),
        AppendEntries(3, "global@a@h", "global@b@h", 6, 2, (), 0),
        AppendEntriesResponse(3, "global@b@h", "global@a@h", 9, True, 4, 1),
        Heartbeat(3, "global@a@h", "global@b@h", 8, 12),
    ],
)
def test_raft_messages_round_trip_in_an_envelope(message: Any) -> None:
    back = decode(encode(RaftEnvelope("c1", message)))
    assert back == RaftEnvelope("c1", message)
    if isinstance(message, AppendEntries):
        assert type(back.message.entries) is tuple
        assert [type(e.type) for e in back.message.entries] == [EntryType] * len(message.entries)


def _append(*fields: Any) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["global_kv.raft.AppendEntries", *fields]))


@pytest.mark.parametrize(
    "data",
    [
        _append(3, "a", "b", 6, 2, [7, 2, 0, b"x"]),  # a field missing
        _append(3, "a", "b", 6, 2, [7, 2, 0], 8),  # not quadruples
        _append(3, "a", "b", 6, 2, [7, 2, 9, b"x"], 8),  # unknown entry type
        _append(3, "a", "b", 6, 2, [7, 2, 0, "text"], 8),  # data not bytes
        _append(3, "a", "b", 6, 2, [0, 2, 0, b"x"], 8),  # index 0
        _append(-1, "a", "b", 6, 2, [], 8),  # negative term
        _append(3, 5, "b", 6, 2, [], 8),  # src not a string
        _append(3, "a", "b", 6, 2, "entries", 8),
    ],
)
def test_malformed_append_entries_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.type_name == "global_kv.raft.AppendEntries"
