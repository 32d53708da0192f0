"""python-etcd3 (PyPI `etcd3` 0.12, gRPC over grpcio's blocking API), unchanged, against a
3-node cluster of node processes serving etcd's API, pointed at a follower: every write and
linearizable read is forwarded, and the changes its watches must see are made through
another member's client.

etcd3's generated protobuf code predates protobuf 4: it needs
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python, which must be set before protobuf is first
imported, and this process has imported protobuf already (the servers' code). So the client
runs in a subprocess, etcd3_script.py, which prints a JSON report of what it observed; the
asserts are here. etcd3 0.12's Lock.acquire waits with an old-style tenacity callback, which
tenacity 7 and later no longer call: contended locks need tenacity<7."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from global_kv.cli import LocalCluster

SCRIPT = Path(__file__).with_name("etcd3_script.py")


def etcd_id(node: str) -> int:
    """A member's etcd id, as the README gives it: 64 bits of SHA-256 of its Raft id."""
    return int.from_bytes(hashlib.sha256(f"global@{node}".encode()).digest()[:8], "big") or 1


@dataclass
class Cluster:
    names: list[str]  # every member's node name
    leader: str
    follower: str  # the member etcd3 talks to
    follower_url: str


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    r = report[name]
    assert "error" not in r, f"etcd3's {name} scenario raised {r['error']}\n{r.get('traceback', '')}"
    return r  # type: ignore[no-any-return]


def check_kv(report: dict[str, Any], cl: Cluster) -> None:
    r = section(report, "kv")
    assert r["put_revisions_step"] == 1 and r["put_first_has_prev_kv"] is False
    assert r["put_prev_kv"] == ["e3/a", "0", 1]
    assert r["get"] == ["1", "e3/a", 2] and r["get_revisions"] == [0, 0, 0]
    assert r["get_header_member_id"] == etcd_id(cl.follower)
    assert r["get_missing"] == [None, None]
    assert r["other_get"] == "2" and r["serializable_get"] == "3"
    assert r["get_prefix"] == [["e3/a", "1", 2], ["e3/b", "2", 1], ["e3/c", "3", 1]]
    assert r["get_prefix_keys_only"] == [["e3/a", ""], ["e3/b", ""], ["e3/c", ""]]
    assert r["get_prefix_descend"] == ["e3/c", "e3/b", "e3/a"]
    assert r["get_range"] == ["e3/a", "e3/b"] and r["get_all_has"] == ["e3/a", "e3/b", "e3/c"]
    assert r["delete"] == [True, False]
    assert r["delete_prev_kv"] == [1, [["e3/c", "3"]]]
    assert r["other_get_deleted"] == [None, None, None, None]
    assert r["delete_prefix"] == 3 and r["after_delete_prefix"] == ["e3/a", "e3/q"]
    assert r["put_if_not_exists"] == [True, False] and r["other_get_new"] == "x"


def check_txn(report: dict[str, Any], cl: Cluster) -> None:
    r = section(report, "txn")
    assert r["first"] == [True, "response_put", [["2", 2]]]
    assert r["second"] == [False, [["2", 2]], "response_put"]  # the failure branch ran, both ops
    assert r["other_after"] == ["2", "failed"]
    assert r["nested"] == [True, False, ["response_put"]]  # the inner txn's failure branch
    assert r["delete_in_txn"] == [True, 1]
    assert r["replace"] == [True, False] and r["other_replaced"] == "3"


def check_watches(report: dict[str, Any], cl: Cluster) -> None:
    r = section(report, "watches")
    assert r["watch"] == [["PUT", "e3/w/key", "1"], ["DELETE", "e3/w/key", ""]]
    assert r["watch_after_cancel"] == []  # cancel() ends the iterator
    assert r["watch_prefix"] == [
        ["PUT", "e3/wp/x", "1", ""],
        ["PUT", "e3/wp/x", "2", "1"],
        ["DELETE", "e3/wp/x", "", "2"],
    ]
    assert r["watch_prefix_after_cancel"] == []
    assert r["watch_history"] == [["PUT", "e3/wh", "a"], ["PUT", "e3/wh", "b"]]
    assert r["watch_response"] == [0, [["PUT", "e3/wr", "1"]], etcd_id(cl.follower)]
    assert r["callback"] == [[["PUT", "e3/cb", "1"]]]  # nothing after cancel_watch
    assert r["prefix_callback"] == [[["PUT", "e3/cbp/1", "x"]]]
    assert r["watch_once"] == ["PUT", "e3/once", "1"] and r["watch_once_timeout"] == "WatchTimedOut"


def check_compacted_watch(report: dict[str, Any], cl: Cluster) -> None:
    # etcd answers a watch from a compacted revision with `created`, then a canceled response
    # carrying compact_revision: etcd3's watch() returns, its iterator raises.
    r = section(report, "compacted_watch")
    assert r == {"watch": "returned", "iterator": "RevisionCompactedError", "compacted_revision": 0}, r


def check_leases(report: dict[str, Any], cl: Cluster) -> None:
    r = section(report, "leases")
    assert r["grant"] == [True, 60]
    assert r["keys"] == ["e3/leased", "e3/leased2"]
    assert 50 <= r["remaining_ttl"] <= 60 and r["granted_ttl"] == 60
    assert r["other_sees_lease"] is True
    assert r["other_info"] == [True, 60, True, ["e3/leased", "e3/leased2"]]
    assert r["refresh"] == [[True, 60]] and r["refresh_via_other"] == [[True, 60]]
    assert r["after_revoke"] == [[None, None], [None, None]]
    assert r["ttl_after_revoke"] == -1 and r["keys_after_revoke"] == []  # etcd's answer for a lease gone
    assert r["refresh_after_revoke"] == [[True, 0]]
    assert r["revoked_by_other"] == [None, None]
    assert r["expired"] == [[None, None], True, -1]


def check_locks(report: dict[str, Any], cl: Cluster) -> None:
    r = report["locks"]
    assert "delay_since_first_attempt" not in r.get("error", ""), (
        f"etcd3 0.12's Lock.acquire needs tenacity<7 (installed: {report['tenacity']}): {r['error']}"
    )
    r = section(report, "locks")
    assert r["held"] == [True, "/locks/e3-job"]
    assert r["key_on_other"] == [True, True] and r["key_lease_granted_ttl"] == 30
    assert r["refresh"] == [30]
    assert r["rival_acquire"] is False and 0.9 <= r["rival_waited"] <= 5
    assert r["rival_is_acquired"] is False and r["rival_release"] is False and r["still_held"] is True
    assert r["after_with"] == [False, [None, None]]
    assert r["first_acquire"] is True
    assert r["waiting_rival_acquire"] is True and 0.9 <= r["waiting_rival_waited"] <= 9
    assert r["waiting_rival_is_acquired"] == [True, False]
    assert r["release"] == [True, False]


def check_cluster(report: dict[str, Any], cl: Cluster) -> None:
    r = section(report, "cluster")
    members = {name: (id_, peers, clients) for name, id_, peers, clients in r["members"]}
    assert sorted(members) == sorted(cl.names), r["members"]
    assert {name: m[0] for name, m in members.items()} == {n: etcd_id(n) for n in cl.names}
    assert len({m[0] for m in members.values()}) == 3
    assert all(len(m[1]) == 1 and m[1][0].startswith(f"http://{n}:") for n, m in members.items()), members
    assert cl.follower_url in members[cl.follower][2], members
    assert r["other_members"] == [[n, etcd_id(n)] for n in sorted(cl.names)]
    for name in ("status", "other_status"):
        status = r[name]
        assert status["version"] == "3.5.0", status
        assert status["leader"] == [cl.leader, etcd_id(cl.leader)], status
        assert status["raft_term"] >= 1 and status["raft_index"] >= 1 and status["db_size"] > 0, status
    assert cl.leader != cl.follower and r["member_id"] == etcd_id(cl.follower)
    assert r["alarms"] == []


CHECKS: list[Callable[[dict[str, Any], Cluster], None]] = [
    check_kv,
    check_txn,
    check_watches,
    check_leases,
    check_locks,
    check_cluster,
    check_compacted_watch,
]


async def run_etcd3(port: int, other_port: int) -> dict[str, Any]:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    with trio.fail_after(150):
        done = await trio.run_process(
            [sys.executable, str(SCRIPT), "127.0.0.1", str(port), str(other_port)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-5000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_etcd3_on_a_follower() -> None:
    assert importlib.util.find_spec("etcd3") is not None, "pip install etcd3 'tenacity<7'"
    with trio.fail_after(240):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            (_, f_node), (_, other_node) = [(i, n) for i, n in enumerate(cluster.nodes) if i != leader]
            cl = Cluster(
                names=[n.name for n in cluster.nodes],
                leader=cluster.nodes[leader].name,
                follower=f_node.name,
                follower_url=f_node.client_url or "",
            )
            report = await run_etcd3(f_node.client_port or 0, other_node.client_port or 0)
    failed = []
    for check in CHECKS:
        try:
            check(report, cl)
        except AssertionError as exc:
            failed.append(f"{check.__name__}: {exc}")
    assert not failed, f"etcd3 {report['etcd3']}:\n" + "\n\n".join(failed)
