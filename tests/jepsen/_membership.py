"""Membership faults: members removed and added again through the leader while the workload runs.

Kinds (dispatched here by the nemesis):
- `member-follower`: remove a random follower, leave its process running on its data
  (a removed replica, which clients still know and still call), wait, add it back.
- `member-leader`: the same for the current leader; its removal commits, it hands
  leadership to the most caught-up voter and steps down.
- `member-replace`: the etcd way to replace a member: add the spare (an empty node: it
  catches up from nothing, by snapshot or the whole log), remove a random member, stop
  it, wipe its data directory, restart it as a non-member and add it again; finally
  remove the spare, stop it, wipe it and restart it empty for next time.

What "re-add" means. A replica identity is its node name (`global@name`), so a removed
node comes back under the same id. With its old data that is safe: its log, term and
vote are durable and were only ever written following Raft's rules, so it is exactly a
follower that was cut off for a while (AppendEntries truncates its uncommitted suffix,
it never voted twice in a term, and its log's up-to-date check keeps it from leading
with stale data). With its data wiped it has forgotten its votes: that is safe only
because the wipe happens after its removal committed (every majority that could still
elect a leader in a term it voted in then overlaps a majority of the new configuration
that has moved past that term), so a wipe always waits for that commit here, and a
wiped node always restarts as a non-member (never from BOOTSTRAP, which would give it a
configuration it was never sent).

Changes go through the leader with RemovePeerRequest / AddPeerRequest and are repeated until
the leader refuses them as already done ("already a voter", "is not a member"): the
leader only checks that after it has committed an entry of its own term and every
change it proposed, so that refusal proves the change is committed. `restore` (called
by the nemesis' heal) puts every original member back and the spare out, so the end
checks run over the original members. It must never touch a process LocalCluster did
not start, and never wipe a node whose removal is not committed.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import trio

import ergo_py
from ergo_py import ProcessID
from global_kv import ConfChangeRejected, GlobalKVError, NotLeader
from global_kv.app import GLOBAL_NAME
from global_kv.cli import LocalCluster
from global_kv.protocol import AddPeerRequest, RemovePeerRequest, StatusRequest, StatusResponse

__all__ = ["MEMBER_KINDS", "Membership", "MembershipChangeFailed", "membership_anomalies"]

MEMBER_KINDS = ("member-follower", "member-leader", "member-replace")

# How the leader says a change needs no proposal: it is in its committed configuration.
_DONE = {True: "is already a voter", False: "is not a member"}
_RETRY_ERRORS = (ergo_py.ErgoError, NotLeader)


class _Event(Protocol):
    """Where a fault writes what it did (the nemesis' FaultEvent)."""

    target: str
    note: str


class MembershipChangeFailed(GlobalKVError):
    """A membership change (or putting a node back) did not complete within `timeout` seconds."""

    def __init__(self, what: str, timeout: float, last_error: object) -> None:
        self.what = what
        self.timeout = timeout
        self.last_error = last_error
        super().__init__(f"{what}: not done within {timeout:g} s (last error: {last_error!r})")


@dataclass
class Membership:
    """Membership faults against one LocalCluster, seen from the harness' client node."""

    cluster: LocalCluster
    node: ergo_py.Node
    change_timeout: float = 30.0
    catch_up_timeout: float = 30.0
    changes: int = 0  # committed membership changes made
    failures: list[str] = field(default_factory=list)  # findings for the report
    dirty: bool = False  # a membership fault started and was not undone yet

    @property
    def originals(self) -> list[str]:
        return [n.name for n in self.cluster.nodes[: self.cluster.size]]

    # -- looking -------------------------------------------------------------------------------
    async def _status(self, name: str, timeout: float = 1.0) -> StatusResponse | None:
        try:
            st = await self.node.call(ProcessID(GLOBAL_NAME, name), StatusRequest(), timeout=timeout)
        except ergo_py.ErgoError:
            return None
        return st if isinstance(st, StatusResponse) else None

    async def leader_status(self) -> StatusResponse | None:
        """The status of the node that says it leads (the highest term if two do), or None."""
        best: StatusResponse | None = None
        for st in (await self.cluster.statuses(self.node, timeout=1.0)).values():
            if st is not None and st.is_leader and (best is None or st.term > best.term):
                best = st
        return best

    async def members(self, timeout: float = 10.0) -> set[str] | None:
        """The leader's configuration (node names), or None if no leader answered in time."""
        with trio.move_on_after(timeout):
            while True:
                st = await self.leader_status()
                if st is not None:
                    return {p.node for p in st.peers}
                await trio.sleep(0.1)
        return None

    # -- changing --------------------------------------------------------------------------------
    async def change(self, name: str, add: bool) -> int:
        """Add or remove `name` until the leader confirms it committed; returns proposals made."""
        request = (AddPeerRequest if add else RemovePeerRequest)(ProcessID(GLOBAL_NAME, name))
        what = f"{'add' if add else 'remove'} {name}"
        proposals = 0
        last: object = None
        with trio.move_on_after(self.change_timeout):
            while True:
                st = await self.leader_status()
                if st is None:
                    last = "no leader"
                    await trio.sleep(0.1)
                    continue
                try:
                    await self.node.call(st.node_id, request, timeout=2.0)
                    proposals += 1  # proposed: asking again tells whether it committed
                except ConfChangeRejected as exc:
                    last = exc
                    if _DONE[add] in exc.reason:
                        self.changes += 1 if proposals else 0
                        return proposals
                    # Not yet: an earlier change is uncommitted, or a new leader has not
                    # committed an entry of its term.
                except _RETRY_ERRORS as exc:
                    last = exc
                await trio.sleep(0.1)
        raise MembershipChangeFailed(what, self.change_timeout, last)

    async def wait_caught_up(self, name: str) -> float:
        """Seconds until `name` applied what the leader had committed when asked."""
        start = trio.current_time()
        target = None
        with trio.move_on_after(self.catch_up_timeout):
            while target is None:
                st = await self.leader_status()
                target = st.commit_index if st is not None else None
                if target is None:
                    await trio.sleep(0.1)
            while True:
                st = await self._status(name)
                if st is not None and st.last_applied >= target:
                    return trio.current_time() - start
                await trio.sleep(0.1)
        raise MembershipChangeFailed(f"{name} catching up to index {target}", self.catch_up_timeout, None)

    async def _restart_empty(self, i: int) -> int | None:
        """Stop node `i` (if running), wipe its data, start it as a non-member. Returns its exit code."""
        n = self.cluster.nodes[i]
        # First: heal() restarts stopped members (a wiped one would bootstrap from BOOTSTRAP)
        # and reports them as crashed; a non-member is started by `restore` instead.
        n.member = False
        code = await self.cluster.stop(i) if n.running else None
        shutil.rmtree(n.data_dir, ignore_errors=True)
        n.data_dir.mkdir(parents=True, exist_ok=True)
        await self.cluster.start_node(i)  # not in BOOTSTRAP: it waits to be added
        return code

    # -- the faults ------------------------------------------------------------------------------
    async def inject(self, kind: str, duration: float, pick: int, leader: int | None, event: _Event) -> None:
        """Run one membership fault, writing its target and progress into `event` as it goes
        (so a fault cut short by the end of the run still says how far it got).
        `leader` is the leader's index if known."""
        try:
            await self._inject(kind, duration, pick, leader, event)
        except MembershipChangeFailed as exc:
            self.failures.append(f"{kind}: {exc}")
            raise

    async def _inject(self, kind: str, duration: float, pick: int, leader: int | None, event: _Event) -> None:
        self.dirty = True
        if kind == "member-replace":
            await self._replace(duration, pick, event)
            return
        if kind == "member-leader" and leader is not None:
            i = leader
        else:
            running = [n.index for n in self.cluster.members if n.running and n.index != leader]
            i = running[pick % len(running)]
            if kind == "member-leader":
                event.note = "(no leader found: random member) "
        name = event.target = self.cluster.nodes[i].name
        t0 = trio.current_time()
        proposals = await self.change(name, add=False)
        event.note += f"removed in {trio.current_time() - t0:.2f} s ({proposals} proposals)"
        st = await self._status(name)
        if st is not None:
            event.note += f", it reports has_quorum={st.has_quorum} leader={st.is_leader}"
            if st.has_quorum and name not in {p.node for p in st.peers}:
                # It knows it was removed (not in its own peers) yet claims to take part.
                self.failures.append(f"removed {name} still reports has_quorum=True: {st}")
        await trio.sleep(duration)
        t1 = trio.current_time()
        await self.change(name, add=True)
        added = trio.current_time() - t1
        caught = await self.wait_caught_up(name)
        event.note += f"; re-added with its old data in {added:.2f} s, caught up in {caught:.2f} s"
        self.dirty = False

    async def _replace(self, duration: float, pick: int, event: _Event) -> None:
        spares = [n.index for n in self.cluster.nodes[self.cluster.size :]]
        if not spares:
            raise MembershipChangeFailed("member-replace", 0, "the cluster has no spare node")
        s = spares[pick % len(spares)]
        spare = event.target = self.cluster.nodes[s].name
        await self.change(spare, add=True)
        caught = await self.wait_caught_up(spare)
        event.note = f"{spare} added (caught up in {caught:.2f} s)"
        running = [n.index for n in self.cluster.members if n.running]
        i = running[random.Random(pick).randrange(len(running))]
        name = self.cluster.nodes[i].name
        event.target = f"{name} via {spare}"
        await self.change(name, add=False)
        code = await self._restart_empty(i)
        event.note += f"; {name} removed, stopped (exit {code}), wiped"
        await trio.sleep(duration)
        await self.change(name, add=True)
        self.cluster.nodes[i].member = True
        caught = await self.wait_caught_up(name)
        event.note += f", re-added empty (caught up in {caught:.2f} s)"
        await self.change(spare, add=False)
        await self._restart_empty(s)
        event.note += f"; {spare} removed and wiped"
        self.dirty = False

    # -- healing ---------------------------------------------------------------------------------
    async def restore(self) -> str:
        """Every original member a member again (running), every spare out; says what it did.

        Only after a membership fault that did not finish (cut short by the end of the
        run, or failed); failures are recorded for the report."""
        if not self.dirty:
            return ""
        done: list[str] = []
        try:
            with trio.fail_after(3 * self.change_timeout):
                await self._restore(done)
            self.dirty = False
        except (GlobalKVError, trio.TooSlowError) as exc:
            self.failures.append(f"restoring the membership failed: {exc!r}")
            done.append(f"failed: {exc!r}")
        return ", ".join(done) or "nothing to undo"

    async def _restore(self, done: list[str]) -> None:
        originals = self.originals
        for name in originals:
            i = self.cluster.index_of(name)
            if not self.cluster.nodes[i].running:
                # Stopped by member-replace: wiped (or not yet), never a member from BOOTSTRAP.
                self.cluster.nodes[i].member = False
                await self.cluster.start_node(i)
                done.append(f"started {name}")
        members = await self.members()
        if members is None:
            raise MembershipChangeFailed("finding the leader's configuration", 10, None)
        for name in originals:
            if name not in members:
                await self.change(name, add=True)
                done.append(f"re-added {name}")
            self.cluster.nodes[self.cluster.index_of(name)].member = True
        for name in sorted(members - set(originals)):
            await self.change(name, add=False)
            await self._restart_empty(self.cluster.index_of(name))
            done.append(f"removed and wiped {name}")


def membership_anomalies(members: set[str] | None, originals: Iterable[str]) -> list[str]:
    """What is wrong with the final configuration (empty if it is exactly the original members)."""
    expected = set(originals)
    if members is None:
        return ["no leader reported its configuration at the end"]
    if members != expected:
        return [f"final members {sorted(members)} != original members {sorted(expected)}"]
    return []
