"""Clients on nodes without a listener (how ctl and most programs run), against 3 node processes.

Such a node can only be reached over links it dialled. A request it sends to a
follower is forwarded to the leader; the answer must come back at once (through the
follower) and not depend on the leader dialling the client. A lock it holds must
survive a leader failover (same holder, same token), and its waiters must be served
as soon as the lock is free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

import ergo_py
from ergo_py import ProcessID
from global_kv import GlobalClient, open_client
from global_kv.cli import LocalCluster
from global_kv.protocol import StatusRequest

OWNER_SCRIPT = Path(__file__).resolve().parent / "lock_owner_node.py"


async def leader_and_followers(cluster: LocalCluster) -> tuple[str, list[str]]:
    leader = cluster.names[await cluster.wait_for_leader()]
    return leader, [n for n in cluster.names if n != leader]


async def new_leader(cluster: LocalCluster, old: str, timeout: float = 15.0) -> str:
    i = await cluster.wait_for_leader(timeout, exclude=(cluster.index_of(old),))
    return cluster.names[i]


def start_owner(cluster: LocalCluster, key: str, members: list[str]) -> subprocess.Popen[bytes]:
    """An OS process on a dial-only node that locks `key` through `members` (in that order)."""
    routes = [f"{n}={cluster.routes[n]}" for n in members]
    env = dict(os.environ, ERGO_COOKIE=cluster.cookie)
    return subprocess.Popen(
        [sys.executable, str(OWNER_SCRIPT), key, *routes], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


async def read_token(proc: subprocess.Popen[bytes]) -> int:
    line = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)  # type: ignore[union-attr]
    assert line.startswith(b"TOKEN "), line
    return int(line.split()[1])


async def test_requests_through_a_follower_are_answered_at_once_without_a_link_from_the_leader() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            leader, followers = await leader_and_followers(cluster)
            # open_client with the BOOTSTRAP string: a node of its own that only dials out.
            async with open_client(cluster.bootstrap, cookie=cluster.cookie, nodes=followers, timeout=10) as kv:
                node = kv.process.node
                assert node.port is None  # it listens nowhere
                slowest = 0.0
                for i in range(20):
                    started = trio.current_time()
                    await kv.put(f"k{i}", b"%d" % i)
                    assert await kv.get(f"k{i}") == b"%d" % i  # linearizable: forwarded too
                    slowest = max(slowest, trio.current_time() - started)
                # Without a relay each answer waits out the client's per-try timeout (1 s).
                assert slowest < 0.5, slowest
                assert leader not in node.connected_nodes()
                status = await node.call(ProcessID("global", followers[0]), StatusRequest(), timeout=5)
                assert status.leader == ProcessID("global", leader)


async def test_a_client_that_started_at_a_follower_talks_to_the_leader_itself() -> None:
    """After its first answer the client asks who leads (before its next request) and goes
    there: a hop less each way.
    Proven by stopping (SIGSTOP) the follower it started at: with a per-try timeout of 5 s,
    a client still sending through it would wait that out."""
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            leader, followers = await leader_and_followers(cluster)
            members = [followers[0], leader, followers[1]]
            async with open_client(cluster.bootstrap, cookie=cluster.cookie, nodes=members, try_timeout=5) as kv:
                await kv.put("first", b"1")  # answered through the follower
                assert await kv.get("first") == b"1"  # asks the follower who leads first, then goes there
                cluster.pause(cluster.index_of(followers[0]))
                try:
                    started = trio.current_time()
                    for i in range(5):
                        await kv.put(f"k{i}", b"%d" % i)
                        assert await kv.get(f"k{i}") == b"%d" % i
                    assert trio.current_time() - started < 2.5
                finally:
                    cluster.resume(cluster.index_of(followers[0]))


async def test_a_lock_held_by_a_dial_only_client_survives_a_leader_failover() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False) as cluster:
            leader, followers = await leader_and_followers(cluster)
            async with open_client(cluster.bootstrap, cookie=cluster.cookie, nodes=followers, timeout=10) as kv:
                handle = await kv.lock("jobs")  # no TTL: held until released or the owner is gone
                before = [(lock.owner, lock.token) for lock in await kv.list_locks()]
                assert before == [(kv.process.pid, handle.token)]
                await cluster.kill(cluster.index_of(leader))
                await new_leader(cluster, leader)
                # Past the new leader's grace for unreachable owners (5 s): still ours.
                await trio.sleep(7)
                after = [(lock.owner, lock.token) for lock in await kv.list_locks()]
                assert after == before
                await handle.unlock()  # raises LockNotHeld if the failover released it
                assert await kv.list_locks() == []


async def test_a_waiter_on_a_dial_only_node_is_granted_as_soon_as_the_holder_dies() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            leader, followers = await leader_and_followers(cluster)
            proc = start_owner(cluster, "shared", [*followers, leader])
            try:
                token = await read_token(proc)
                members = [*followers, leader]
                async with open_client(cluster.bootstrap, cookie=cluster.cookie, nodes=members, timeout=20) as kv:
                    got: list[tuple[int, float]] = []

                    async def wait_for_it() -> None:
                        h = await kv.lock_with_timeout("shared", 0, 15)
                        got.append((h.token, trio.current_time()))

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(wait_for_it)
                        await trio.sleep(0.5)
                        assert not got
                        proc.send_signal(signal.SIGKILL)
                        killed_at = trio.current_time()
                    assert got and got[0][0] > token
                    assert got[0][1] - killed_at < 2.0, got[0][1] - killed_at
            finally:
                stop(proc)


async def test_an_owner_that_dies_after_a_failover_is_still_released_promptly() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False) as cluster:
            leader, followers = await leader_and_followers(cluster)
            proc = start_owner(cluster, "held", [*followers, leader])
            try:
                token = await read_token(proc)
                await cluster.kill(cluster.index_of(leader))
                await new_leader(cluster, leader)
                async with open_client(cluster.bootstrap, cookie=cluster.cookie, timeout=10) as kv:
                    await trio.sleep(2)  # the owner's node links to the new leader meanwhile
                    assert [(lock.key, lock.token) for lock in await kv.list_locks()] == [(b"held", token)]
                    proc.send_signal(signal.SIGKILL)
                    killed_at = trio.current_time()
                    while await kv.list_locks():
                        assert trio.current_time() - killed_at < 3.0, "the dead owner's lock was not released"
                        await trio.sleep(0.05)
            finally:
                stop(proc)


async def test_an_unreachable_owner_is_released_when_its_grace_runs_out() -> None:
    # An owner whose node never links to the new leader (its keeper cannot: the node is frozen).
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False, config={"owner_grace_period": 3000}) as cluster:
            leader, followers = await leader_and_followers(cluster)
            proc = start_owner(cluster, "frozen", [leader])  # it knows the leader only
            try:
                await read_token(proc)
                proc.send_signal(signal.SIGSTOP)
                await cluster.kill(cluster.index_of(leader))
                await new_leader(cluster, leader)
                started = trio.current_time()
                async with open_client(cluster.bootstrap, cookie=cluster.cookie, nodes=followers, timeout=10) as kv:
                    while await kv.list_locks():
                        assert trio.current_time() - started < 8.0, "the unreachable owner kept its lock"
                        await trio.sleep(0.1)
                    assert trio.current_time() - started > 1.0  # not at once: it had its grace
            finally:
                stop(proc)


async def test_global_client_in_an_actor_on_a_dial_only_node_keeps_links_to_every_member() -> None:
    class Holder(ergo_py.Actor):
        async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
            client = GlobalClient(request, self, timeout=10)
            return (await client.lock("mine")).token

    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            options = ergo_py.NodeOptions(cookie=cluster.cookie, routes=cluster.routes)
            async with ergo_py.start_node("holder@localhost", options) as node:
                pid = await node.spawn(Holder)
                assert await node.call(pid, cluster.names, timeout=15) > 0
                with trio.fail_after(5):
                    while sorted(node.connected_nodes()) != sorted(cluster.names):
                        await trio.sleep(0.1)
                # A dropped link is dialled again (the keeper checks every second).
                node.disconnect(cluster.names[1])
                with trio.fail_after(5):
                    while cluster.names[1] not in node.connected_nodes():
                        await trio.sleep(0.1)
                # The keeper ends with the process it keeps links for.
                keepers = [p for p in node.processes() if p != pid and node.process_info(p).behavior == "LinkKeeper"]
                assert len(keepers) == 1
                node.kill(pid)
                with trio.fail_after(5):
                    while node.is_alive(keepers[0]):
                        await trio.sleep(0.05)
