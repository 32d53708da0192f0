"""The messages Raft replicas exchange: frozen values of plain fields.

Every message carries `term`, `src` and `dst` so the core can apply Raft's term rules
(Figure 2, "Rules for Servers") in one place before any handler runs. Fields are only
int, str, bytes, bool and tuples of `Entry` or str, so a wire codec can register each
class as it is (this module must never import a codec, ergo_py, or anything doing I/O).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._log_types import Entry

__all__ = [
    "MESSAGE_TYPES",
    "AppendEntries",
    "AppendEntriesResponse",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "Message",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "RequestVote",
    "RequestVoteResponse",
    "TimeoutNow",
]


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term), plus the leader's commit.

    An empty `entries` is a probe (does the follower hold prev?) or carries a new commit.
    """

    term: int
    src: str
    dst: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """Follower -> leader, sent only after the follower persisted what it appended.

    Accept: `index` is the last index the follower now shares with the leader.
    Reject: `index` echoes the rejected prev_index, and (`hint_index`, `hint_term`) is
    the follower's last entry with term <= the leader's prev_term, so the leader can skip
    a whole term of mismatching entries per round trip (fast backtracking).
    """

    term: int
    src: str
    dst: str
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> follower keep-alive. `commit` is min(follower match, leader commit).

    `read_seq` numbers the heartbeat round: a quorum echoing it confirms that the
    leader was still the leader when the round started (ReadIndex, lease). Round 0 is
    a commit notification the follower does not answer. `quiesce` (with round 0) is the
    last heartbeat of an idle leader: a follower holding the whole log stops its
    election timer until the next input (`RaftConfig.quiesce`).
    """

    term: int
    src: str
    dst: str
    commit: int
    read_seq: int
    quiesce: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    """Follower -> leader: echoes the round number of the heartbeat it answers."""

    term: int
    src: str
    dst: str
    read_seq: int


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate -> voter. `pre_vote` asks without raising anyone's term (PreVote, §9.6).

    `transfer` marks a campaign started by TimeoutNow: voters then skip the
    CheckQuorum lease (the current leader asked for this election itself).
    """

    term: int
    src: str
    dst: str
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    """Voter -> candidate. A granted pre-vote echoes the proposed term, not the voter's."""

    term: int
    src: str
    dst: str
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower: one chunk of the snapshot covering the log up to `index`.

    Chunks are sent in order; `offset` is the position of `data` in the whole snapshot
    and `done` marks the last chunk. The membership as of `index` rides along.
    """

    term: int
    src: str
    dst: str
    index: int
    snapshot_term: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """Follower -> leader: `offset` is how many bytes of snapshot `index` it holds so far."""

    term: int
    src: str
    dst: str
    index: int
    offset: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> chosen successor: start an election now (leadership transfer, §3.10)."""

    term: int
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Follower -> leader: please confirm leadership and tell me a safe read index."""

    term: int
    src: str
    dst: str
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """Leader -> follower: a read issued at `context` is linearizable once applied >= index."""

    term: int
    src: str
    dst: str
    context: bytes
    index: int


Message = (
    AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | RequestVote
    | RequestVoteResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)

#: Every message class, for a wire codec to register (and a test to check it is complete).
MESSAGE_TYPES: tuple[type, ...] = (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    RequestVote,
    RequestVoteResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
)
