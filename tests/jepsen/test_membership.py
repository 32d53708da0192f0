"""Membership changes on a real cluster: what a removed node answers, and re-adding it.

The Jepsen run exercises the same faults under load; this pins down, on a quiet 3-node
cluster, what a client that still lists a removed node gets from it (never a wrong
answer: writes and linearizable reads go to the leader, local reads are refused with
NotLeader so the client moves on), that the removed node says it takes no part, and
that `Membership.change` is idempotent and a node re-added with its old data catches up;
that `restore` undoes a replacement the end of the run cut short; and that the hold
checker does not count as a hold a grant its holder learned of after its TTL ran out
(found by a member-leader run), while still requiring fencing to stop its writes.
"""

from __future__ import annotations

import trio

from ergo_py import ProcessID
from global_kv import Unavailable
from global_kv.app import GLOBAL_NAME
from global_kv.cli import LocalCluster
from global_kv.client import open_client
from global_kv.protocol import StatusRequest, StatusResponse

from ._checks import check_holds
from ._membership import MEMBER_KINDS, Membership, membership_anomalies
from ._nemesis import make_schedule
from ._record import Hold, Recorder


def test_membership_kinds_are_scheduled_and_final_membership_is_checked() -> None:
    schedule = make_schedule(2, 600, ttl=2.0, fault_kinds=MEMBER_KINDS)
    assert {f.kind for f in schedule} == set(MEMBER_KINDS)
    assert all(1.0 <= f.duration <= 4.0 for f in schedule)
    names = ["n1@localhost", "n2@localhost", "n3@localhost"]
    assert membership_anomalies(set(names), names) == []
    assert membership_anomalies(set(names[:2]), names) != []
    assert membership_anomalies({*names, "n4@localhost"}, names) != []
    assert membership_anomalies(None, names) != []


async def test_a_grant_that_arrives_after_its_ttl_is_no_hold_but_stays_fenced() -> None:
    """Seen with member-leader (seed 5): an acquire retried at the new leader is answered from
    its session with its original grant, whose TTL ran out meanwhile and whose lock another
    worker holds now. The late holder had no exclusive time; its write must be fenced off."""
    rec = Recorder()
    late = Hold("w2", 41060, 2.0, invoke=0.0, start=2.5, end=2.6, how_ended="release-failed")
    now = Hold("w1", 41743, 2.0, invoke=2.2, start=2.4, end=2.55, how_ended="released")
    rec.holds += [late, now]
    rec.counter.increment("w1", now.token)
    assert rec.counter.increment("w2", late.token) is False
    assert check_holds(rec, 10.0) == []
    late.invoke = 0.6  # its lease (from its request) had not run out: a real overlap
    assert [a.kind for a in check_holds(rec, 10.0)] == ["mutual-exclusion"]
    late.invoke = 0.0
    rec.counter.log[-1].accepted = True  # had fencing let it through: a fencing anomaly
    rec.counter.value += 1
    assert {a.kind for a in check_holds(rec, 10.0)} == {"fencing"}


async def test_removed_nodes_answer_correctly_and_rejoin_with_their_data() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False, log_level="WARNING") as cluster:
            leader = cluster.nodes[await cluster.wait_for_leader()].name
            follower = next(n for n in cluster.names if n != leader)
            async with cluster.open_client_node() as node:
                m = Membership(cluster, node)
                async with open_client(node, cluster.names, timeout=5) as c:
                    await c.put("k", b"1")
                assert await m.change(follower, add=False) >= 1
                assert await m.members() == set(cluster.names) - {follower}
                assert await m.change(follower, add=False) == 0  # already done: nothing proposed
                with trio.fail_after(5):  # it learns of its removal from the entry itself
                    while follower in {p.node for p in (await _status(node, follower)).peers}:
                        await trio.sleep(0.05)
                st = await _status(node, follower)
                assert st.has_quorum is False and not st.is_leader

                # A client that only knows the removed follower: every answer is right.
                async with open_client(node, [follower], timeout=5) as c:
                    await c.put("k", b"2")  # forwarded to the leader: committed
                    assert await c.get("k", consistency="linearizable") == b"2"
                    # Its own state is frozen: local reads are refused, the client follows the hint.
                    assert await c.get("k", consistency="follower") == b"2"
                    assert await c.get("k", consistency="read_index") == b"2"
                async with open_client(node, [leader], timeout=5) as c:
                    assert await c.get("k") == b"2"

                # The removed leader steps down; a client that only knows it gets no answer.
                assert await m.change(leader, add=False) >= 1
                assert await m.members() == set(cluster.names) - {follower, leader}
                st = await _status(node, leader)
                assert not st.is_leader and st.has_quorum is False
                async with open_client(node, [leader], timeout=1) as c:
                    try:
                        await c.put("k", b"3")
                    except Unavailable:
                        pass
                    else:
                        raise AssertionError("a removed leader accepted a write with no leader known")

                # Both come back with their old data and catch up.
                for name in (follower, leader):
                    await m.change(name, add=True)
                    await m.wait_caught_up(name)
                assert await m.members() == set(cluster.names)
                async with open_client(node, cluster.names, timeout=5) as c:
                    await c.put("k", b"4")
                for name in cluster.names:
                    async with open_client(node, [name], timeout=5, consistency="follower") as c:
                        with trio.fail_after(10):
                            while await c.get("k") != b"4":
                                await trio.sleep(0.05)
                assert m.changes == 4 and m.failures == []


async def _status(node: object, name: str) -> StatusResponse:
    st = await node.call(ProcessID(GLOBAL_NAME, name), StatusRequest(), timeout=2)  # type: ignore[attr-defined]
    assert isinstance(st, StatusResponse)
    return st


class _Event:
    target = ""
    note = ""


async def test_restore_undoes_a_replacement_cut_short_after_the_wipe() -> None:
    """The end of the run may cancel member-replace with the spare in and a member wiped and
    out: `restore` must bring that member back (as a non-member first, never from BOOTSTRAP)
    and take the spare out, so the end checks see the original members."""
    with trio.fail_after(90):
        async with LocalCluster(3, spares=1, metrics=False, log_level="WARNING") as cluster:
            await cluster.wait_for_leader()
            async with cluster.open_client_node() as node:
                m = Membership(cluster, node)
                async with open_client(node, cluster.names, timeout=5) as c:
                    await c.put("k", b"1")
                event = _Event()
                async with trio.open_nursery() as nursery:

                    async def cut_when_wiped() -> None:
                        while "wiped" not in event.note:
                            await trio.sleep(0.02)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(cut_when_wiped)
                    await m.inject("member-replace", 30.0, 7, None, event)
                victim = event.target.split(" via ")[0]
                assert m.dirty and not cluster.nodes[cluster.index_of(victim)].member
                assert victim not in cluster.names  # out, wiped, restarted empty as a non-member
                assert await m.members() == {*cluster.names, "n4@localhost"}
                undone = await m.restore()
                assert f"re-added {victim}" in undone and "removed and wiped n4@localhost" in undone, undone
                assert not m.dirty and m.failures == []
                assert await m.members() == {n.name for n in cluster.nodes[:3]}
                assert all(n.member and n.running for n in cluster.nodes[:3]) and not cluster.nodes[3].member
                await m.wait_caught_up(victim)
                async with open_client(node, [victim], timeout=5, consistency="follower") as c:
                    assert await c.get("k") == b"1"  # rebuilt from the others: snapshot or log
