"""Raft's safety properties, checked by the simulator after every step.

Election Safety: at most one leader per term. Leader Append-Only: while a replica leads
a term its log only grows. Log Matching: an (index, term) pair
identifies one entry and the same predecessor term everywhere, which by induction
means identical prefixes. Leader Completeness: a new leader of term T holds every
entry committed in a term before T. State Machine Safety: no two replicas apply
different entries at one index, and the state machine is deterministic: every replica
applying an entry gets the same result. A tick the core said was not yet due
(`ticks_until_due`) changes nothing but its counters: the actor shell sleeps through
such ticks and gives them all at once before its next input. Commit indexes never go back (in memory within
a run of a replica; on disk ever). The first application of each lock command feeds
the lock invariants (`_lock_monitor.py`). Checks are incremental so that they can run
after every step. A violation raises `RaftInvariantError`; this module never fixes
anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import RaftInvariantError
from ..raft import Entry, RaftNode, Ready, Role
from ..state import Result
from ._lock_monitor import LOCK_RESULTS

if TYPE_CHECKING:
    from ._replica import SimReplica
    from ._simulation import Simulation

__all__ = ["SafetyMonitor"]

LEADER = Role.LEADER


class SafetyMonitor:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leaders: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.committed_term: dict[int, int] = {}
        self.commit_term: dict[int, int] = {}
        self.applied: dict[int, tuple[int, int, bytes, Result | None]] = {}
        # Per replica leading a term: (term, last index, its term) at the last look.
        self.leader_logs: dict[str, tuple[int, int, int | None]] = {}
        # (index, term) of proposed removals: once committed, the server is retired.
        self.removals: dict[tuple[int, int], str] = {}

    def tick(self, r: SimReplica) -> None:
        """Give `r` one Raft tick; one that its core said was not due must do nothing."""
        node = r.node
        assert node is not None
        due = node.ticks_until_due()
        before = _tick_mark(node)
        node.tick()
        if due != 1 and _tick_mark(node) != before:
            raise RaftInvariantError(
                f"{node.id}: a tick {'never' if due is None else f'{due} ticks ahead'} said due did something: "
                f"{before} -> {_tick_mark(node)}"
            )

    def observe(self, r: SimReplica) -> None:
        """Called after every call into a replica's core."""
        node = r.node
        if node is None:
            return
        term = node.term
        if node.role is LEADER:
            if r.lead_term != term:
                r.lead_term, r.lead_since = term, self.sim.now
            holder = self.leaders.get(term)
            if holder is None:
                self.leaders[term] = node.id
                self.sim.event(f"{node.id} is leader of term {term}")
                self._leader_completeness(r)
            elif holder != node.id:
                raise RaftInvariantError(f"election safety: {holder} and {node.id} both lead term {term}")
            self._leader_append_only(r, term)
        elif node.leader is not None:
            holder = self.leaders.get(term)
            if holder is not None and holder != node.leader:
                raise RaftInvariantError(f"{node.id} follows {node.leader} in term {term}, whose leader is {holder}")
        c = node.commit_index
        seen = r.seen_commit
        if c == seen:
            return
        if c < seen:
            raise RaftInvariantError(f"{node.id}: commit index went back from {seen} to {c}")
        committed_term, commit_term = self.committed_term, self.commit_term
        for i in range(max(seen + 1, node.first_index), c + 1):
            et = node.entry_term(i)
            known = committed_term.get(i)
            if known is None:
                committed_term[i] = et  # type: ignore[assignment]
                commit_term[i] = term
                removed = self.removals.get((i, et))  # type: ignore[arg-type]
                if removed is not None:
                    self.sim.retire(removed)
            elif known != et:
                raise RaftInvariantError(
                    f"{node.id} committed index {i} with term {et}, elsewhere committed with term {known}"
                )
        r.seen_commit = c

    def _leader_append_only(self, r: SimReplica, term: int) -> None:
        node = r.node
        assert node is not None
        last = node.last_index
        seen = self.leader_logs.get(node.id)
        if seen is not None and seen[0] == term:
            was_last, was_term = seen[1], seen[2]
            still = node.entry_term(was_last) if was_last >= node.first_index else was_term
            if last < was_last or still != was_term:
                raise RaftInvariantError(
                    f"leader append-only: {node.id}, leading term {term}, held "
                    f"{was_last}/{was_term}; now its log ends at {last}, term {still} there"
                )
        self.leader_logs[node.id] = (term, last, node.entry_term(last))

    def _leader_completeness(self, r: SimReplica) -> None:
        node = r.node
        assert node is not None
        t = node.term
        snap = node.snapshot_meta.index
        for i, ct in self.commit_term.items():
            if ct >= t or i < snap:
                continue
            et = node.entry_term(i)
            if et != self.committed_term[i]:
                raise RaftInvariantError(
                    f"leader completeness: {node.id} leads term {t} without entry {i} "
                    f"(term {self.committed_term[i]}) committed in term {ct}; it has term {et}"
                )

    def on_ready(self, r: SimReplica, rd: Ready) -> None:
        """Log Matching over every entry a replica appends (they all pass through Ready)."""
        node = r.node
        assert node is not None
        entries = self.entries
        for e in rd.entries:
            key = (e.index, e.term)
            val = (int(e.type), e.data, node.entry_term(e.index - 1))
            old = entries.get(key)
            if old is None:
                entries[key] = val
            elif old != val:
                raise RaftInvariantError(
                    f"log matching: {node.id} holds entry {key} = {val[0]}/{val[1][:40]!r} after "
                    f"term {val[2]}, elsewhere {old[0]}/{old[1][:40]!r} after term {old[2]}"
                )

    def on_apply(self, r: SimReplica, e: Entry, result: Result | None) -> None:
        """State Machine Safety: every replica applies the same entry at each index,
        with the same result (the state machine must be deterministic)."""
        val = (e.term, int(e.type), e.data, result)
        old = self.applied.get(e.index)
        if old is None:
            self.applied[e.index] = val
            if type(result) in LOCK_RESULTS:
                self.sim.lock_monitor.on_commit(e, result)  # type: ignore[arg-type]
        elif old != val:
            what = "result" if old[:3] == val[:3] else "entry"
            raise RaftInvariantError(
                f"state machine safety: {r.id} applies {val[:2]} -> {val[3]} at index "
                f"{e.index}, another replica applied {old[:2]} -> {old[3]} (different {what})"
            )


def _tick_mark(node: RaftNode) -> tuple[object, ...]:
    """What a tick can change besides its counters: role, term, leader, vote, messages
    queued, the boot lease, a leadership transfer, quiescence."""
    return (
        node.role,
        node.term,
        node.leader,
        node.vote,
        len(node._msgs),
        len(node._msgs_after),
        node._boot_lease,
        node._transferee,
        node._quiesced,
    )
