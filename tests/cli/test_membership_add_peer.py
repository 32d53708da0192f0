"""`global-kv ctl add-peer NODE` refuses a node the leader cannot reach and authenticate, before
proposing anything: the membership and the quorum stay as they were. Real node processes."""

from __future__ import annotations

import io

import trio

from global_kv.cli import EXIT_OUTCOME, LocalCluster
from global_kv.cli import ctl as run_ctl


async def ctl(cluster: LocalCluster, *argv: str, peers: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"BOOTSTRAP": peers or cluster.bootstrap, "COOKIE": cluster.cookie}
    code = await run_ctl(list(argv), env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def leader_view(cluster: LocalCluster) -> tuple[int, list[str]]:
    """The leader's (commit index, members)."""
    async with cluster.open_client_node() as client:
        with trio.fail_after(10):
            while True:
                for st in (await cluster.statuses(client)).values():
                    if st is not None and st.is_leader:
                        return st.commit_index, sorted(p.node for p in st.peers)
                await trio.sleep(0.05)


async def test_add_peer_of_a_node_that_does_not_run_is_refused_before_anything_is_proposed() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, spares=1, metrics=False) as cluster:
            await cluster.wait_for_leader()
            assert (await ctl(cluster, "put", "k", "v"))[0] == 0
            commit_before, members_before = await leader_view(cluster)
            await cluster.kill(3)  # the spare: routed to, but not running
            for ghost in ("n9@localhost", cluster.nodes[3].name):
                started = trio.current_time()
                code, out, err = await ctl(cluster, "add-peer", ghost)
                assert code == EXIT_OUTCOME and out == "", (code, out, err)
                line = err.strip()
                assert "\n" not in line and "Traceback" not in err
                assert "rejected" in line and "cannot connect to" in line and ghost in line, line
                assert trio.current_time() - started < 5
            # Nothing was proposed: the same members, so the same quorum, and writes still commit.
            commit_after, members_after = await leader_view(cluster)
            assert members_after == members_before and commit_after == commit_before
            assert (await ctl(cluster, "put", "k2", "v2"))[0] == 0
            # Once the spare runs, the same command adds it.
            await cluster.start_node(3)
            code, out, err = await ctl(cluster, "add-peer", cluster.nodes[3].name)
            assert code == 0 and "committed" in out, (out, err)
