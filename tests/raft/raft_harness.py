"""A deterministic in-memory cluster of RaftNodes for unit tests (like etcd's `network`).

Messages go into one FIFO queue and are delivered in order unless a test blocks a link
or filters them; every Ready is handled by the contract (persist to a per-node store,
send, apply, advance), unless a test holds a node's Readies back to look at them.
No randomness except the seeded `random.Random` each node gets.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from global_kv.raft import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    RaftConfig,
    RaftNode,
    ReadState,
    Ready,
    Role,
    Snapshot,
    encode_conf_entry,
)
from global_kv.sim._replica import (
    SimDisk,  # persists exactly what Readies ask for, and refuses what breaks Raft's rules
)


def config(**overrides: object) -> RaftConfig:
    """Small, test-friendly timings; PreVote and CheckQuorum off unless asked for."""
    base: dict[str, object] = {
        "heartbeat_tick": 1,
        "election_tick_min": 10,
        "election_tick_max": 20,
        "pre_vote": False,
        "check_quorum": False,
    }
    base.update(overrides)
    return RaftConfig(**base)  # type: ignore[arg-type]


class Cluster:
    def __init__(
        self,
        ids: Iterable[str],
        cfg: RaftConfig | None = None,
        seed: int = 0,
        learners: Iterable[str] = (),
    ) -> None:
        self.ids = list(ids)
        self.cfg = cfg or config()
        self.seed = seed
        self.nodes: dict[str, RaftNode] = {}
        self.stores: dict[str, SimDisk] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.reads: dict[str, list[ReadState]] = {}
        self.snapshots: dict[str, list[Snapshot]] = {}
        self.queue: deque[Message] = deque()
        self.sent: list[Message] = []
        self.blocked: set[tuple[str, str]] = set()
        self.filter: Callable[[Message], bool] | None = None
        self.hold: set[str] = set()  # nodes whose Readies the test handles itself
        learners = tuple(learners)
        for i in self.ids:
            self.nodes[i] = RaftNode.bootstrap(i, self.ids, self.cfg, random.Random(f"{seed}-{i}"), learners)
        for i in learners:
            # A learner starts empty and learns everything (membership too) by replication.
            self.nodes[i] = RaftNode(i, self.cfg, random.Random(f"{seed}-{i}"))
        for i in self.nodes:
            self.stores[i] = SimDisk()
            self.applied[i] = []
            self.reads[i] = []
            self.snapshots[i] = []

    @classmethod
    def from_logs(cls, logs: dict[str, tuple[int, list[int]]], cfg: RaftConfig | None = None) -> Cluster:
        """Replicas restarted from given state: id -> (current term, terms of entries 2..).

        Entry 1 is the bootstrap membership of all ids; entry (i, t) carries b"i@t" on every
        replica, so equal (index, term) pairs are equal entries, as Log Matching requires.
        """
        c = cls(list(logs), cfg)
        voters = tuple(logs)
        first = Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_entry(None, ConfState(voters)))
        for i, (term, terms) in logs.items():
            entries = [first] + [
                Entry(2 + n, t, EntryType.NORMAL, f"{2 + n}@{t}".encode()) for n, t in enumerate(terms)
            ]
            c.nodes[i] = RaftNode(
                i,
                c.cfg,
                random.Random(f"log-{i}"),
                hard_state=HardState(term, None, 1),
                entries=entries,
            )
            c.stores[i].entries = list(entries)
            c.stores[i].hard_state = HardState(term, None, 1)
        return c

    # --- Ready handling ------------------------------------------------------------

    def handle(self, node_id: str) -> Ready | None:
        """Handle one Ready of `node_id` by the contract; returns it (None if none)."""
        node = self.nodes[node_id]
        if not node.has_ready():
            return None
        rd = node.ready()
        self._send(rd.messages)
        self.stores[node_id].persist(rd)
        self._send(rd.persisted_messages)
        if rd.snapshot is not None:
            self.snapshots[node_id].append(rd.snapshot)
        self.applied[node_id].extend(rd.committed_entries)
        self.reads[node_id].extend(rd.read_states)
        node.advance()
        return rd

    def flush(self) -> None:
        progress = True
        while progress:
            progress = False
            for i in list(self.nodes):
                if i in self.hold:
                    continue
                while self.handle(i) is not None:
                    progress = True

    def _send(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            self.sent.append(m)
            self.queue.append(m)

    def deliver(self, limit: int = 100_000) -> int:
        """Flush Readies and deliver queued messages until quiet. Returns messages delivered."""
        n = 0
        self.flush()
        while self.queue:
            m = self.queue.popleft()
            if (m.src, m.dst) in self.blocked or m.dst not in self.nodes:
                continue
            if self.filter is not None and not self.filter(m):
                continue
            self.nodes[m.dst].step(m)
            n += 1
            if n > limit:
                raise AssertionError("cluster did not go quiet")
            self.flush()
        return n

    # --- driving ---------------------------------------------------------------------

    def tick(self, ids: Iterable[str] | None = None, n: int = 1) -> None:
        for _ in range(n):
            for i in list(ids if ids is not None else self.nodes):
                self.nodes[i].tick()
            self.deliver()

    def campaign(self, node_id: str) -> None:
        self.nodes[node_id].campaign()
        self.deliver()

    def leader(self) -> str | None:
        leaders = [n for n in self.nodes.values() if n.role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.term).id

    def propose(self, node_id: str, data: bytes) -> int:
        index = self.nodes[node_id].propose(data)
        self.deliver()
        return index

    def isolate(self, node_id: str) -> None:
        for o in self.nodes:
            if o != node_id:
                self.blocked |= {(node_id, o), (o, node_id)}

    def heal(self) -> None:
        self.blocked = set()

    def crash(self, node_id: str) -> None:
        """Forget memory (the store stays); messages to it are dropped until restart."""
        self.isolate(node_id)
        self.hold.add(node_id)

    def restart(self, node_id: str, seed: int = 1) -> RaftNode:
        st = self.stores[node_id]
        snap = st.snapshot if st.snapshot.meta.index else None
        node = RaftNode(
            node_id,
            self.cfg,
            random.Random(f"{self.seed}-{node_id}-{seed}"),
            hard_state=st.hard_state,
            snapshot=snap,
            entries=list(st.entries),
        )
        self.nodes[node_id] = node
        self.applied[node_id] = []
        self.hold.discard(node_id)
        for o in self.nodes:
            self.blocked -= {(node_id, o), (o, node_id)}
        return node

    def add_empty(self, node_id: str) -> RaftNode:
        node = RaftNode(node_id, self.cfg, random.Random(f"{self.seed}-{node_id}"))
        self.nodes[node_id] = node
        self.stores[node_id] = SimDisk()
        self.applied[node_id] = []
        self.reads[node_id] = []
        self.snapshots[node_id] = []
        return node

    def data_applied(self, node_id: str) -> list[bytes]:
        return [e.data for e in self.applied[node_id] if e.type == EntryType.NORMAL]


def elect(ids: Iterable[str], leader: str, cfg: RaftConfig | None = None, seed: int = 0) -> Cluster:
    """A cluster with `leader` elected and its no-op committed everywhere."""
    c = Cluster(ids, cfg, seed)
    c.campaign(leader)
    assert c.nodes[leader].role is Role.LEADER
    c.tick(n=1)  # a heartbeat round spreads the commit index
    return c
