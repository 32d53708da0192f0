"""Simulated watch clients, checked against the committed history.

Each client watches the KV workload's keys k0 and k1 (the pair its transactions write
together) from the start or from revision 1, at a random live replica: the production
`WatchService` of that replica sends it batches (`Notify` effects, delivered in order at
once, as one process's messages to another are), and the client acknowledges each one
at its next tick. When the member serving it crashes, restarts or is removed, the client
creates the watch again at another live replica, starting right after the last revision
it delivered, as `GlobalClient.watch` does.

The rules (a violation raises `RaftInvariantError`):

(a) within the stream, revisions never go back and a revision's events are never split
    between two batches (a transaction's events arrive together);
(b) at the end of the run, the events the client delivered are exactly the committed
    changes of its range after its start, in order: no gap and no duplicate, across every
    crash and resume (compared with the leader's history, read back from its engine).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ergo_py.ids import PID

from .._errors import RaftInvariantError
from ..protocol import WatchAck, WatchCreateRequest, WatchCreateResponse, WatchEvents

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["WatchWorkload"]

LOW, HIGH = b"k0", b"k2"  # the range: k0 and k1
TIMEOUT = 60


class WatchClient:
    __slots__ = (
        "acks",
        "created",
        "created_at",
        "life",
        "deadline",
        "delivered",
        "member",
        "next_start",
        "pid",
        "ref",
        "start",
        "watch_id",
        "workload",
    )

    def __init__(self, workload: WatchWorkload, n: int, start: int) -> None:
        self.workload = workload
        self.pid = PID(f"watch{n}@sim", 1, 1)
        self.start = start  # as asked: 0 is "from when it is registered"
        self.next_start = start
        self.created = False
        self.created_at = 0  # the revision after which the stream starts (known once created)
        self.life = 0  # the member's incarnation that holds the watch
        self.member: SimReplica | None = None
        self.watch_id = 0
        self.ref = 0
        self.deadline = 0
        self.delivered: list[tuple[str, bytes, int, bytes]] = []
        self.acks: list[tuple[SimReplica, int, int]] = []

    def on_reply(self, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        self.workload.on_reply(self, r, ref, ok, value)

    def forwarded_to(self, r: SimReplica, ref: int) -> None:
        pass


class WatchWorkload:
    def __init__(self, sim: Simulation, rng: random.Random, clients: int) -> None:
        self.sim = sim
        self.rng = rng
        self.clients = [WatchClient(self, i, rng.choice((0, 1))) for i in range(clients)]
        self.next_ref = 0
        self.resumes = 0
        self.events = 0

    def tick(self) -> None:
        now = self.sim.now
        for c in self.clients:
            for r, watch_id, revision in c.acks:
                if r is c.member and r.replica is not None:
                    r.replica.watch_ack(c.pid, WatchAck(watch_id, revision), r.clock())
                    r.run_effects()
            c.acks.clear()
            member = c.member
            if member is not None and (member.replica is None or member.retired or member.incarnation != c.life):
                self._lost(c)
            if c.member is None and c.watch_id == 0 and (c.ref == 0 or now >= c.deadline):
                self._create(c)

    def _create(self, c: WatchClient) -> None:
        live = [r for r in self.sim.live_replicas() if r.replica is not None]
        if not live:
            return
        r = self.rng.choice(live)
        self.next_ref += 1
        c.ref = self.next_ref
        c.deadline = self.sim.now + TIMEOUT
        r.request(c, c.ref, WatchCreateRequest(LOW, c.pid, HIGH, c.next_start))

    def on_reply(self, c: WatchClient, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        if ref != c.ref or c.member is not None:
            return
        if not ok or type(value) is not WatchCreateResponse:
            raise RaftInvariantError(f"{r.id} answered a watch request with {value!r}")
        if not c.created:
            c.created = True
            if c.next_start == 0:
                c.next_start = value.header.revision + 1
            c.created_at = c.next_start - 1
        c.member, c.watch_id, c.life = r, value.watch_id, r.incarnation

    def on_notify(self, r: SimReplica, to: Any, message: Any) -> None:
        for c in self.clients:
            if c.pid != to:
                continue
            if r is not c.member or type(message) is not WatchEvents or message.watch_id != c.watch_id:
                return  # a stream of ours from a member we left
            before = c.delivered[-1][2] if c.delivered else c.created_at
            last = before
            for i, event in enumerate(message.events):
                revision = event.kv.mod_revision
                if revision < last or (i == 0 and revision <= before):
                    raise RaftInvariantError(
                        f"{c.pid}: revision {revision} after {last} from {r.id}: out of order, repeated, or "
                        "a revision split between two batches (rule a)"
                    )
                last = revision
                c.delivered.append((event.type, event.kv.key, event.kv.mod_revision, event.kv.value))
                self.events += 1
            c.next_start = max(c.next_start, message.revision + 1)
            c.acks.append((r, message.watch_id, message.revision))
            return

    def on_crash(self, r: SimReplica) -> None:
        for c in self.clients:
            if c.member is r:
                self._lost(c)

    def _lost(self, c: WatchClient) -> None:
        c.member, c.watch_id, c.ref = None, 0, 0
        c.acks.clear()
        self.resumes += 1

    def caught_up(self, revision: int) -> bool:
        """Every client's member has sent its watch everything up to `revision`, and it took it
        (a revision outside the range sends nothing, so the client alone cannot tell)."""
        for c in self.clients:
            member = c.member
            watch = None if member is None or member.replica is None else member.replica.watches.watches.get(c.watch_id)
            if watch is None or watch.sent < revision or watch.unacked or c.acks:
                return False
        return True

    def check_streams(self, leader: SimReplica) -> None:
        """(b): each stream against the leader's history of the range."""
        sm = leader.sm
        if sm is None:
            return
        for c in self.clients:
            if not c.created:
                continue
            expected: list[tuple[str, bytes, int, bytes]] = []
            after = c.created_at
            while after < sm.revision:
                events, after = sm.events(after)
                expected += [
                    (e.type, e.kv.key, e.kv.mod_revision, e.kv.value) for e in events if LOW <= e.kv.key < HIGH
                ]
            if c.delivered != expected:
                missing = [e for e in expected if e not in c.delivered][:3]
                extra = [e for e in c.delivered if e not in expected][:3]
                raise RaftInvariantError(
                    f"{c.pid}'s watch delivered {len(c.delivered)} events, the history holds {len(expected)} "
                    f"after revision {c.created_at} (rule b): missing {missing}, unexpected {extra}"
                )
