"""Simulated clients: put / get / cas / delete on a few keys, recorded as a history.

Writes are proposed on the replica a client believes leads; reads go through ReadIndex
on any replica (follower reads included) and are answered once that replica applied
up to the read index. Every completed operation is recorded with its call and return
times; a write whose fate the client cannot know (its replica crashed, it timed out,
a snapshot skipped over its index) is recorded with an unknown outcome, as a real
client would have to. A write whose index committed with another term is known lost
and is retried with the same session tag (the state machine applies it at most once).
Reads that never complete are left out (they changed nothing).

Each client writes through a session of the real state machine (client_id, seq, ack =
seq: one request at a time); after an unknown outcome it continues as a new client
with a new session, since it may still be "inside" the old operation.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .._errors import NotLeader, RaftInvariantError
from ..checker import UNKNOWN, Operation
from ..raft import Entry, ReadState, Role
from ._commands import SESSION_GONE, kv_command, kv_output

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["Client", "Workload"]

IDLE, SUBMIT, WAIT_COMMIT, WAIT_READ = range(4)
LEADER = Role.LEADER


class Client:
    __slots__ = (
        "call",
        "cid",
        "client_id",
        "ctx",
        "data",
        "deadline",
        "hint",
        "index",
        "op",
        "op_id",
        "replica",
        "seq",
        "state",
        "term",
    )

    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.client_id = f"kv{cid}"
        self.seq = 0
        self.op: tuple[Any, ...] = ()
        self.op_id = 0
        self.data = b""
        self.call = 0.0
        self.state = IDLE
        self.replica: SimReplica | None = None
        self.index = 0
        self.term = 0
        self.ctx = b""
        self.deadline = 0
        self.hint: str | None = None


class Workload:
    def __init__(self, sim: Simulation, rng: random.Random, clients: int, keys: int) -> None:
        self.sim = sim
        self.rng = rng
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = [Client(i) for i in range(clients)]
        self.next_cid = clients
        self.next_op = 0
        self.history: list[Operation] = []
        self.accepting = True
        self.timeouts = True
        self.write_timeout = 50
        self.read_timeout = 60
        self.last_values: dict[str, str | None] = {}
        self.lost_retries = 0
        self.unknown = 0

    # --- driving -----------------------------------------------------------------

    def tick(self) -> None:
        now = self.sim.now
        for c in self.clients:
            st = c.state
            if st == IDLE:
                if self.accepting and self.rng.random() < 0.4:
                    self._start(c)
                    self._submit(c)
            elif self.timeouts and now >= c.deadline:
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
        if roll < 0.4:
            op: tuple[Any, ...] = ("get", key)
        elif roll < 0.65:
            op = ("put", key, f"v{n}")
        elif roll < 0.9:
            expected = self.last_values.get(key) if rng.random() < 0.7 else f"v{rng.randint(1, n)}"
            op = ("cas", key, expected, f"v{n}")
        else:
            op = ("delete", key)
        c.op = op
        c.op_id = n
        if op[0] == "get":
            c.data = b""
        else:
            c.seq += 1
            c.data = kv_command(c.client_id, c.seq, op)
        c.ctx = f"r{n}".encode()
        c.call = self.sim.clock()
        c.state = SUBMIT
        timeout = self.read_timeout if op[0] == "get" else self.write_timeout
        c.deadline = self.sim.now + rng.randint(timeout // 4, timeout)

    def _pick(self, c: Client) -> SimReplica | None:
        sim = self.sim
        # Reads often go anywhere: follower reads, and reads on a deposed leader that
        # does not know it yet, are where stale reads would show.
        if c.op[0] == "get" and self.rng.random() < 0.3:
            # Adversarial: ask any replica that believes it leads, deposed or not.
            leaders = [r for r in sim.live_replicas() if r.node is not None and r.node.role is LEADER]
            if leaders:
                if self.rng.random() < 0.5:
                    return min(leaders, key=lambda r: r.node.term)  # type: ignore[union-attr]
                return self.rng.choice(leaders)
        if c.hint is not None and (c.op[0] != "get" or self.rng.random() < 0.4):
            r = sim.replicas.get(c.hint)
            if r is not None and r.node is not None:
                return r
        live = sim.live_replicas()
        return self.rng.choice(live) if live else None

    def _submit(self, c: Client) -> None:
        r = self._pick(c)
        if r is None or r.node is None:
            return
        node = r.node
        try:
            if c.op[0] == "get":
                node.read_index(c.ctx)
            else:
                c.index = node.propose(c.data)
                c.term = node.term
        except NotLeader as exc:
            c.hint = exc.leader_hint if exc.leader_hint != r.id else None
            if c.hint is None and self.rng.random() < 0.5:
                c.hint = self.rng.choice(self.sim.live_ids() or [r.id])
            return
        self.sim.monitor.observe(r)
        c.replica = r
        c.hint = r.id
        if c.op[0] == "get":
            r.pending_reads[c.ctx] = c
            c.state = WAIT_READ
        else:
            r.pending_writes.setdefault(c.index, []).append(c)
            c.state = WAIT_COMMIT

    def _timeout(self, c: Client) -> None:
        r = c.replica
        c.hint = None  # whoever we were talking to did not answer in time: look elsewhere
        if c.state == WAIT_COMMIT:
            if r is not None:
                _forget(r.pending_writes, c)
            self._unknown(c)
        elif c.state == WAIT_READ:
            if r is not None:
                r.pending_reads.pop(c.ctx, None)
                r.reads_waiting = [(i, x) for (i, x) in r.reads_waiting if x is not c]
            self._idle(c)
        else:
            self._idle(c)  # never accepted anywhere: it had no effect

    # --- outcomes -----------------------------------------------------------------

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
        elif op[0] == "get":
            self.last_values[op[1]] = output
        self._idle(c)

    def give_up(self, c: Client) -> None:
        """The client stops waiting for a write whose fate it cannot learn."""
        self._unknown(c)

    def _unknown(self, c: Client) -> None:
        self.history.append(Operation(c.cid, c.op, c.call, UNKNOWN, None))
        self.unknown += 1
        # The client may still be "inside" that operation: continue as a new client.
        c.cid = self.next_cid
        c.client_id = f"kv{c.cid}"
        c.seq = 0
        self.next_cid += 1
        self._idle(c)

    def on_apply(self, r: SimReplica, e: Entry, result: Any) -> None:
        waiting = r.pending_writes.pop(e.index, None)
        if waiting is None:
            return
        for c in waiting:
            if e.term == c.term:
                if e.data != c.data:
                    raise RaftInvariantError(f"entry ({e.index}, {e.term}) is not the proposal made there")
                output = kv_output(c.op, result)
                if output is SESSION_GONE:
                    self._unknown(c)
                else:
                    self._complete(c, output)
            else:
                # Another entry committed at its index: it never will. Retry the same op.
                self.lost_retries += 1
                c.state = SUBMIT
                c.replica = None

    def on_snapshot(self, r: SimReplica, index: int) -> None:
        for i in [i for i in r.pending_writes if i <= index]:
            for c in r.pending_writes.pop(i):
                self._unknown(c)

    def on_read_state(self, r: SimReplica, rs: ReadState) -> None:
        c = r.pending_reads.pop(rs.context, None)
        if c is not None:
            r.reads_waiting.append((rs.index, c))

    def serve_reads(self, r: SimReplica) -> None:
        sm = r.sm
        if not r.reads_waiting or sm is None:
            return
        applied = sm.applied_index
        keep = []
        for index, c in r.reads_waiting:
            if index <= applied:
                value = sm.get(c.op[1].encode())
                self._complete(c, None if value is None else value.decode())
            else:
                keep.append((index, c))
        r.reads_waiting = keep

    def on_crash(self, r: SimReplica) -> None:
        for waiting in r.pending_writes.values():
            for c in waiting:
                self._unknown(c)
        for c in r.pending_reads.values():
            self._idle(c)
        for _, c in r.reads_waiting:
            self._idle(c)
        r.pending_writes = {}
        r.pending_reads = {}
        r.reads_waiting = []


def _forget(pending: dict[int, list[Client]], c: Client) -> None:
    waiting = pending.get(c.index)
    if waiting is not None and c in waiting:
        waiting.remove(c)
        if not waiting:
            del pending[c.index]
