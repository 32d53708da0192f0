"""Leader election: timeouts, PreVote, voting, and becoming leader (Raft §5.2, §5.4.1).

A follower whose randomized timeout expires first asks for pre-votes (thesis §9.6)
without raising any term, and starts a real election only when a quorum would vote
for it, so a partitioned replica that rejoins does not disrupt a healthy cluster.
Votes go only to candidates whose log is at least as up to date (§5.4.1), at most one
per term, and are sent only after the vote is persisted (the Ready rules).
No I/O here: messages are appended to the outbox.
"""

from __future__ import annotations

from ._core import NodeCore
from ._log_types import Entry, EntryType
from ._messages import RequestVote, RequestVoteResponse, TimeoutNow
from ._ready import Role

__all__ = ["ElectionMixin"]

FOLLOWER = Role.FOLLOWER
PRE_CANDIDATE = Role.PRE_CANDIDATE
CANDIDATE = Role.CANDIDATE
LEADER = Role.LEADER


class ElectionMixin(NodeCore):
    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._boot_lease and self._election_elapsed >= self._cfg.election_tick_min:
            self._boot_lease = False
        if self._election_elapsed >= self._randomized_timeout and self._promotable():
            self._election_elapsed = 0
            self._campaign(transfer=False)

    def _campaign(self, transfer: bool) -> None:
        if not self._promotable():
            return
        if self._cfg.pre_vote and not transfer:
            self._start_election(pre_vote=True, transfer=False)
        else:
            self._start_election(pre_vote=False, transfer=transfer)

    def _start_election(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            # PreVote: keep term and vote; only ask whether we could win term + 1.
            self.role = PRE_CANDIDATE
            self.leader = None
            self._votes = {}
            self._randomize_timeout()
            vote_term = self.term + 1
        else:
            self._reset(self.term + 1)
            self.role = CANDIDATE
            self.vote = self.id
            vote_term = self.term
        log = self._log
        last_index, last_term = log.last_index(), log.last_term()
        for v in self._voters:
            if v != self.id:
                self._send(RequestVote(vote_term, self.id, v, last_index, last_term, pre_vote, transfer))
        self._record_vote(self.id, True)

    def _record_vote(self, voter: str, granted: bool) -> None:
        votes = self._votes
        if voter not in votes:
            votes[voter] = granted
        yes = no = 0
        for v in self._voters:
            answer = votes.get(v)
            if answer is True:
                yes += 1
            elif answer is False:
                no += 1
        quorum = self._quorum()
        if yes >= quorum:
            if self.role is PRE_CANDIDATE:
                self._start_election(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif no >= quorum:
            self._become_follower(self.term, None)

    def _on_request_vote(self, m: RequestVote) -> None:
        # step() already moved us to a higher term for a real vote request.
        if m.pre_vote:
            can_vote = m.term > self.term or self.vote == m.src or (self.vote is None and self.leader is None)
        else:
            can_vote = self.vote == m.src or (self.vote is None and self.leader is None)
        if can_vote and self._log.is_up_to_date(m.last_index, m.last_term):
            # A granted pre-vote echoes the proposed term so the pre-candidate counts it.
            self._send(RequestVoteResponse(m.term, self.id, m.src, True, m.pre_vote))
            if not m.pre_vote:
                self.vote = m.src
                self._election_elapsed = 0
        else:
            self._send(RequestVoteResponse(self.term, self.id, m.src, False, m.pre_vote))

    def _on_vote_response(self, m: RequestVoteResponse) -> None:
        if m.pre_vote:
            if self.role is not PRE_CANDIDATE:
                return
            if m.granted and m.term != self.term + 1:
                return  # a grant from an earlier pre-campaign
            if not m.granted and m.term != self.term:
                return
        elif self.role is not CANDIDATE or m.term != self.term:
            return
        self._record_vote(m.src, m.granted)

    def _on_timeout_now(self, m: TimeoutNow) -> None:
        # Leadership transfer (thesis §3.10): skip PreVote and the lease check.
        if self.role is not LEADER and self._promotable():
            self._campaign(transfer=True)

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = LEADER
        self.leader = self.id
        self._sync_progress()
        log = self._log
        index = log.last_index() + 1
        # Raft §8: a no-op of the new term lets the leader learn the commit index.
        log.append([Entry(index, self.term, EntryType.NOOP, b"")], False)
        self._pending_conf_index = index
        self._bcast_pending = True  # the next flush sends the no-op to every peer
