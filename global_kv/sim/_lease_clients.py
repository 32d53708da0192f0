"""Simulated lease clients, and the lease rules the simulator checks as the run goes.

Each client grants a lease (a TTL of 20-120 ms on the replicas' clocks), puts its own key
with it, and keeps it alive every third of its TTL; now and then it revokes the lease, or
goes silent (as a dead client would) and lets it expire, then starts over. Some leases
are process-owned (`owner=` a PID of the client's own node), half of those with a TTL
far longer than the run: such a client ends its lease by dying, and only the leader's
monitor of the owner (LockReleaseOwner) can end it then. Requests go
to any live replica (followers forward them), with the client's session tag, as
`GlobalClient` sends them; a lost answer is retried with the same tag. Keep-alives race
expiries through the log, and leaders change under them.

The rules (a violation raises `RaftInvariantError`):

(a) no early expiry: a replica proposes `LeaseExpire(id, refreshed)` only once its own
    clock has run the lease's TTL since it first held that lease state (applied the grant
    or keep-alive, restored it from a snapshot, or replayed it after a restart), the
    deadline every replica arms (`global_kv.replica._leases`), whatever its clock's skew;
(b) the keys of a lease are exactly the keys that name it, on every replica, and every
    lease a key names exists (checked on every replica at the end of the run);
(c) no lease outlives its TTL by much once its client went silent: the leader proposes
    its expiry (checked in the drain, where a leader is stable);
(d) an owned lease ends once its owner died, and not while it lives: a replica proposes
    LockReleaseOwner only for an owner that is down (checked by the lock monitor's rule
    (d), with this workload's owners as ground truth), and the drain ends only when every
    dead owner's lease is gone on every replica.

The keys are "lease/<client>", apart from the linearizability workload's keys (an expiry
deletes a key with no client operation the KV history could show).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ergo_py.ids import PID

from .._errors import LeaseNotFound, NotLeader, RaftInvariantError, SessionExpired
from ..protocol import (
    KVPutRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutResponse,
    SessionTag,
)
from ..state import LeaseExpire

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["LeaseWorkload"]

TIMEOUT = 60  # ticks without an answer before a request is sent again (same tag)
LONG_TTL_MS = 3_600_000  # an owned lease that only its owner's death ends


class LeaseClient:
    __slots__ = (
        "client_id",
        "deadline",
        "incarnation",
        "lease_id",
        "next_at",
        "node",
        "owner",
        "ref",
        "request",
        "seq",
        "silent_since",
        "state",
        "ttl_ms",
        "workload",
    )

    def __init__(self, workload: LeaseWorkload, n: int) -> None:
        self.workload = workload
        self.client_id = f"lease{n}"
        self.seq = 0
        self.state = "none"  # none -> granted -> alive -> (silent | revoking) -> none
        self.lease_id = 0
        self.ttl_ms = 0
        self.request: Any = None
        self.ref = 0
        self.deadline = 0
        self.next_at = 0
        self.silent_since = 0
        self.node = f"leaseowner{n}@sim"
        self.incarnation = 1
        self.owner: PID | None = None  # the owner of the current lease, while it lives

    def on_reply(self, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        self.workload.on_reply(self, ref, ok, value)

    def forwarded_to(self, r: SimReplica, ref: int) -> None:
        pass


def _step(c: LeaseClient) -> int:
    """Ticks to the client's next step: a third of its TTL (of 120 ms at most, for a lease
    that only its owner's death ends)."""
    return max(1, min(c.ttl_ms, 120) // 3)


class LeaseWorkload:
    def __init__(self, sim: Simulation, rng: random.Random, clients: int) -> None:
        self.sim = sim
        self.rng = rng
        self.clients = [LeaseClient(self, i) for i in range(clients)]
        self.next_ref = 0
        self.grants = 0
        self.keepalives = 0
        self.revokes = 0
        self.expiries = 0
        self.owner_deaths = 0
        self.by_node = {c.node: c for c in self.clients}

    # -- driving ---------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.sim.now
        for c in self.clients:
            if c.request is not None:
                if now >= c.deadline:
                    self._send(c, c.request)  # no answer: again, with the same tag
                continue
            if not self.sim.chaos and c.state in ("granted", "alive"):
                # The drain: every lease ends (revoked), so the replicas' tables converge.
                c.state = "revoking"
                self._write(c, lambda tag, c=c: LeaseRevokeRequest(c.lease_id, tag))
            elif c.state == "none" and self.sim.chaos:
                c.ttl_ms = self.rng.randint(20, 120)
                c.owner = None
                if self.rng.random() < 0.4:
                    c.owner = PID(c.node, 1, c.incarnation)
                    if self.rng.random() < 0.5:
                        c.ttl_ms = LONG_TTL_MS
                self._write(c, lambda tag, c=c: LeaseGrantRequest(c.ttl_ms / 1000, 0, c.owner, tag))
            elif c.state == "granted":
                key = c.client_id.encode()
                self._write(c, lambda tag, c=c, key=key: KVPutRequest(b"lease/" + key, b"v", c.lease_id, session=tag))
            elif c.state == "alive" and now >= c.next_at:
                roll = self.rng.random()
                if c.owner is not None and roll < 0.25:
                    self._die(c)  # its lease must end with it, whatever its TTL
                elif roll < 0.85:
                    self._write(c, lambda tag, c=c: LeaseKeepAliveRequest(c.lease_id, tag))
                elif roll < 0.93:
                    c.state = "revoking"
                    self._write(c, lambda tag, c=c: LeaseRevokeRequest(c.lease_id, tag))
                elif c.owner is None:
                    c.state, c.silent_since = "silent", now  # as if it died: the lease must expire
            elif c.state in ("silent", "dead") and self._gone_everywhere(c.lease_id):
                c.state = "none"

    def _die(self, c: LeaseClient) -> None:
        self.sim.event(f"{c.client_id}: lease owner {c.owner} dies holding lease {c.lease_id}")
        c.state = "dead"
        self._end_owner(c)
        self.owner_deaths += 1

    @staticmethod
    def _end_owner(c: LeaseClient) -> None:
        """The owner of the client's lease is gone for good: a new PID owns its next lease."""
        if c.owner is not None:
            c.owner = None
            c.incarnation += 1

    # -- ground truth the replicas' monitors see ---------------------------------------------
    def owns(self, owner: PID) -> bool:
        return owner.node in self.by_node

    def alive(self, owner: PID) -> bool:
        c = self.by_node.get(owner.node)
        return c is not None and c.owner == owner

    def _write(self, c: LeaseClient, make: Any) -> None:
        c.seq += 1
        self._send(c, make(SessionTag(c.client_id, c.seq, c.seq)))

    def _send(self, c: LeaseClient, request: Any) -> None:
        live = self.sim.live_replicas()
        c.request = request
        c.deadline = self.sim.now + TIMEOUT
        if not live:
            return
        self.next_ref += 1
        c.ref = self.next_ref
        self.rng.choice(live).request(c, c.ref, request)

    def _gone_everywhere(self, lease_id: int) -> bool:
        sms = [r.sm for r in self.sim.live_replicas() if r.sm is not None]
        return bool(sms) and all(sm.lease(lease_id) is None for sm in sms)

    # -- answers -----------------------------------------------------------------------------
    def on_reply(self, c: LeaseClient, ref: int, ok: bool, value: Any) -> None:
        if ref != c.ref or c.request is None:
            return
        if not ok and isinstance(value, NotLeader):
            c.deadline = self.sim.now + self.rng.randint(1, 5)  # ask again soon (same tag)
            return
        c.request = None
        if not ok:
            if isinstance(value, SessionExpired):
                c.seq = 0
                c.client_id += "+"
            elif not isinstance(value, LeaseNotFound):
                raise RaftInvariantError(f"{c.client_id}: a lease request was answered with {value!r}")
            c.state = "none"  # the lease ended (expired while we were late, or revoked)
            self._end_owner(c)
            return
        if type(value) is LeaseGrantResponse:
            c.lease_id, c.state = value.lease_id, "granted"
            self.grants += 1
        elif type(value) is PutResponse:
            c.state, c.next_at = "alive", self.sim.now + _step(c)
        elif type(value) is LeaseRevokeResponse:
            c.state = "none"
            self.revokes += 1
            self._end_owner(c)
        else:  # a keep-alive
            c.next_at = self.sim.now + _step(c)
            self.keepalives += 1

    # -- the rules ---------------------------------------------------------------------------
    def on_expiry_proposed(self, r: SimReplica, op: Any) -> None:
        """(a): the proposing replica's clock has run the TTL since it held that state."""
        if type(op) is not LeaseExpire:
            return
        seen = r.lease_since.get((op.lease_id, op.refreshed_index))
        if seen is None:
            raise RaftInvariantError(
                f"{r.id} proposed the expiry of lease {op.lease_id} at refresh {op.refreshed_index}, "
                "a lease state it never held"
            )
        since, ttl_ms = seen
        elapsed = (self.sim.now - since) * r.rate  # ms on its own clock
        if elapsed + 1e-9 < ttl_ms:
            raise RaftInvariantError(
                f"{r.id} proposed the expiry of lease {op.lease_id} after {elapsed:.1f} ms on its clock, "
                f"before its TTL of {ttl_ms} ms (rule a: no early expiry)"
            )
        self.expiries += 1

    def check_tables(self) -> None:
        """(b) on every live replica."""
        for r in self.sim.live_replicas():
            sm = r.sm
            if sm is None:
                continue
            leases = {lease.id for lease in sm.leases()}
            named: dict[int, list[bytes]] = {}
            for kv in sm.range_kv(b"lease/", b"lease0").kvs:
                if kv.lease:
                    if kv.lease not in leases:
                        raise RaftInvariantError(f"{r.id}: key {kv.key!r} names lease {kv.lease}, which does not exist")
                    named.setdefault(kv.lease, []).append(kv.key)
            for lease_id in leases:
                if sm.lease_keys(lease_id) != sorted(named.get(lease_id, [])):
                    raise RaftInvariantError(f"{r.id}: lease {lease_id} lists keys {sm.lease_keys(lease_id)!r}")

    def settled(self) -> bool:
        """(c), in the drain: every lease ended, a silent client's by its expiry."""
        return all(c.request is None and c.state == "none" for c in self.clients)

    def pending(self) -> list[tuple[str, str, int]]:
        return [(c.client_id, c.state, c.lease_id) for c in self.clients if c.state != "none" or c.request]
