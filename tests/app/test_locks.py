"""Distributed locks on a 3-node cluster: mutual exclusion, fencing, waiters, TTL, owner death."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv import FencedResource, LockHeld, LockNotHeld, LockTimeout, StaleToken, TooManyWaiters
from global_kv.client import GlobalClient, open_client
from global_kv.protocol import LockRequest, SessionTag

from .test_global_cluster import NAMES, cluster, leader_of


async def test_try_lock_unlock_and_fencing_tokens_increase() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as a, open_client(nodes[NAMES[1]], NAMES) as b:
                h1 = await a.try_lock("job")
                with pytest.raises(LockHeld) as info:
                    await b.try_lock("job")
                assert info.value.token == h1.token and info.value.holder == a.process.pid
                other = await b.try_lock("other-key")
                assert other.token > h1.token
                with pytest.raises(StaleToken):
                    await b.unlock("job", h1.token - 1)  # a wrong token releases nothing
                await h1.unlock()
                h2 = await b.try_lock("job")
                assert h2.token > other.token
                locks = await a.list_locks()
                assert {(lk.key, lk.token) for lk in locks} == {(b"job", h2.token), (b"other-key", other.token)}


async def test_waiters_are_served_in_order_and_time_out() -> None:
    with trio.fail_after(30):
        async with cluster(max_lock_waiters=2) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as holder:
                handle = await holder.try_lock("k")
                order: list[str] = []
                async with trio.open_nursery() as n:

                    async def waiter(name: str, delay: float) -> None:
                        await trio.sleep(delay)
                        async with open_client(nodes[NAMES[1]], NAMES, timeout=10) as c:
                            async with c.locked("k", timeout=5):
                                order.append(name)

                    n.start_soon(waiter, "first", 0.0)
                    n.start_soon(waiter, "second", 0.2)
                    await trio.sleep(0.5)
                    async with open_client(nodes[NAMES[2]], NAMES) as third:
                        with pytest.raises(TooManyWaiters):
                            await third.lock_with_timeout("k", 0, 1.0)
                    await handle.unlock()
                assert order == ["first", "second"]
                await holder.try_lock("k")
                async with open_client(nodes[NAMES[1]], NAMES) as late:
                    start = trio.current_time()
                    with pytest.raises(LockTimeout):
                        await late.lock_with_timeout("k", 0, 0.5)
                    assert trio.current_time() - start < 3


async def test_owner_death_releases_and_next_waiter_gets_it() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            node = nodes[NAMES[1]]
            doomed_client = await node.spawn(_Holder)
            token = await node.call(doomed_client, ("lock", "res", 0.0))
            async with open_client(nodes[NAMES[2]], NAMES, timeout=10) as waiter:
                async with trio.open_nursery() as n:
                    got: list[int] = []

                    async def wait_for_it() -> None:
                        h = await waiter.lock_with_timeout("res", 0, 8)
                        got.append(h.token)

                    n.start_soon(wait_for_it)
                    await trio.sleep(0.3)
                    killed_at = trio.current_time()
                    node.kill(doomed_client)
                with trio.fail_after(1):
                    pass
                assert got and got[0] > token
                assert trio.current_time() - killed_at < 2


async def test_ttl_expires_and_refresh_extends() -> None:
    with trio.fail_after(30):
        async with cluster(lock_check_interval=50) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as a, open_client(nodes[NAMES[1]], NAMES) as b:
                h = await a.lock_with_ttl("ttl", 0.6)
                for _ in range(3):
                    await trio.sleep(0.3)
                    await h.refresh()
                with pytest.raises(LockHeld):
                    await b.try_lock("ttl")  # kept alive past its first TTL by refreshes
                await trio.sleep(1.0)
                h2 = await b.try_lock("ttl")  # expired: a paused holder lost it
                assert h2.token > h.token
                with pytest.raises(StaleToken):
                    await h.unlock()


async def test_leader_change_keeps_holder_and_token_and_new_leader_releases_dead_owner() -> None:
    with trio.fail_after(40):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES, timeout=10) as probe:
                leader = await leader_of(probe)
            owner_node = next(n for n in NAMES if n != leader)
            holder = await nodes[owner_node].spawn(_Holder)
            token = await nodes[owner_node].call(holder, ("lock", "held", 0.0))
            await nodes[leader].application_stop("global")
            survivor = next(n for n in NAMES if n != leader)
            async with open_client(nodes[survivor], [n for n in NAMES if n != leader], timeout=10) as c:
                await c.put("sync", b"1")
                [info] = [lk for lk in await c.list_locks() if lk.key == b"held"]
                assert (info.owner, info.token) == (holder, token)
                nodes[owner_node].kill(holder)
                with trio.fail_after(5):
                    while any(lk.key == b"held" for lk in await c.list_locks()):
                        await trio.sleep(0.05)


async def test_mutual_exclusion_under_contention_with_fenced_counter() -> None:
    resource = FencedResource("counter")
    state = {"value": 0, "inside": 0, "max_inside": 0}
    with trio.fail_after(60):
        async with cluster() as nodes:
            async with trio.open_nursery() as n:

                async def worker(node_name: str) -> None:
                    async with open_client(nodes[node_name], NAMES, timeout=20) as c:
                        for _ in range(5):
                            async with c.locked("counter", timeout=15) as h:
                                resource.check(h.token)
                                state["inside"] += 1
                                state["max_inside"] = max(state["max_inside"], state["inside"])
                                value = state["value"]
                                await trio.sleep(0.005)
                                state["value"] = value + 1
                                state["inside"] -= 1

                for i in range(6):
                    n.start_soon(worker, NAMES[i % 3])
    assert state["value"] == 30 and state["max_inside"] == 1
    assert resource.rejected == 0 and resource.accepted == 30


class _Holder(e.Actor):
    """An actor that takes a lock through its own GlobalClient and holds it."""

    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        op, key, ttl = request
        client = GlobalClient(NAMES, self, timeout=10)
        handle = await client.lock_with_ttl(key, ttl)
        return handle.token


async def test_owner_os_process_sigkilled_next_waiter_gets_the_lock() -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from .test_global_cluster import COOKIE

    script = Path(__file__).resolve().parent / "lock_owner_node.py"
    with trio.fail_after(60):
        async with cluster() as nodes:
            routes = [f"{n}=ws://127.0.0.1:{nodes[n].port}" for n in NAMES]
            env = dict(os.environ, ERGO_COOKIE=COOKIE)
            proc = subprocess.Popen(
                [sys.executable, str(script), "shared", *routes],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            try:
                line = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)  # type: ignore[union-attr]
                assert line.startswith(b"TOKEN "), line
                token = int(line.split()[1])
                async with open_client(nodes[NAMES[0]], NAMES, timeout=15) as waiter:
                    got: list[tuple[int, float]] = []
                    async with trio.open_nursery() as n:

                        async def wait_for_it() -> None:
                            h = await waiter.lock_with_timeout("shared", 0, 10)
                            got.append((h.token, trio.current_time()))

                        n.start_soon(wait_for_it)
                        await trio.sleep(0.3)
                        proc.send_signal(signal.SIGKILL)
                        killed_at = trio.current_time()
                    assert got and got[0][0] > token
                    assert got[0][1] - killed_at < 2.0
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)


async def test_a_retried_acquire_never_returns_a_grant_that_expired_meanwhile() -> None:
    """A retry after a failover is answered from its session; if the grant it names has
    expired (and maybe gone to someone else) since, the answer is LockNotHeld, not it."""
    with trio.fail_after(30):
        async with cluster(lock_check_interval=50) as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as a, open_client(nodes[NAMES[1]], NAMES) as b:
                leader = ProcessID("global", await leader_of(a))
                owner = a.process.pid
                first = LockRequest(b"retried", owner, 0.3, 0.0, SessionTag("retrying-client", 1, 0))
                granted = await a.process.call(leader, first, timeout=5)
                # The same request again while the grant holds: the same grant (exactly once).
                assert await a.process.call(leader, first, timeout=5) == granted
                await trio.sleep(0.8)  # the TTL runs out: the lock is free again
                with pytest.raises(LockNotHeld):
                    await a.process.call(leader, first, timeout=5)
                # Taken by someone else meanwhile: refused as held, grant or no grant before.
                other = await b.try_lock("retried")
                assert other.token > granted
                with pytest.raises(LockHeld):
                    await a.process.call(leader, first, timeout=5)


async def test_an_owner_asking_again_for_its_own_lock_is_told_at_once_not_queued() -> None:
    with trio.fail_after(30):
        async with cluster() as nodes:
            async with open_client(nodes[NAMES[0]], NAMES) as a:
                held = await a.lock("mine")
                # Locks are not re-entrant. Queued behind itself it would end in LockTimeout.
                with pytest.raises(LockHeld) as info:
                    await a.lock_with_timeout("mine", 0.0, 3.0)
                assert info.value.token == held.token
                await held.unlock()
