"""`global-kv ctl` commands that ask every member fail when one does not answer, after printing the rest."""

from __future__ import annotations

import json

import trio
from prometheus_client.parser import text_string_to_metric_families

from global_kv.cli import EXIT_OK, LocalCluster
from tests.cli.test_ctl import ctl, one_line


async def test_metrics_and_snapshot_fail_naming_a_dead_member_and_print_the_others() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            assert (await ctl(cluster, "put", "k", "v"))[0] == 0
            dead = cluster.names[2]
            assert await cluster.stop(2) == 0
            alive = cluster.names[:2]

            code, out, err = await ctl(cluster, "snapshot", "--timeout", "2")
            assert code != EXIT_OK and dead in one_line(err), err
            assert [line.split(":")[0] for line in out.splitlines()] == alive
            code, out, err = await ctl(cluster, "snapshot", "--json", "--timeout", "2")
            assert code != EXIT_OK and dead in one_line(err)
            assert [row["node"] for row in json.loads(out) if "index" in row] == alive

            code, out, err = await ctl(cluster, "metrics", "--timeout", "2")
            assert code != EXIT_OK and dead in one_line(err), err
            nodes = {
                s.labels["node"]
                for family in text_string_to_metric_families(out)
                for s in family.samples
                if s.name == "global_is_leader"
            }
            assert nodes == set(alive)
            code, _, err = await ctl(cluster, "metrics", "--node", alive[0])
            assert (code, err) == (EXIT_OK, "")
