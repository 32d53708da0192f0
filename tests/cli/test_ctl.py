"""`global-kv ctl` against a real cluster of node processes: outputs and exit codes."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from global_kv.cli import EXIT_CONNECT, EXIT_OUTCOME, EXIT_UNAVAILABLE, LocalCluster
from global_kv.cli import ctl as run_ctl


async def ctl(
    cluster: LocalCluster, *argv: str, cookie: str | None = None, peers: str | None = None
) -> tuple[int, str, str]:
    """Run one ctl command in this process, as the console script would: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    env = {"BOOTSTRAP": peers or cluster.bootstrap, "COOKIE": cookie or cluster.cookie}
    code = await run_ctl(list(argv), env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def ctl_process(cluster: LocalCluster, *argv: str) -> tuple[int, str, str]:
    """The same through the real entry point, in its own OS process."""
    env = {"BOOTSTRAP": cluster.bootstrap, "COOKIE": cluster.cookie, "PATH": "/usr/bin:/bin"}
    result = await trio.run_process(
        [sys.executable, "-m", "global_kv.cli", "ctl", *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


async def test_kv_commands_print_results_and_exit_codes() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            assert await ctl(cluster, "put", "greeting", "hello") == (0, "OK\n", "")
            assert await ctl(cluster, "get", "greeting") == (0, "hello\n", "")
            code, out, err = await ctl(cluster, "get", "missing")
            assert (code, out) == (EXIT_OUTCOME, "") and "not found" in one_line(err)
            code, out, _ = await ctl(cluster, "--json", "get", "greeting")
            assert code == 0 and json.loads(out) == {"key": "greeting", "found": True, "value": "hello"}

            assert (await ctl(cluster, "cas", "counter", "--absent", "--new", "1"))[0] == 0
            code, out, err = await ctl(cluster, "cas", "counter", "--old", "5", "--new", "2", "--json")
            assert code == EXIT_OUTCOME and json.loads(out) == {"ok": False, "current": "1"}
            assert "cas failed" in one_line(err)
            assert (await ctl(cluster, "cas", "counter", "--old", "1", "--delete"))[0] == 0
            assert (await ctl(cluster, "get", "counter"))[0] == EXIT_OUTCOME

            for key in ("a/1", "a/2", "b"):
                assert (await ctl(cluster, "put", key, f"v-{key}"))[0] == 0
            assert await ctl(cluster, "prefix", "a/") == (0, "a/1\tv-a/1\na/2\tv-a/2\n", "")
            assert (await ctl(cluster, "range", "a/", "b", "--limit", "1"))[1] == "a/1\tv-a/1\n"
            code, out, _ = await ctl(cluster, "range", "", "", "--json")
            assert [row["key"] for row in json.loads(out)] == ["a/1", "a/2", "b", "greeting"]
            assert (await ctl(cluster, "delete", "a/1"))[0] == 0
            assert (await ctl(cluster, "prefix", "a/"))[1] == "a/2\tv-a/2\n"
            code, out, _ = await ctl(
                cluster, "get", "greeting", "--consistency", "read_index", "--node", "n2@localhost"
            )
            assert (code, out) == (0, "hello\n")

            code, out, _ = await ctl(cluster, "status")
            rows = out.strip().splitlines()
            assert code == 0 and rows[0].split()[:2] == ["NODE", "ROLE"] and len(rows) == 4
            assert sum(" leader " in row for row in rows) == 1
            code, out, _ = await ctl(cluster, "status", "--json")
            statuses = json.loads(out)
            assert {s["node"] for s in statuses} == set(cluster.names)
            assert len({s["leader"] for s in statuses}) == 1 and all(s["has_quorum"] for s in statuses)

            # The real console entry point: same answers, one stderr line, exit codes preserved.
            code, out, err = await ctl_process(cluster, "get", "greeting")
            assert (code, out, err) == (0, "hello\n", "")
            code, out, err = await ctl_process(cluster, "get", "nothing-here")
            assert code == EXIT_OUTCOME and out == "" and "not found" in one_line(err)


async def test_lock_commands_hand_a_lock_over_with_a_higher_token() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            results: dict[str, Any] = {}

            async def holder(name: str, *argv: str) -> None:
                results[name] = await ctl(cluster, "lock", "job", "--json", *argv)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(holder, "first", "--duration", "1.5")
                with trio.fail_after(10):
                    while True:
                        code, out, _ = await ctl(cluster, "locks", "--json")
                        if json.loads(out):
                            break
                        await trio.sleep(0.05)
                (held,) = json.loads(out)
                assert held["key"] == "job" and held["token"] > 0
                code, _, err = await ctl(cluster, "lock", "job")  # try once: it is held
                assert code == EXIT_OUTCOME and "held" in one_line(err)
                nursery.start_soon(holder, "second", "--wait", "10", "--duration", "0.1")
            first = [json.loads(line) for line in results["first"][1].splitlines()]
            second = [json.loads(line) for line in results["second"][1].splitlines()]
            assert [e["event"] for e in first] == ["locked", "released"] and results["first"][0] == 0
            assert [e["event"] for e in second] == ["locked", "released"] and results["second"][0] == 0
            assert first[0]["token"] == held["token"]
            assert second[0]["token"] > first[0]["token"]

            # unlock by token from another client; a second unlock with that token is refused,
            # and the holder learns at the end that its lock was lost
            async with trio.open_nursery() as nursery:
                nursery.start_soon(holder, "third", "--duration", "1.5")
                with trio.fail_after(10):
                    while not (locks := json.loads((await ctl(cluster, "locks", "--json"))[1])):
                        await trio.sleep(0.05)
                token = str(locks[0]["token"])
                assert await ctl(cluster, "unlock", "job", token) == (0, f"released job token={token}\n", "")
                code, _, err = await ctl(cluster, "unlock", "job", token)
                assert code == EXIT_OUTCOME and "not held" in one_line(err)
                assert json.loads((await ctl(cluster, "locks", "--json"))[1]) == []
            # with a TTL shorter than the hold, refreshes keep the lock until it is released
            await holder("ttl", "--ttl", "0.6", "--duration", "1.5")
            assert [json.loads(line)["event"] for line in results["ttl"][1].splitlines()] == ["locked", "released"]
            code, out, err = results["third"]
            assert code == EXIT_OUTCOME and "was lost" in one_line(err)
            assert [json.loads(line)["event"] for line in out.splitlines()] == ["locked", "lost"]


async def test_membership_snapshot_and_metrics_commands() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, spares=1, metrics=False) as cluster:
            await cluster.wait_for_leader()
            spare = cluster.nodes[3].name
            assert (await ctl(cluster, "put", "k", "v"))[0] == 0
            code, out, _ = await ctl(cluster, "add-peer", spare)
            assert code == 0 and "committed" in out
            code, out, _ = await ctl(cluster, "members", "--json")
            assert {m["node"] for m in json.loads(out)} == {*cluster.names, spare}
            with trio.fail_after(10):  # the new member catches up and serves from its own state
                while (
                    await ctl(
                        cluster, "get", "k", "--consistency", "follower", "--node", spare, peers=cluster.all_peers
                    )
                )[1] != "v\n":
                    await trio.sleep(0.05)
            code, _, err = await ctl(cluster, "add-peer", spare)
            assert code == EXIT_OUTCOME and "already a member" in one_line(err)
            assert (await ctl(cluster, "remove-peer", spare))[0] == 0
            code, out, _ = await ctl(cluster, "members")
            assert spare not in out and all(n in out for n in cluster.names)
            code, _, err = await ctl(cluster, "remove-peer", "n9@localhost")
            assert code == EXIT_OUTCOME and "not a member" in one_line(err)

            code, out, _ = await ctl(cluster, "snapshot", "--json")
            snaps = json.loads(out)
            assert code == 0 and {s["node"] for s in snaps} == set(cluster.names) and all(s["index"] > 0 for s in snaps)
            assert (await ctl(cluster, "compact", "--node", "n1@localhost"))[1].startswith(
                "n1@localhost: log compacted"
            )

            code, out, _ = await ctl(cluster, "metrics")
            leaders = {}
            for family in text_string_to_metric_families(out):
                for s in family.samples:
                    if s.name == "global_is_leader":
                        leaders[s.labels["node"]] = s.value
            assert code == 0 and set(leaders) == set(cluster.names) and sum(leaders.values()) == 1


async def test_wrong_cookie_unknown_node_and_no_quorum_are_one_line_errors() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            code, _, err = await ctl(cluster, "get", "k", cookie="not-the-cookie")
            assert code == EXIT_CONNECT and "wrong cookie" in one_line(err)
            impostor = f"n7@localhost={cluster.nodes[0].url}"  # someone else answers at that address
            code, _, err = await ctl(cluster, "get", "k", peers=impostor)
            assert code == EXIT_CONNECT and "not that node" in one_line(err)
            code, _, err = await ctl(cluster, "get", "k", "--node", "n9@localhost")
            assert code == EXIT_CONNECT and "not in the cluster" in one_line(err)

            for i in (1, 2):
                assert await cluster.stop(i) == 0
            code, _, err = await ctl(cluster, "put", "k", "v", "--timeout", "1.5")
            assert code == EXIT_UNAVAILABLE and "no quorum" in one_line(err)
            code, _, err = await ctl_process(cluster, "put", "k", "v", "--timeout", "1.5")
            assert code == EXIT_UNAVAILABLE and "no quorum" in one_line(err)
