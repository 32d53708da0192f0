"""The fault-injecting proxy and the partition plans: bytes flow, stall, resume intact, or reset.

Loopback only: an upstream TCP server on 127.0.0.1:0 plays the node being dialled.
The last test runs a real 3-node cluster through the mesh and isolates its leader.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from ergo_py import ProcessID
from global_kv.cli import LocalCluster
from global_kv.client import open_client
from global_kv.protocol import StatusRequest

from ._partition import PARTITION_KINDS, hold_partition, open_cluster, plan_partition
from ._proxy import ProxyError, ProxyMesh, open_proxy_mesh
from ._run import JepsenConfig


class Upstream:
    """A TCP server whose accepted connections the test takes from `accepted`."""

    def __init__(self, port: int, accepted: trio.MemoryReceiveChannel[trio.SocketStream]) -> None:
        self.port = port
        self.accepted = accepted

    async def next(self, timeout: float = 5.0) -> trio.SocketStream:
        with trio.fail_after(timeout):
            return await self.accepted.receive()


@asynccontextmanager
async def upstream_server() -> AsyncIterator[Upstream]:
    send, receive = trio.open_memory_channel[trio.SocketStream](100)

    async def handler(stream: trio.SocketStream) -> None:
        await send.send(stream)
        await trio.sleep_forever()  # serve_tcp closes the stream when the handler returns

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield Upstream(listeners[0].socket.getsockname()[1], receive)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def mesh_to(up: Upstream) -> AsyncIterator[ProxyMesh]:
    """A mesh where nodes "a" and "b" both live at the upstream server."""
    async with open_proxy_mesh(lambda name: ("127.0.0.1", up.port)) as mesh:
        yield mesh


async def dial(mesh: ProxyMesh, src: str, dst: str) -> trio.SocketStream:
    port = int(mesh.route(src, dst).rsplit(":", 1)[1])
    return await trio.open_tcp_stream("127.0.0.1", port)


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, f"end of stream after {len(data)} of {n} bytes"
        data += chunk
    return data


async def assert_silent(stream: trio.SocketStream, seconds: float = 0.3) -> None:
    with trio.move_on_after(seconds):
        chunk = await stream.receive_some(1)
        raise AssertionError(f"received {chunk!r} through a cut")


async def test_forwards_both_ways_and_routes_are_stable() -> None:
    with trio.fail_after(10):
        async with upstream_server() as up, mesh_to(up) as mesh:
            assert mesh.route("a", "b") == mesh.route("a", "b") != mesh.route("b", "a")
            assert mesh.routes_for("a", ["a", "b", "c"]).keys() == {"b", "c"}
            client = await dial(mesh, "a", "b")
            server = await up.next()
            await client.send_all(b"ping")
            assert await receive_exactly(server, 4) == b"ping"
            await server.send_all(b"pong!")
            assert await receive_exactly(client, 5) == b"pong!"
            # A half-close passes through, and the other direction keeps working.
            await client.send_eof()
            assert await server.receive_some(10) == b""
            await server.send_all(b"late")
            assert await receive_exactly(client, 4) == b"late"
            await server.aclose()
            assert await client.receive_some(10) == b""
            await client.aclose()
            assert mesh.statistics().bytes_forwarded == 4 + 5 + 4
            with pytest.raises(ProxyError):
                mesh.route("a", "a")


async def test_drop_stalls_both_directions_then_delivers_everything_intact_after_heal() -> None:
    payload = bytes(range(256)) * 32768  # 8 MiB: more than socket buffers hold, so the sender blocks
    with trio.fail_after(20):
        async with upstream_server() as up, mesh_to(up) as mesh:
            client = await dial(mesh, "a", "b")
            server = await up.next()
            other = await dial(mesh, "b", "a")  # the reverse route: the same pair
            other_server = await up.next()
            mesh.cut("b", "a", "drop")
            assert mesh.cuts() == {frozenset(("a", "b")): "drop"}
            sent = trio.Event()
            async with trio.open_nursery() as nursery:

                async def send_payload() -> None:
                    await client.send_all(payload)
                    sent.set()

                nursery.start_soon(send_payload)
                await server.send_all(b"reply")
                await other.send_all(b"x")
                await assert_silent(server)
                await assert_silent(client)
                await assert_silent(other_server, 0.05)
                assert not sent.is_set()  # back-pressure: nothing drains the sender's buffers
                # A new connection is accepted but not connected onwards while the cut lasts.
                late = await dial(mesh, "a", "b")
                with trio.move_on_after(0.2):
                    await up.next()
                    raise AssertionError("a connection went through a drop cut")
                assert mesh.statistics().held == 1
                mesh.heal()
                assert await receive_exactly(server, len(payload)) == payload
                assert await receive_exactly(client, 5) == b"reply"
                assert await receive_exactly(other_server, 1) == b"x"
                late_server = await up.next()
                await late.send_all(b"after")
                assert await receive_exactly(late_server, 5) == b"after"
            assert sent.is_set()
            for s in (client, server, other, other_server, late, late_server):
                await s.aclose()


async def test_reset_closes_every_connection_of_the_pair_and_refuses_new_ones_until_healed() -> None:
    with trio.fail_after(10):
        async with upstream_server() as up, mesh_to(up) as mesh:
            client = await dial(mesh, "a", "b")
            server = await up.next()
            reverse = await dial(mesh, "b", "a")
            reverse_server = await up.next()
            bystander = await dial(mesh, "a", "c")  # another pair: untouched
            bystander_server = await up.next()
            await client.send_all(b"before")
            assert await receive_exactly(server, 6) == b"before"
            mesh.cut("a", "b", "reset")
            for stream in (client, server, reverse, reverse_server):
                with pytest.raises(trio.BrokenResourceError):  # an RST, not a clean end of stream
                    await stream.receive_some(10)
            refused = await dial(mesh, "a", "b")
            with pytest.raises(trio.BrokenResourceError):
                await refused.receive_some(10)
            with trio.move_on_after(0.2):
                await up.next()
                raise AssertionError("a connection went through a reset cut")
            await bystander.send_all(b"ok")
            assert await receive_exactly(bystander_server, 2) == b"ok"
            assert mesh.statistics().resets >= 3
            mesh.heal("b", "a")
            again = await dial(mesh, "a", "b")
            again_server = await up.next()
            await again_server.send_all(b"back")
            assert await receive_exactly(again, 4) == b"back"
            for s in (
                client,
                server,
                reverse,
                reverse_server,
                refused,
                bystander,
                bystander_server,
                again,
                again_server,
            ):
                await s.aclose()


async def test_a_reset_from_one_end_crosses_a_drop_cut_only_once_healed() -> None:
    with trio.fail_after(10):
        async with upstream_server() as up, mesh_to(up) as mesh:
            client = await dial(mesh, "a", "b")
            server = await up.next()
            mesh.cut("a", "b", "drop")
            # The node dies (kill -9): its end resets. Behind a DROP that reset is lost too.
            server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await server.aclose()
            await assert_silent(client)
            mesh.heal()
            with pytest.raises(trio.BrokenResourceError):
                await client.receive_some(10)
            await client.aclose()


def test_partitions_can_be_turned_off() -> None:
    assert not set(JepsenConfig(partitions=False).kinds()) & set(PARTITION_KINDS)
    assert set(PARTITION_KINDS) <= set(JepsenConfig().kinds())
    with pytest.raises(ValueError):
        JepsenConfig(partitions=False, fault_kinds=("kill-leader", "partition-bridge")).kinds()


async def test_heal_is_idempotent_and_a_bad_mode_is_refused() -> None:
    with trio.fail_after(10):
        async with upstream_server() as up, mesh_to(up) as mesh:
            mesh.heal()
            mesh.heal("a", "b")
            mesh.cut("a", "b", "drop")
            mesh.cut("a", "b", "drop")
            mesh.heal("a", "b")
            mesh.heal("a", "b")
            mesh.heal()
            assert mesh.cuts() == {}
            client = await dial(mesh, "a", "b")
            server = await up.next()
            await client.send_all(b"fine")
            assert await receive_exactly(server, 4) == b"fine"
            with pytest.raises(ProxyError):
                mesh.cut("a", "b", "corrupt")
            with pytest.raises(ProxyError):
                mesh.heal("a")
            await client.aclose()
            await server.aclose()


async def test_every_listener_and_connection_is_closed_at_exit_even_on_error() -> None:
    ports: list[int] = []
    held: trio.SocketStream | None = None
    with trio.fail_after(10):
        async with upstream_server() as up:
            with pytest.raises(RuntimeError, match="boom"):
                async with mesh_to(up) as mesh:
                    for src, dst in (("a", "b"), ("b", "a"), ("a", "c")):
                        ports.append(int(mesh.route(src, dst).rsplit(":", 1)[1]))
                    held = await dial(mesh, "a", "c")
                    mesh.cut("a", "c", "drop")  # a cut left in place must not keep anything open
                    assert mesh.statistics().listeners == 3
                    raise RuntimeError("boom")
            assert mesh.statistics().listeners == 0
            assert mesh.statistics().connections == 0
            with pytest.raises(ProxyError):
                mesh.route("a", "d")
            assert held is not None
            assert await held.receive_some(10) == b""
            await held.aclose()
    for port in ports:
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)


@pytest.mark.parametrize("n", [3, 5])
def test_partition_plans_cut_the_right_pairs(n: int) -> None:
    members = [f"n{i}@localhost" for i in range(1, n + 1)]
    for pick in range(40):
        target = members[pick % n]
        for kind in PARTITION_KINDS:
            plan = plan_partition(kind, members, target, pick)
            assert plan == plan_partition(kind, members, target, pick)
            cut = {frozenset(c) for c in plan.cuts}
            assert all(len(c) == 2 for c in cut)

            def reach(a: str, b: str) -> bool:
                return a == b or frozenset((a, b)) not in cut  # noqa: B023

            if kind in ("partition-leader", "partition-random"):
                assert plan.sides[0] == plan.minority() == (target,)
                assert len(cut) == n - 1 and all(target in c for c in cut)
            elif kind == "partition-majority":
                small, large = plan.sides
                assert target in small and len(small) == n // 2 and len(large) == n - n // 2
                assert len(cut) == len(small) * len(large)
                assert plan.minority() == small
            else:
                assert plan.minority() == ()  # both sides of a bridge hold a majority
                left, right = plan.sides
                assert target in left and target in right
                assert all(reach(target, m) for m in members)
                assert len(left) >= (n + 1) // 2 and len(right) >= (n + 1) // 2  # each side a majority
                assert all(not reach(a, b) for a in left for b in right if target not in (a, b))
        modes = {plan_partition("partition-random", members, members[0], p).mode for p in range(0, 4096, 256)}
    assert modes == {"drop", "reset"}
    with pytest.raises(ProxyError):
        plan_partition("partition-leader", members, "zz@localhost", 1)


@asynccontextmanager
async def _quiet_cluster_behind_the_proxy(
    **options: Any,
) -> AsyncIterator[tuple[LocalCluster, ProxyMesh, str, Any, Any]]:
    """A 3-node cluster through the proxy mesh, one write done and the group idle (quiet):
    (cluster, mesh, the leader's node name, a client, a probe node)."""
    settings: dict[str, Any] = {"log_level": "WARNING", "metrics": False, **options}
    async with open_cluster(3, partitions=True, **settings) as (cluster, mesh):
        assert mesh is not None
        leader = await cluster.wait_for_leader(20)
        with trio.fail_after(5):
            while mesh.statistics().connections < 2:  # the leader's links run through the proxy
                await trio.sleep(0.05)
        async with cluster.open_client(timeout=10) as kv, cluster.open_client_node() as probe:
            await kv.put("before", b"1")
            await trio.sleep(1.0)  # idle: the group goes quiet, the harder case
            yield cluster, mesh, cluster.nodes[leader].name, kv, probe


async def test_an_isolated_leader_is_replaced_and_the_cluster_converges_after_heal() -> None:
    with trio.fail_after(90):
        async with _quiet_cluster_behind_the_proxy() as (cluster, mesh, old, kv, probe):
            leader = cluster.names.index(old)

            async def leaders() -> set[str]:
                return {name for name, st in (await cluster.statuses(probe)).items() if st and st.is_leader}

            async def still_leads(name: str) -> bool:
                st = (await cluster.statuses(probe))[name]
                return st is None or st.is_leader

            plan = plan_partition("partition-leader", cluster.names, old, pick=0)
            assert plan.mode == "drop"
            stale: list[str] = ["not returned"]

            async def partition() -> None:
                stale[:] = await hold_partition(mesh, plan, 4.0, leaders)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(partition)
                await trio.sleep(0.1)
                # Quiet, nobody notices the cut by itself: the write wakes the replicas it
                # reaches, the majority side elects and commits it.
                await kv.put("during", b"2")
                new = await cluster.wait_for_leader(10, exclude=[leader])
                with trio.fail_after(3):
                    while await still_leads(old):
                        await trio.sleep(0.1)  # CheckQuorum: the isolated leader steps down
            assert stale == []
            assert mesh.cuts() == {}
            assert cluster.nodes[new].name != old
            await kv.put("after", b"3")
            with trio.fail_after(15):
                while True:
                    states = []
                    for name in cluster.names:
                        async with open_client(probe, [name], timeout=2, consistency="follower") as c:
                            states.append(dict(await c.range(None, None)))
                    if all(s == {b"before": b"1", b"during": b"2", b"after": b"3"} for s in states):
                        break
                    await trio.sleep(0.2)
            pids = [n.pid for n in cluster.nodes]
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_quiet_leader_cut_off_steps_down_once_asked_for_its_status() -> None:
    """A partition that drops packets: a quiet leader hears nothing and would notice only
    when its links' heartbeats give up (15-20 s). Asked for its status, it checks its
    quorum (a heartbeat round nobody answers) and steps down within an election timeout."""
    with trio.fail_after(60):
        async with _quiet_cluster_behind_the_proxy() as (cluster, mesh, old, kv, probe):
            plan = plan_partition("partition-leader", cluster.names, old, pick=0)
            target = ProcessID("global", old)
            for a, b in plan.cuts:
                mesh.cut(a, b, plan.mode)
            try:
                start = trio.current_time()
                with trio.fail_after(8):  # well before the links' heartbeats give up
                    while (await probe.call(target, StatusRequest(), timeout=1)).is_leader:
                        await trio.sleep(0.1)
                assert trio.current_time() - start < 3.0
            finally:
                for a, b in plan.cuts:
                    mesh.heal(a, b)
            await kv.put("after", b"2")


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_both_health_endpoints_say_unhealthy_on_a_member_cut_off_while_quiet() -> None:
    """etcd 3.5's /health reads through the member asked (linearizable unless
    ?serializable=true), and so does our own /health: a follower of a quiet group, cut
    off silently, still knows a leader, but its read cannot reach it, so both answer 503."""
    with trio.fail_after(60):
        async with _quiet_cluster_behind_the_proxy(etcd_api=True, metrics=True) as (cluster, mesh, old, kv, probe):
            follower = next(n for n in cluster.nodes if n.name != old)
            health = f"{follower.client_url}/health"
            for url in (health, health + "?serializable=true"):
                assert await trio.to_thread.run_sync(_get_json, url) == (200, {"health": "true", "reason": ""})
            ours = f"{follower.metrics_url}/health"
            assert (await trio.to_thread.run_sync(_get_json, ours))[1]["status"] == "ok"
            await trio.sleep(1.0)  # quiet again
            cuts = [(follower.name, n.name) for n in cluster.nodes if n is not follower]
            for a, b in cuts:
                mesh.cut(a, b, "drop")
            try:
                code, body = await trio.to_thread.run_sync(_get_json, ours)  # the first to ask
                assert code == 503 and not body["has_quorum"] and "did not complete" in body["reasons"][0], body
                code, body = await trio.to_thread.run_sync(_get_json, health)
                assert code == 503 and body["health"] == "false", body
            finally:
                for a, b in cuts:
                    mesh.heal(a, b)
            with trio.fail_after(20):
                while await trio.to_thread.run_sync(_get_json, health) != (200, {"health": "true", "reason": ""}):
                    await trio.sleep(0.2)
