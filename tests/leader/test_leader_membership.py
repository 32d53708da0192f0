"""`LeaderActor.join` with `reply_to`: a node is added only once it is reached and answers as a
replica of this cluster; otherwise `ConfChangeRejected` says why, and nothing was proposed.

Real nodes over loopback websockets (127.0.0.1, port 0) in this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import NO_REPLY, ProcessID
from global_kv import ConfChangeRejected, GlobalKVError, NotLeader
from global_kv.leader import LeaderActor, LeaderOptions

COOKIE = "membership-cookie"
HOME = "home@localhost"
NAMES = ("l1", "l2", "l3")
BOOT = tuple(ProcessID(n, HOME) for n in NAMES)


class Member(LeaderActor):
    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        kind = request[0]
        if kind == "status":
            st = self.raft_status()
            return self.is_leader(), st.last_index, [str(v) for v in st.conf.voters]
        if kind in ("join", "join-now"):
            try:
                if kind == "join-now":
                    return self.join(request[1])
                return self.join(request[1], reply_to=(from_, ref))
            except GlobalKVError as exc:  # refused at once: the call's answer, not our crash
                self.send_response_error(from_, ref, exc)
                return NO_REPLY
        return None


def options(cluster_id: str = "test", bootstrap: tuple[ProcessID, ...] = BOOT, **kw: Any) -> LeaderOptions:
    return LeaderOptions(cluster_id=cluster_id, bootstrap=bootstrap, join_timeout=1.0, **kw)


@asynccontextmanager
async def node(name: str, cookie: str = COOKIE) -> AsyncIterator[e.Node]:
    async with e.start_node(name, e.NodeOptions(cookie=cookie, listen=("127.0.0.1", 0))) as n:
        yield n


async def leader_of(home: e.Node) -> str:
    with trio.fail_after(5):
        while True:
            for name in NAMES:
                is_leader, _, _ = await home.call(name, ("status",))
                if is_leader:
                    return name
            await trio.sleep(0.02)


async def test_join_checks_the_node_first_and_refuses_what_it_cannot_reach() -> None:
    with trio.fail_after(30):
        async with AsyncExitStack() as stack:
            home = await stack.enter_async_context(node(HOME))
            spare = await stack.enter_async_context(node("spare@localhost"))
            stranger = await stack.enter_async_context(node("stranger@localhost", cookie="another-cookie"))
            other = await stack.enter_async_context(node("other@localhost"))
            for n in (spare, stranger, other):
                home.add_route(n.name, f"ws://127.0.0.1:{n.port}")
            home.add_route("down@localhost", "ws://127.0.0.1:1")  # nothing listens there
            for name in NAMES:
                await home.spawn(Member, options(), name=name)
            await spare.spawn(Member, options(bootstrap=()), name="l4")
            await stranger.spawn(Member, options(bootstrap=()), name="l4")
            await other.spawn(Member, options(cluster_id="another-cluster", bootstrap=()), name="l4")
            leader = await leader_of(home)
            follower = next(n for n in NAMES if n != leader)
            _, last_before, voters = await home.call(leader, ("status",))

            async def refused(peer: ProcessID, *words: str) -> None:
                with pytest.raises(ConfChangeRejected) as caught:
                    await home.call(leader, ("join", peer), timeout=5)
                text = str(caught.value)
                assert all(w in text for w in words), text
                assert caught.value.change.node_id == f"{peer.name}@{peer.node}"

            await refused(ProcessID("l4", "ghost@localhost"), "cannot connect to ghost@localhost")  # no route
            await refused(ProcessID("l4", "down@localhost"), "cannot connect to down@localhost")
            await refused(ProcessID("l4", "stranger@localhost"), "cannot connect to stranger@localhost", "cookie")
            started = trio.current_time()
            await refused(ProcessID("l9", "spare@localhost"), "no replica 'l9' answered on spare@localhost within 1 s")
            assert trio.current_time() - started < 3  # bounded by join_timeout
            await refused(ProcessID("l4", "other@localhost"), "cluster 'another-cluster'", "CLUSTER_ID")
            await refused(ProcessID(follower, HOME), "is already a voter")
            with pytest.raises(NotLeader):
                await home.call(follower, ("join", ProcessID("l4", "spare@localhost")))
            # Nothing of that was proposed.
            assert await home.call(leader, ("status",)) == (True, last_before, voters)

            index = await home.call(leader, ("join", ProcessID("l4", "spare@localhost")), timeout=5)
            assert index == last_before + 1
            with trio.fail_after(5):  # committed, and the new member caught up with it
                while True:
                    _, last, members = await spare.call("l4", ("status",))
                    if last >= index and "l4@spare@localhost" in members:
                        break
                    await trio.sleep(0.02)
            await refused(ProcessID("l4", "spare@localhost"), "is already a voter")


async def test_join_without_reply_to_proposes_at_once_but_still_refuses_a_member() -> None:
    with trio.fail_after(15):
        async with node(HOME) as home:
            for name in NAMES:
                await home.spawn(Member, options(), name=name)
            leader = await leader_of(home)
            _, last_before, _ = await home.call(leader, ("status",))
            with pytest.raises(ConfChangeRejected, match="is already a voter"):
                await home.call(leader, ("join-now", ProcessID(NAMES[0], HOME)))
            assert await home.call(leader, ("join-now", ProcessID("l7", HOME))) == last_before + 1
