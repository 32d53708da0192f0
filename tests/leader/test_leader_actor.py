"""LeaderActor: one leader per term, failover, stepping down without a quorum, persistence."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.leader import LeaderActor, LeaderConfigError, LeaderOptions

NODE = "t@localhost"
NAMES = ("l1", "l2", "l3")
BOOT = tuple(ProcessID(n, NODE) for n in NAMES)

EVENTS: list[tuple[str, str, int, Any]] = []  # (replica, event, term, detail)
BLOCKED: set[tuple[str, str]] = set()  # (src raft id, dst raft id) pairs the "network" drops


class Elector(LeaderActor):
    async def handle_become_leader(self) -> None:
        EVENTS.append((self.name, "leader", self.term(), self.fencing_token()))  # type: ignore[arg-type]

    async def handle_become_follower(self, leader: Any) -> None:
        EVENTS.append((self.name, "follower", self.term(), leader))  # type: ignore[arg-type]

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        if request == "status":
            return (self.is_leader(), self.term(), self.leader())
        if request == "hard_state":
            return self.raft.hard_state
        if request == "quiesced":
            return self.raft.quiesced
        return None

    def _send_raft(self, messages: Any) -> None:
        super()._send_raft([m for m in messages if (m.src, m.dst) not in BLOCKED])

    async def handle_message(self, from_: Any, message: Any) -> None:
        if isinstance(message, tuple) and message[0] == "busy":
            await trio.sleep(message[1])  # this replica reads no mail meanwhile (a long apply)


@pytest.fixture(autouse=True)
def clean() -> None:
    EVENTS.clear()
    BLOCKED.clear()


def options(**kw: Any) -> LeaderOptions:
    return LeaderOptions(cluster_id="test", bootstrap=BOOT, **kw)


async def leaders(node: e.Node) -> list[tuple[str, int]]:
    out = []
    for name in NAMES:
        try:
            is_leader, term, _ = await node.call(name, "status")
        except (e.ProcessUnknown, e.ProcessExited):
            continue
        if is_leader:
            out.append((name, term))
    return out


async def wait_leader(node: e.Node, timeout: float = 3.0, exclude: str | None = None) -> tuple[str, int]:
    with trio.fail_after(timeout):
        while True:
            found = [x for x in await leaders(node) if x[0] != exclude]
            if len(found) == 1:
                return found[0]
            await trio.sleep(0.01)


def assert_one_leader_per_term() -> None:
    by_term: dict[int, set[str]] = {}
    for name, event, term, _ in EVENTS:
        if event == "leader":
            by_term.setdefault(term, set()).add(name)
    assert all(len(v) == 1 for v in by_term.values()), by_term


async def test_three_replicas_elect_exactly_one_leader() -> None:
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(), name=name)
            leader, term = await wait_leader(node)
            await trio.sleep(0.5)  # stable: no further elections
            assert await leaders(node) == [(leader, term)]
            assert [ev for ev in EVENTS if ev[1] == "leader"] == [(leader, "leader", term, term)]
            # Every follower heard of the leader exactly once.
            followers = [ev for ev in EVENTS if ev[1] == "follower"]
            assert sorted(ev[0] for ev in followers if ev[3] is not None) == sorted(set(NAMES) - {leader})
            for name in set(NAMES) - {leader}:
                _, _, seen = await node.call(name, "status")
                assert seen == node.whereis(leader)


async def test_a_follower_busy_past_its_election_timeout_does_not_campaign_against_a_live_leader() -> None:
    """Heartbeats that waited in its mailbox count as received when they arrived, before the
    ticks that fell behind them (PreVote and CheckQuorum off: a campaign would raise the term)."""
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(pre_vote=False, check_quorum=False), name=name)
            leader, term = await wait_leader(node)
            await trio.sleep(0.3)
            follower = next(n for n in NAMES if n != leader)
            node.send(follower, ("busy", 1.0))  # heartbeats keep arriving meanwhile
            await trio.sleep(2.0)
            assert await leaders(node) == [(leader, term)]
            assert [ev for ev in EVENTS if ev[1] == "leader"] == [(leader, "leader", term, term)]


async def test_leader_killed_new_leader_within_a_second() -> None:
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(), name=name)
            old, old_term = await wait_leader(node)
            node.kill(node.whereis(old))  # type: ignore[arg-type]
            start = trio.current_time()
            new, new_term = await wait_leader(node, timeout=1.0, exclude=old)
            assert new != old and new_term > old_term
            assert trio.current_time() - start < 1.0
            assert_one_leader_per_term()


async def test_an_idle_group_goes_quiet_and_a_killed_quiet_leader_is_replaced_within_a_second() -> None:
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(), name=name)
            old, old_term = await wait_leader(node)
            with trio.fail_after(2):
                while not all([await node.call(n, "quiesced") for n in NAMES]):
                    await trio.sleep(0.02)
            await trio.sleep(0.5)  # quiet: no timer runs, nobody campaigns
            assert await leaders(node) == [(old, old_term)]
            node.kill(node.whereis(old))  # type: ignore[arg-type]
            start = trio.current_time()
            new, new_term = await wait_leader(node, timeout=1.0, exclude=old)
            assert new != old and new_term > old_term
            assert trio.current_time() - start < 1.0  # the followers' monitors of it woke them
            assert_one_leader_per_term()


async def test_partitioned_leader_steps_down_and_says_so() -> None:
    # A silent partition (messages dropped, links up) is what no monitor sees, so this is
    # CheckQuorum's test with quiescence off; a quiet group notices at its next request.
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(quiesce=False), name=name)
            old, old_term = await wait_leader(node)
            old_id = f"{old}@{NODE}"
            for other in NAMES:
                if other != old:
                    BLOCKED.add((old_id, f"{other}@{NODE}"))
                    BLOCKED.add((f"{other}@{NODE}", old_id))
            EVENTS.clear()
            start = trio.current_time()
            with trio.fail_after(2):
                while (await node.call(old, "status"))[0]:
                    await trio.sleep(0.01)
            # CheckQuorum: within an election timeout (plus a little scheduling slack).
            assert trio.current_time() - start < 1.0
            assert (old, "follower") in [(ev[0], ev[1]) for ev in EVENTS]
            new, new_term = await wait_leader(node, exclude=old)
            assert new_term > old_term
            BLOCKED.clear()
            await trio.sleep(0.5)
            assert [x[0] for x in await leaders(node)] == [new]
            assert_one_leader_per_term()


async def test_restart_with_data_dir_keeps_term_and_vote(tmp_path: Any) -> None:
    with trio.fail_after(15):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(data_dir=str(tmp_path / name)), name=name)
            await wait_leader(node)
            before = {n: await node.call(n, "hard_state") for n in NAMES}
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Elector, options(data_dir=str(tmp_path / name)), name=name)
            after = {n: await node.call(n, "hard_state") for n in NAMES}
            for n in NAMES:
                assert after[n].term >= before[n].term
                if after[n].term == before[n].term:
                    assert after[n].vote == before[n].vote
            leader, term = await wait_leader(node)
            assert term > max(hs.term for hs in before.values())


def test_bad_options_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(LeaderConfigError, match="election_timeout"):
        LeaderOptions(cluster_id="x", election_timeout=(0.3, 0.2))
    with pytest.raises(LeaderConfigError, match="heartbeat_interval"):
        LeaderOptions(cluster_id="x", heartbeat_interval=0.5)
    with pytest.raises(LeaderConfigError, match="cluster_id"):
        LeaderOptions(cluster_id="")
