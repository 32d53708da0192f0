"""The ops HTTP server in a node's trio loop, against real Global replicas (in-process)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import ergo_py as e
from ergo_py import ProcessID
from global_kv.app import Application, GlobalConfig
from global_kv.client import open_client
from global_kv.ops import METRIC_NAMES, OpsServerError, open_ops_server
from global_kv.protocol import MetricsRequest

NODE = "ops1@localhost"
COOKIE = "ops-test"


def _request(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await trio.to_thread.run_sync(_request, url, method)


def values(text: bytes) -> dict[str, float]:
    """name -> value for the series without extra labels (node only)."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if set(s.labels) == {"node"}:
                out[s.name] = s.value
    return out


async def start_global(node: e.Node, members: tuple[str, ...]) -> None:
    config = GlobalConfig(bootstrap=tuple(ProcessID("global", n) for n in members))
    await node.application_start(Application(config))


async def wait_leader(node: e.Node) -> None:
    async with open_client(node, [node.name]) as client:
        while not (await client.status()).is_leader:
            await trio.sleep(0.02)


async def test_health_and_metrics_of_a_serving_replica_follow_its_activity() -> None:
    with trio.fail_after(20):
        async with e.start_node(NODE) as node:
            await start_global(node, (NODE,))
            await wait_leader(node)
            async with open_ops_server(node, ("127.0.0.1", 0)) as ops:
                code, headers, body = await fetch(f"{ops.url}/health")
                assert code == 200 and headers["content-type"] == "application/json"
                health = json.loads(body)
                assert health["status"] == "ok" and health["is_leader"] and health["has_quorum"]
                assert health["storage_ok"] is True and health["node"] == NODE

                code, headers, body = await fetch(f"{ops.url}/metrics")
                assert code == 200 and headers["content-type"].startswith("text/plain")
                before = values(body)
                assert before["global_is_leader"] == 1 and before["global_peers_count"] == 1
                async with open_client(node, [NODE]) as client:
                    for i in range(5):
                        await client.put(f"k{i}", b"v")
                    await client.get("k0")
                after = values((await fetch(f"{ops.url}/metrics"))[2])
                assert after["global_writes_total"] == before["global_writes_total"] + 5
                assert after["global_reads_total"] >= before["global_reads_total"] + 1
                assert after["global_commit_index"] >= before["global_commit_index"] + 5
                assert after["global_revision"] == before["global_revision"] + 5

                async with open_client(node, [NODE]) as client:
                    lease = await client.lease_grant(60)
                    async with client.watch("w") as events:
                        await client.put_kv("w", b"1", lease=lease.lease_id)
                        await events.__anext__()
                        watching = values((await fetch(f"{ops.url}/metrics"))[2])
                assert watching["global_watchers"] == 1 and watching["global_leases_held"] == 1
                assert watching["global_watch_events_sent_total"] == after["global_watch_events_sent_total"] + 1
                for _ in range(100):  # the member drops the watch when it sees its receiver go
                    if values((await fetch(f"{ops.url}/metrics"))[2])["global_watchers"] == 0:
                        break
                    await trio.sleep(0.02)
                else:
                    raise AssertionError("the closed watch is still served")


async def test_every_metric_the_replica_reports_is_exported() -> None:
    """If GlobalActor gains a metric, this fails until the exposition names it."""
    with trio.fail_after(20):
        async with e.start_node(NODE) as node:
            await start_global(node, (NODE,))
            reported = await node.call("global", MetricsRequest())
            exported = {n.removeprefix("global_") for n in METRIC_NAMES}
            known = exported | {"replication_match", "replication_lag_ms", "gc_pause"}
            assert set(reported) - known == set()


async def test_without_quorum_health_is_503_and_metrics_say_so() -> None:
    # A member of a 3-node cluster whose two peers never start: it can never have a quorum.
    members = (NODE, "ops2@localhost", "ops3@localhost")
    with trio.fail_after(20):
        async with e.start_node(NODE, e.NodeOptions(cookie=COOKIE, listen=("127.0.0.1", 0))) as node:
            await start_global(node, members)
            async with open_ops_server(node, ("127.0.0.1", 0)) as ops:
                await trio.sleep(0.4)  # past an election timeout: it tried and failed
                code, _, body = await fetch(f"{ops.url}/health")
                assert code == 503
                health = json.loads(body)
                assert health["status"] == "unhealthy" and health["has_quorum"] is False
                assert any("no quorum" in r for r in health["reasons"])
                code, _, body = await fetch(f"{ops.url}/metrics")
                assert code == 200
                got = values(body)
                assert got["global_has_quorum"] == 0 and got["global_is_leader"] == 0


async def test_a_node_without_the_replica_is_unavailable_not_a_crash() -> None:
    with trio.fail_after(20):
        async with e.start_node(NODE) as node, open_ops_server(node, ("127.0.0.1", 0), call_timeout=0.5) as ops:
            code, _, body = await fetch(f"{ops.url}/health")
            assert code == 503 and json.loads(body)["status"] == "unavailable"
            code, _, body = await fetch(f"{ops.url}/metrics")
            assert code == 503 and b"unavailable" in body


async def test_unknown_paths_and_methods_are_refused() -> None:
    with trio.fail_after(20):
        async with e.start_node(NODE) as node:
            await start_global(node, (NODE,))
            await wait_leader(node)
            async with open_ops_server(node, ("127.0.0.1", 0)) as ops:
                assert (await fetch(f"{ops.url}/nope"))[0] == 404
                code, headers, _ = await fetch(f"{ops.url}/health", method="POST")
                assert code == 405 and "GET" in headers["allow"]
                code, headers, body = await fetch(f"{ops.url}/health", method="HEAD")
                assert code == 200 and body == b"" and int(headers["content-length"]) > 0


async def test_an_address_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(20):
            async with e.start_node(NODE) as node:
                with pytest.raises(OpsServerError) as info:
                    async with open_ops_server(node, ("127.0.0.1", port)):
                        pass
                assert str(port) in str(info.value) and "in use" in str(info.value)
