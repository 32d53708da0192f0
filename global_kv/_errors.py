"""The exceptions of global_kv: one root, named outcomes that carry their data.

Every layer raises from here so that a caller can catch `GlobalKVError` and know
it came from us; foreign errors (plyvel, lmdb, OSError, cbor2) are mapped at the
boundary and chained with `from exc`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Compacted",
    "FutureRevision",
    "GlobalKVError",
    "KeyNotFound",
    "LeaseExists",
    "LeaseNotFound",
    "NotLeader",
    "RaftInvariantError",
    "LogLost",
    "DataDirMismatch",
    "StorageError",
    "StorageCorrupted",
    "StorageFull",
    "LeadershipTransferInProgress",
    "ConfChangeRejected",
    "TransferRejected",
    "CompactionRejected",
    "RaftConfigError",
    "SimulationFailure",
    "CASFailed",
    "LockHeld",
    "LockNotHeld",
    "StaleToken",
    "SessionExpired",
    "MalformedCommand",
    "InvalidRequest",
    "RequestTooLarge",
    "RequestFailed",
]


class GlobalKVError(Exception):
    """Root of every error global_kv raises."""


class NotLeader(GlobalKVError):
    """This replica is not the leader; `leader_hint` names the one it believes is (or None)."""

    def __init__(self, leader_hint: Any = None, message: str | None = None) -> None:
        self.leader_hint = leader_hint
        super().__init__(
            message
            or (
                f"not the leader; try {leader_hint!r}"
                if leader_hint is not None
                else "not the leader, and no leader is known yet; retry shortly"
            )
        )


class RaftInvariantError(GlobalKVError):
    """A Raft safety invariant broke. Never caught and ignored: the replica must stop."""


class LogLost(RaftInvariantError):
    """This replica's log lost entries it had acknowledged to `leader` (an emptied or replaced
    data dir, or in-memory storage restarted under the old name).

    Raft counted those entries on it, and its term and vote are gone with them, so it cannot
    take part under its old identity again (etcd refuses the same way): remove it from the
    cluster, wipe its data, start it as a new member and add it again.
    """

    def __init__(self, replica: str, leader: str, commit: int, last_index: int) -> None:
        self.replica = replica
        self.leader = leader
        self.commit = commit
        self.last_index = last_index
        node = replica.partition("@")[2] or replica
        super().__init__(
            f"{replica} lost its Raft log: leader {leader} counts entries up to {commit} as held "
            f"here, but the log ends at {last_index} (an emptied or replaced data dir). It cannot "
            f"rejoin under its old identity: run `global-kv ctl remove-peer {node}`, wipe its DATA_DIR, "
            "start it as a non-member (out of its own BOOTSTRAP; the members reach it at the address in "
            "their BOOTSTRAP or ROUTES), "
            f"then `global-kv ctl add-peer {node}`"
        )


class DataDirMismatch(GlobalKVError):
    """The data dir was written by another replica: another cluster id, node or replica name.

    Starting on it would mix two replicas' histories (or two clusters'), so the replica
    refuses to start; `found` and `expected` are (cluster_id, node, replica) triples.
    """

    def __init__(self, path: str, found: tuple[str, str, str], expected: tuple[str, str, str]) -> None:
        self.path = path
        self.found = found
        self.expected = expected
        fc, fn, fr = found
        ec, en, er = expected
        what = f"node {fn}" if fr == er else f"replica {fr!r} of node {fn}"
        this = f"node {en}" if fr == er else f"replica {er!r} of node {en}"
        super().__init__(
            f"data dir {path} belongs to {what} of cluster {fc!r}, but this is {this} of cluster "
            f"{ec!r}: start it with CLUSTER_ID={fc} and NODE_NAME={fn}, or give it a DATA_DIR of its own"
        )


class StorageError(GlobalKVError):
    """A storage operation failed (I/O error, full disk, closed engine). Nothing acknowledged is lost."""


class StorageCorrupted(StorageError):
    """A persisted record failed its checksum or is inconsistent; the replica must not start."""

    def __init__(self, path: str, index: int | None, detail: str) -> None:
        self.path = path
        self.index = index
        self.detail = detail
        where = f"{path}" + (f" at index {index}" if index is not None else "")
        super().__init__(
            f"storage corrupted in {where}: {detail}. The node will not start from this data; "
            "restore the data directory from a healthy replica or remove it to rejoin empty"
        )


class StorageFull(StorageError):
    """The disk (or the engine's map) is full: the write failed and changed nothing.

    Everything written before stays durable; free space (or compact) and retry.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"no space left for {path}: {detail}. The write was not applied and nothing "
            "acknowledged is lost; free disk space or compact, then retry"
        )


# --- Raft core outcomes (global_kv.raft) -------------------------------------------


class LeadershipTransferInProgress(NotLeader):
    """The leader is handing leadership to `leader_hint`; proposals are refused meanwhile.

    A subclass of `NotLeader` so a caller that retries on the hinted leader needs no
    special case: the transfer either completes within an election timeout (the hint is
    the new leader) or is abandoned and this node accepts proposals again.
    """

    def __init__(self, leader_hint: Any) -> None:
        super().__init__(
            leader_hint,
            f"leadership is being transferred to {leader_hint!r}; retry there shortly",
        )


class ConfChangeRejected(GlobalKVError):
    """A membership change was refused before anything was proposed; `reason` says why."""

    def __init__(self, change: Any, reason: str) -> None:
        self.change = change
        self.reason = reason
        super().__init__(f"configuration change {change!r} rejected: {reason}")


class TransferRejected(GlobalKVError):
    """A leadership transfer to `peer` cannot start; `reason` says why."""

    def __init__(self, peer: Any, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"cannot transfer leadership to {peer!r}: {reason}")


class CompactionRejected(GlobalKVError):
    """`compact(index, ...)` was refused (already compacted, or beyond what was applied)."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"cannot compact the raft log at index {index}: {reason}")


class RaftConfigError(GlobalKVError, ValueError):
    """A `RaftConfig` value is out of range; the message names the field and the bound."""


class SimulationFailure(GlobalKVError):
    """The Raft simulator found a safety, liveness or linearizability violation.

    Carries the seed and a one-line command that replays the run deterministically.
    """

    def __init__(self, seed: int, tick: int, kind: str, detail: str, replay: str) -> None:
        self.seed = seed
        self.tick = tick
        self.kind = kind
        self.detail = detail
        self.replay = replay
        super().__init__(f"seed {seed}, tick {tick}: {kind} violation: {detail}\n  replay: {replay}")


# --- State machine outcomes (global_kv.state) --------------------------------------


class CASFailed(GlobalKVError):
    """A compare-and-swap found another value; `current` is the (decoded) value it found."""

    def __init__(self, key: bytes, current: bytes | None) -> None:
        self.key = key
        self.current = current
        found = "the key is absent" if current is None else f"it holds {len(current)} other bytes"
        super().__init__(
            f"compare-and-swap on {key!r} failed: {found}. Nothing was written; "
            "retry with the current value as the expected one if your update still applies"
        )


class LockHeld(GlobalKVError):
    """The lock is held by `holder` with fencing token `token`."""

    def __init__(self, key: bytes, holder: Any, token: int) -> None:
        self.key = key
        self.holder = holder
        self.token = token
        super().__init__(
            f"lock {key!r} is held by {holder!r} (token {token}); wait for it (lock with a timeout) or try again later"
        )


class LockNotHeld(GlobalKVError):
    """Nobody holds the lock (it was released, expired, or its owner died)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        super().__init__(
            f"lock {key!r} is not held (released, expired, or its owner died); "
            "stop using the resource it protects and acquire the lock again"
        )


class StaleToken(GlobalKVError):
    """The token given is not the one holding the lock now (`current_token` is)."""

    def __init__(self, key: bytes, token: int, current_token: int) -> None:
        self.key = key
        self.token = token
        self.current_token = current_token
        name = key.decode("utf-8", "backslashreplace")
        if token > current_token:
            # Tokens only grow, so a higher one was never a grant of this lock's: a typo, or a
            # token of another key. Nothing was changed.
            message = (
                f"token {token} is not the holder's token for lock {name!r} (it is held with token "
                f"{current_token}); check the token you were given"
            )
        else:
            message = (
                f"token {token} of lock {name!r} is stale: the lock is now held with token "
                f"{current_token}. Your hold has ended; stop using the resource and acquire again"
            )
        super().__init__(message)


class Compacted(GlobalKVError):
    """A read at a revision whose history was compacted away (etcd's ErrCompacted)."""

    def __init__(self, compact_revision: int) -> None:
        self.compact_revision = compact_revision
        super().__init__(
            f"the required revision has been compacted: history at or below {compact_revision} is gone; "
            f"read at a revision above {compact_revision}, or at the current one (revision 0)"
        )


class KeyNotFound(GlobalKVError):
    """A put that keeps the current value (`ignore_value`) of a key that does not exist."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        super().__init__(
            f"key not found: {key.decode('utf-8', 'backslashreplace')!r} (a put with ignore_value needs it)"
        )


class LeaseNotFound(GlobalKVError):
    """No lease has this id (never granted, revoked, or expired): etcd's "requested lease
    not found". Keys put with it were not written."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"requested lease not found: {lease_id} (revoked, expired, or never granted)")


class LeaseExists(GlobalKVError):
    """A grant asked for an id a live lease already has (etcd's "lease already exists")."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease already exists: {lease_id}; ask for another id, or 0 for one chosen for you")


class FutureRevision(GlobalKVError):
    """A read at a revision the store has not reached (etcd's ErrFutureRev)."""

    def __init__(self, revision: int, current_revision: int) -> None:
        self.revision = revision
        self.current_revision = current_revision
        super().__init__(
            f"revision {revision} is a future revision: this member is at {current_revision} "
            "(0 reads the current revision)"
        )


class SessionExpired(GlobalKVError):
    """The client's session was dropped, so request `seq` cannot be deduplicated.

    Whether the request took effect is unknown; the session cannot continue.
    """

    def __init__(self, client_id: str, seq: int) -> None:
        self.client_id = client_id
        self.seq = seq
        super().__init__(
            f"the session of client {client_id!r} expired or was closed, so request {seq} "
            "cannot be answered exactly once; its effect is unknown: read the state to find "
            "out, and continue with a new client id"
        )


class MalformedCommand(RaftInvariantError):
    """A committed entry does not hold a valid state-machine command.

    That means corruption or a proposer bug; applying anything from it would make
    replicas diverge, so the replica stops instead.
    """

    def __init__(self, detail: str, index: int | None = None) -> None:
        self.detail = detail
        self.index = index
        where = f"log entry {index}" if index is not None else "command data"
        super().__init__(
            f"malformed state-machine command in {where}: {detail}. Nothing from it was "
            "applied; this is a proposer bug or corrupted data, so the replica must stop"
        )


class Unavailable(GlobalKVError):
    """No member answered with a result within the client's timeout (no quorum, or no leader yet).

    For a write the outcome is unknown: it may still be applied (exactly once). Retry later,
    or check that a majority of the cluster's nodes are up and reachable.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"cluster unavailable: {detail}")


class LockTimeout(GlobalKVError):
    """The lock stayed held by others for the whole wait; nothing was acquired."""

    def __init__(self, key: bytes, timeout: float) -> None:
        self.key = key
        self.timeout = timeout
        super().__init__(f"lock {key!r} was not acquired within {timeout} s; it is held by another owner")


class TooManyWaiters(GlobalKVError):
    """The wait queue of the lock is full (`max_lock_waiters`); the request was not queued."""

    def __init__(self, key: bytes, limit: int) -> None:
        self.key = key
        self.limit = limit
        super().__init__(f"lock {key!r} already has {limit} waiters (max_lock_waiters); retry later or raise the limit")


class InvalidRequest(GlobalKVError, ValueError):
    """A client request was refused before anything was proposed or read: `field` names the
    part that is wrong (e.g. "key", "limit", "value") and `reason` says why and what is allowed.
    Nothing was changed; the same request will be refused again, so retrying is pointless."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid request: {field}: {reason}")


class RequestTooLarge(InvalidRequest):
    """A request, or the reply it asks for, is over a configured size limit (etcd's "request
    is too large"): nothing was proposed or sent. Split it, or ask for less (a `limit`)."""

    @property
    def about_the_reply(self) -> bool:
        """What is too large is the answer asked for (a range, a txn's ranges, prev_kvs),
        not the request itself."""
        return self.field in _REPLY_FIELDS


_REPLY_FIELDS = frozenset(("limit", "range", "reply", "prev_kv"))


class RequestFailed(GlobalKVError):
    """Serving one request raised an unexpected error inside the replica. The replica answered
    this request with it and kept serving; `detail` names the error (a bug worth reporting)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the request failed inside the replica (it keeps serving): {detail}")
