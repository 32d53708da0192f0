"""`global-kv ctl` sends its first request at once: no member is dialed before it just to check."""

from __future__ import annotations

import trio

from global_kv.cli import EXIT_CONNECT, ConnectError, LocalCluster, open_session, parse_bootstrap
from tests.cli.test_ctl import ctl, one_line


async def test_the_first_request_needs_no_probe_of_every_member() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            peers = parse_bootstrap(cluster.bootstrap)
            async with open_session(peers, cookie=cluster.cookie, probe_first=False) as session:
                assert session.node.connected_nodes() == []
                await session.run(lambda: session.client.put("k", b"v"))
                # Only the member(s) the request went through were dialed, not all three.
                assert len(session.node.connected_nodes()) < 3
                assert session.problems == {}

            # A wrong cookie is still told apart from a timeout, well within the request's timeout.
            async with open_session(peers, cookie="not-the-cookie", timeout=10, probe_first=False) as session:
                start = trio.current_time()
                try:
                    await session.run(lambda: session.client.get("k"))
                except ConnectError as exc:
                    assert all("wrong cookie" in why for why in exc.problems.values()), exc
                else:
                    raise AssertionError("a wrong cookie was accepted")
                assert trio.current_time() - start < 5


async def test_a_cluster_that_is_all_down_is_a_connect_error_for_every_command() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            peers = cluster.bootstrap
            for i in range(3):
                assert await cluster.stop(i) == 0
            for argv in (["get", "k"], ["status"], ["members"], ["snapshot"]):
                code, _, err = await ctl(cluster, *argv, "--timeout", "2", peers=peers)
                assert code == EXIT_CONNECT and "unreachable" in one_line(err), (argv, err)
