"""Simulated KV clients: put / get / cas / delete / txn on a few keys, recorded as a history.

Each client sends protocol requests (`_commands.kv_request`) to the replica it believes
leads, as `GlobalClient` does: writes are forwarded by a follower to the leader, reads
are linearizable (the leader's ReadIndex round, forwarded if need be), read_index (any
member, served once it applied that far: follower and deposed-leader reads included,
where stale reads would show) or lease reads. Every completed operation is recorded
with its call and return times. `NotLeader` is not an outcome: the client asks again
(the hinted leader, or anyone), with the same session tag, so a write applies at most
once. A write whose fate the client cannot know (its replica crashed, it timed out, its
session expired) is recorded with an unknown outcome, as a real client would have to;
it then continues as a new client with a new session, since it may still be "inside"
the old operation. During the drain a write that gets no answer is retried with its
tag until it is answered (unless it is its session's first request: see `_may_retry`).
Reads that never complete are left out (they changed nothing).

Now and then a client sends a malformed request (an empty or oversized key, an unknown
consistency level, a bad session tag): the replica must refuse it with the caller's
error and go on serving (request containment); nothing is recorded.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .._errors import InvalidRequest, NotLeader, RaftInvariantError, RequestTooLarge
from ..checker import UNKNOWN, Operation
from ..protocol import GetRequest, PutRequest, SessionTag
from ..raft import Role
from ._commands import SESSION_GONE, kv_output, kv_request

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["Client", "Workload"]

IDLE, SUBMIT, WAIT = range(3)
LEADER = Role.LEADER

# Requests the edge must refuse (each names the field it is refused for).
_MALFORMED: tuple[tuple[str, Any], ...] = (
    ("key", GetRequest(b"", "")),
    ("key", GetRequest(b"k" * 4096, "")),
    ("consistency", GetRequest(b"k0", "eventually")),
    ("session.client_id", PutRequest(b"k0", b"v", SessionTag("c" * 4096, 1, 1))),
    ("session.seq", PutRequest(b"k0", b"v", SessionTag("bad", -1, 0))),
)


class Client:
    __slots__ = (
        "call",
        "cid",
        "client_id",
        "deadline",
        "hint",
        "op",
        "op_id",
        "ref",
        "replica",
        "request",
        "seq",
        "state",
        "workload",
    )

    def __init__(self, workload: Workload, cid: int) -> None:
        self.workload = workload
        self.cid = cid
        self.client_id = f"kv{cid}"
        self.seq = 0
        self.op: tuple[Any, ...] = ()
        self.op_id = 0
        self.request: Any = None
        self.call = 0.0
        self.state = IDLE
        self.replica: SimReplica | None = None
        self.ref = 0
        self.deadline = 0
        self.hint: str | None = None

    def on_reply(self, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        self.workload.on_reply(self, r, ref, ok, value)

    def forwarded_to(self, r: SimReplica, ref: int) -> None:
        if ref == self.ref and self.state == WAIT:
            self.replica = r  # the leader answers; if it crashes, the client hears of it


class Workload:
    def __init__(self, sim: Simulation, rng: random.Random, clients: int, keys: int) -> None:
        self.sim = sim
        self.rng = rng
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = [Client(self, i) for i in range(clients)]
        self.next_cid = clients
        self.next_op = 0
        self.next_ref = 0
        self.history: list[Operation] = []
        self.accepting = True
        self.draining = False
        self.write_timeout = 50
        self.read_timeout = 60
        self.last_values: dict[str, str | None] = {}
        self.lost_retries = 0
        self.unknown = 0
        self.refused = 0
        levels = ["read_index", "read_index", "linearizable", ""]
        if sim.raft_config.lease_reads:
            levels.append("lease")
        self.read_levels = tuple(levels)

    # --- driving -----------------------------------------------------------------

    def tick(self) -> None:
        now = self.sim.now
        for c in self.clients:
            st = c.state
            if st == IDLE:
                if self.accepting and self.rng.random() < 0.4:
                    self._start(c)
                    self._submit(c)
            elif now >= c.deadline:
                self._timeout(c)
            elif st == SUBMIT:
                self._submit(c)

    def busy(self) -> bool:
        return any(c.state != IDLE for c in self.clients)

    def _start(self, c: Client) -> None:
        rng = self.rng
        self.next_op += 1
        n = self.next_op
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < 0.03:
            field, request = rng.choice(_MALFORMED)
            op: tuple[Any, ...] = ("malformed", field)
        elif roll < 0.4:
            op = ("get", key)
            request = kv_request(c.client_id, 0, op, rng.choice(self.read_levels))
        elif roll < 0.65:
            op = ("put", key, f"v{n}")
        elif roll < 0.8:
            op = ("cas", key, self._guess(key, n), f"v{n}")
        elif roll < 0.88:
            op = self._txn(key, n)
        else:
            op = ("delete", key)
        if op[0] not in ("get", "malformed"):
            c.seq += 1
            request = kv_request(c.client_id, c.seq, op)
        c.op = op
        c.op_id = n
        c.request = request
        c.call = self.sim.clock()
        c.state = SUBMIT
        timeout = self.read_timeout if op[0] == "get" else self.write_timeout
        c.deadline = self.sim.now + rng.randint(timeout // 4, timeout)

    def _guess(self, key: str, n: int) -> str | None:
        """An expected value: mostly the last one seen, else an old one."""
        return self.last_values.get(key) if self.rng.random() < 0.7 else f"v{self.rng.randint(1, n)}"

    def _txn(self, key: str, n: int) -> tuple[Any, ...]:
        """A transaction over `key` and its pair (k0 with k1, k2 with k3, ...): compares on
        one or both, a success branch writing each at most once, reads in either branch.
        The checker checks each pair's keys together."""
        rng = self.rng
        i = self.keys.index(key)
        pair = self.keys[i ^ 1] if (i ^ 1) < len(self.keys) else key
        keys = tuple(sorted({key, pair}))
        compares = tuple((k, self._guess(k, n)) for k in keys if rng.random() < 0.6)
        success: list[tuple[Any, ...]] = []
        for k in rng.sample(keys, len(keys)):
            roll = rng.random()
            if roll < 0.5:
                success.append(("put", k, f"v{n}"))
            elif roll < 0.65:
                success.append(("delete", k))
            if rng.random() < 0.4:
                success.append(("get", k))
        failure = tuple(("get", k) for k in keys if rng.random() < 0.5)
        return ("txn", keys, compares, tuple(success), failure)

    def _pick(self, c: Client) -> SimReplica | None:
        sim = self.sim
        if c.op[0] == "get" and self.rng.random() < 0.3:
            # Adversarial: ask any replica that believes it leads, deposed or not.
            leaders = [r for r in sim.live_replicas() if r.node is not None and r.node.role is LEADER]
            if leaders:
                if self.rng.random() < 0.5:
                    return min(leaders, key=lambda r: r.node.term)  # type: ignore[union-attr]
                return self.rng.choice(leaders)
        if c.hint is not None and (c.op[0] != "get" or self.rng.random() < 0.4):
            r = sim.replicas.get(c.hint)
            if r is not None and r.replica is not None and not r.retired:
                return r
        live = sim.live_replicas()
        return self.rng.choice(live) if live else None

    def _submit(self, c: Client) -> None:
        r = self._pick(c)
        if r is None:
            return
        self.next_ref += 1
        c.ref = self.next_ref
        c.replica = r
        c.state = WAIT
        r.request(c, c.ref, c.request)
        self.sim.monitor.observe(r)

    def _timeout(self, c: Client) -> None:
        c.hint = None  # whoever we were talking to did not answer in time: look elsewhere
        if c.op[0] in ("get", "malformed"):
            self._idle(c)  # a read changed nothing
        elif self._may_retry(c):
            self._again(c)
        else:
            self._unknown(c)

    def _may_retry(self, c: Client) -> bool:
        """During the drain a write is retried with its tag, once its session is known to
        the cluster (an earlier request was answered): then a retry after the session
        expired is refused (SessionExpired), never applied twice. A session's first request
        cannot be told from a new session's, so it is given up instead."""
        return self.draining and c.seq > 1

    def _again(self, c: Client) -> None:
        c.state = SUBMIT
        c.replica = None
        c.deadline = self.sim.now + self.write_timeout

    # --- outcomes -----------------------------------------------------------------

    def on_reply(self, c: Client, r: SimReplica, ref: int, ok: bool, value: Any) -> None:
        if ref != c.ref or c.state != WAIT:
            return  # an answer to an attempt the client gave up on
        if c.op[0] == "malformed":
            if ok or type(value) not in (InvalidRequest, RequestTooLarge) or value.field != c.op[1]:
                raise RaftInvariantError(f"{r.id} answered the malformed {c.request!r} with {value!r}")
            self.refused += 1
            self._idle(c)
            return
        if not ok and isinstance(value, NotLeader):
            hint = value.leader_hint
            c.hint = hint if isinstance(hint, str) and hint != r.id else None
            if c.hint is None and self.rng.random() < 0.5:
                c.hint = self.rng.choice(self.sim.live_ids() or [r.id])
            self.lost_retries += 1
            c.state = SUBMIT
            c.replica = None
            return
        output = kv_output(c.op, ok, value)
        if output is SESSION_GONE:
            self._unknown(c)
        else:
            self._complete(c, output)

    def _idle(self, c: Client) -> None:
        c.state = IDLE
        c.replica = None

    def _complete(self, c: Client, output: Any) -> None:
        self.history.append(Operation(c.cid, c.op, c.call, output, self.sim.clock()))
        op = c.op
        if op[0] == "put":
            self.last_values[op[1]] = op[2]
        elif op[0] == "delete":
            self.last_values[op[1]] = None
        elif op[0] == "cas" and output is True:
            self.last_values[op[1]] = op[3]
        elif op[0] == "txn" and output[0]:
            for step in op[3]:
                if step[0] != "get":
                    self.last_values[step[1]] = step[2] if step[0] == "put" else None
        elif op[0] == "get":
            self.last_values[op[1]] = output
        self._idle(c)

    def _unknown(self, c: Client) -> None:
        self.history.append(Operation(c.cid, c.op, c.call, UNKNOWN, None))
        self.unknown += 1
        # The client may still be "inside" that operation: continue as a new client.
        c.cid = self.next_cid
        c.client_id = f"kv{c.cid}"
        c.seq = 0
        self.next_cid += 1
        self._idle(c)

    def on_crash(self, r: SimReplica) -> None:
        """The replica a client waits on is gone: its caller hears of it (a lost link)."""
        for c in self.clients:
            if c.replica is r and c.state == WAIT:
                c.hint = None
                if c.op[0] in ("get", "malformed"):
                    self._idle(c)
                elif self._may_retry(c):
                    self._again(c)
                else:
                    self._unknown(c)
