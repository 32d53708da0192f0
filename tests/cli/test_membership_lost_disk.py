"""A member restarted on an emptied data dir (a lost disk) stops at once with one line that says
what to do, exits non-zero, and is not restarted in a loop; doing what it says brings it back."""

from __future__ import annotations

import io
from pathlib import Path

import trio

from global_kv.cli import LocalCluster, NodeStartError
from global_kv.cli import ctl as run_ctl


async def ctl(cluster: LocalCluster, *argv: str, peers: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"BOOTSTRAP": peers or cluster.bootstrap, "COOKIE": cluster.cookie}
    code = await run_ctl(list(argv), env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_a_member_on_a_lost_disk_stops_with_one_line_and_is_replaced_as_it_says(tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with LocalCluster(3, data_dir=tmp_path, metrics=False) as cluster:
            leader = await cluster.wait_for_leader()
            victim = next(i for i in range(3) if i != leader)
            node = cluster.nodes[victim]
            async with cluster.open_client(timeout=10) as kv:
                for i in range(50):
                    await kv.put(f"k{i}", b"%d" % i)
            await cluster.kill(victim)
            cluster.wipe(victim)
            assert not any(node.data_dir.iterdir())
            log_start = node.log_path.stat().st_size
            # Named in BOOTSTRAP with an empty data dir: a first start as far as it can tell, so it
            # starts; the leader's first heartbeat then says it held entries it no longer has.
            try:
                await cluster.start_node(victim)
            except NodeStartError as exc:
                # The leader's first heartbeat can come before the node says READY: the same stop.
                assert "lost its Raft log" in str(exc), exc
                code = node.exit_codes[-1]
            else:
                code = await cluster.wait_exit(victim, 15)
            with node.log_path.open("rb") as f:
                f.seek(log_start)
                log = f.read().decode(errors="replace")
            assert code == 1, log
            assert "Traceback" not in log and "process crashed" not in log, log
            assert log.count("lost its Raft log") == 2, log  # the replica's log line, the command's last line
            last = log.strip().splitlines()[-1]
            assert last.startswith(f"global-kv node: {node.name} stopped: global@{node.name} lost its Raft log")
            for step in (
                f"global-kv ctl remove-peer {node.name}",
                "wipe its DATA_DIR",
                "non-member",
                "ROUTES",
                f"global-kv ctl add-peer {node.name}",
            ):
                assert step in last, last
            assert log.count("recorded as") == 1  # the replica started once: no crash loop
            assert cluster.nodes[leader].running and all(n.running for n in cluster.nodes if n is not node)

            # What the line says: remove it, wipe it, start it as a non-member, add it again.
            code, out, err = await ctl(cluster, "remove-peer", node.name)
            assert code == 0, err
            node.member = False  # out of BOOTSTRAP: the others reach it through the address they know
            cluster.wipe(victim)
            await cluster.start_node(victim)
            assert node.ready_fields["member"] == "no"
            code, out, err = await ctl(cluster, "add-peer", node.name)
            assert code == 0 and "committed" in out, (out, err)
            with trio.fail_after(20):
                while True:
                    code, out, _ = await ctl(
                        cluster, "get", "k49", "--consistency", "follower", "--node", node.name, peers=cluster.all_peers
                    )
                    if out == "49\n":
                        break
                    await trio.sleep(0.1)
            code, out, _ = await ctl(cluster, "members")
            assert code == 0 and node.name in out
