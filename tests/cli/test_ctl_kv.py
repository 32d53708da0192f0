"""`global-kv ctl` for etcd's data model against a real cluster of node processes: get with
revisions and range options, compaction, a txn from stdin, watch, leases, elect, semaphore."""

from __future__ import annotations

import io
import json

import trio

from global_kv.cli import EXIT_OUTCOME, LocalCluster
from global_kv.cli import ctl as run_ctl

from .test_ctl import ctl


async def ctl_in(cluster: LocalCluster, stdin: bytes, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"BOOTSTRAP": cluster.bootstrap, "COOKIE": cluster.cookie}
    code = await run_ctl(list(argv), env=env, out=out, err=err, stdin=io.BytesIO(stdin))
    return code, out.getvalue(), err.getvalue()


async def test_get_with_revisions_and_range_options_compaction_and_a_txn() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            for key, value in (("app/b", "2"), ("app/a", "1"), ("app/c", "3")):
                assert (await ctl(cluster, "put", key, value))[0] == 0
            assert (await ctl(cluster, "put", "app/a", "10"))[0] == 0
            code, out, _ = await ctl(cluster, "get", "app/", "--prefix")
            assert (code, out) == (0, "app/a\t10\napp/b\t2\napp/c\t3\n")
            code, out, _ = await ctl(cluster, "--json", "get", "app/a", "--rev", "1")
            assert code == 0 and json.loads(out)["kvs"] == []
            code, out, _ = await ctl(cluster, "--json", "get", "app/a", "--prefix")
            first = json.loads(out)["kvs"][0]
            assert (first["value"], first["version"]) == ("10", 2)
            old = first["create_revision"]
            assert (await ctl(cluster, "get", "app/a", "--rev", str(old)))[1] == "app/a\t1\n"
            assert (
                await ctl(cluster, "get", "app/", "--prefix", "--keys-only", "--sort-by", "mod", "--order", "descend")
            )[1] == "app/a\napp/c\napp/b\n"
            assert (await ctl(cluster, "get", "app/", "--prefix", "--count-only", "--limit", "1"))[1] == "3\n"
            assert (await ctl(cluster, "compaction", str(old + 1)))[0] == 0
            code, _, err = await ctl(cluster, "get", "app/a", "--rev", str(old))
            assert code != 0 and "compacted" in err
            txn = b'value("app/a") = "10"\nversion("app/z") = "0"\n\nput app/z 26\nget app/a\n\nget app/b\n'
            code, out, _ = await ctl_in(cluster, txn, "txn")
            assert (code, out) == (0, "SUCCESS\nOK\napp/a\t10\n")
            code, out, _ = await ctl_in(cluster, txn, "txn")
            assert (code, out) == (0, "FAILURE\napp/b\t2\n")  # app/z exists now
            code, _, err = await ctl_in(cluster, b"put a 1\n", "txn")
            assert code == 2 and "not a compare" in err


async def test_watch_lease_elect_and_semaphore_commands() -> None:
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            results: list[tuple[int, str, str]] = []
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    results.append(await ctl(cluster, "watch", "w/", "--prefix", "--count", "2"))

                nursery.start_soon(watch)
                await trio.sleep(1.5)
                await ctl(cluster, "put", "w/1", "one")
                await ctl(cluster, "delete", "w/1")
            assert results == [(0, "PUT\tw/1\tone\nDELETE\tw/1\n", "")]

            code, out, _ = await ctl(cluster, "--json", "lease", "grant", "60")
            lease = json.loads(out)["id"]
            code, out, _ = await ctl(cluster, "lease", "timetolive", f"{lease:x}", "--keys")
            assert code == 0 and "granted with TTL(60s)" in out
            assert f"{lease:x}" in (await ctl(cluster, "lease", "list"))[1]
            assert "keepalived" in (await ctl(cluster, "lease", "keep-alive", f"{lease:x}", "--once"))[1]
            assert (await ctl(cluster, "lease", "revoke", f"{lease:x}"))[0] == 0
            code, _, err = await ctl(cluster, "lease", "timetolive", f"{lease:x}")
            assert code == EXIT_OUTCOME and "not found" in err

            code, out, _ = await ctl(cluster, "semaphore", "pool", "2", "--duration", "0.2")
            assert code == 0 and out.startswith("acquired pool token=")
            code, out, _ = await ctl(cluster, "elect", "boss", "me", "--duration", "0.2")
            assert code == 0 and out == "elected: boss\n"
