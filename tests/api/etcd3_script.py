"""python-etcd3 (PyPI `etcd3`, unchanged) against one member, run by test_etcd3_client.py in
a subprocess of its own: etcd3's generated code needs PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python,
set before protobuf is first imported, and the test's process has imported it already.

    python etcd3_script.py HOST PORT OTHER_PORT

`PORT` is the member under test (a follower), `OTHER_PORT` another member, whose client makes
the changes the first must see. Prints one JSON object: what each scenario observed, by name,
or `{"error": ...}` for a scenario that raised (the others still run). Every call is bounded:
the clients' gRPC timeout, and timers that cancel the watches a scenario blocks on.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

assert os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") == "python", "set it before protobuf is imported"

import etcd3  # noqa: E402
import etcd3.exceptions  # noqa: E402
import etcd3.watch  # noqa: E402

TIMEOUT = 10  # each unary call; watch creation too (etcd3 waits that long for "created")
HOST, PORT = "127.0.0.1", 2379  # the member under test (main sets them)


def text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


def settled(read: Any, want: Any) -> Any:
    """A serializable read at another member, until it has applied the write (at most 5 s)."""
    got = read()
    for _ in range(100):
        if got == want:
            break
        time.sleep(0.05)
        got = read()
    return got


def event(e: Any) -> list[Any]:
    """An etcd3 event as [kind, key, value]: its class is PutEvent or DeleteEvent."""
    return [type(e).__name__.removesuffix("Event").upper(), text(e.key), text(e.value)]


def delivered(responses: list[Any]) -> list[Any]:
    """What a watch callback was given: each WatchResponse's events, or the error's repr."""
    return [[event(e) for e in x.events] if isinstance(x, etcd3.watch.WatchResponse) else repr(x) for x in responses]


def take(events: Iterator[Any], cancel: Callable[[], None], n: int, show: Callable[[Any], Any] = event) -> list[Any]:
    """The first `n` events of a watch, each as `show` gives it (fewer if 20 s pass first: a
    timer cancels the watch, which ends etcd3's iterator)."""
    timer = threading.Timer(20, cancel)
    timer.start()
    seen = []
    try:
        for e in events:
            seen.append(show(e))
            if len(seen) == n:
                break
    finally:
        timer.cancel()
    return seen


def kv(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    first = c.put("e3/a", "0")
    second = c.put("e3/a", b"1", prev_kv=True)
    r["put_revisions_step"] = second.header.revision - first.header.revision
    r["put_prev_kv"] = [text(second.prev_kv.key), text(second.prev_kv.value), second.prev_kv.version]
    r["put_first_has_prev_kv"] = first.HasField("prev_kv")
    c.put("e3/b", "2")
    c.put("e3/c", "3")
    value, meta = c.get("e3/a")
    r["get"] = [text(value), text(meta.key), meta.version]
    r["get_revisions"] = [
        meta.create_revision - first.header.revision,
        meta.mod_revision - second.header.revision,
        meta.lease_id,
    ]
    r["get_header_member_id"] = meta.response_header.member_id
    r["get_missing"] = list(c.get("e3/missing"))
    r["other_get"] = text(o.get("e3/b")[0])
    r["serializable_get"] = settled(lambda: text(o.get("e3/c", serializable=True)[0]), "3")
    r["get_prefix"] = [[text(m.key), text(v), m.version] for v, m in c.get_prefix("e3/")]
    r["get_prefix_keys_only"] = [[text(m.key), text(v)] for v, m in c.get_prefix("e3/", keys_only=True)]
    r["get_prefix_descend"] = [text(m.key) for _, m in c.get_prefix("e3/", sort_order="descend")]
    r["get_range"] = [text(m.key) for _, m in c.get_range("e3/a", "e3/c")]
    r["get_all_has"] = sorted(text(m.key) for _, m in c.get_all() if m.key.startswith(b"e3/"))
    r["delete"] = [c.delete("e3/b"), c.delete("e3/b")]
    gone = c.delete("e3/c", prev_kv=True, return_response=True)
    r["delete_prev_kv"] = [gone.deleted, [[text(p.key), text(p.value)] for p in gone.prev_kvs]]
    r["other_get_deleted"] = list(o.get("e3/b")) + list(o.get("e3/c"))
    for key in ("e3/p/1", "e3/p/2", "e3/p/3", "e3/q"):
        o.put(key, key)
    r["delete_prefix"] = c.delete_prefix("e3/p/").deleted
    r["after_delete_prefix"] = [text(m.key) for _, m in o.get_prefix("e3/")]
    r["put_if_not_exists"] = [c.put_if_not_exists("e3/new", "x"), c.put_if_not_exists("e3/new", "y")]
    r["other_get_new"] = text(o.get("e3/new")[0])
    return r


def txn(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    tx = c.transactions
    c.put("e3/t", "1")
    ok, responses = c.transaction(
        compare=[tx.value("e3/t") == b"1", tx.version("e3/t") > 0],
        success=[tx.put("e3/t", b"2"), tx.get("e3/t")],
        failure=[tx.get("e3/t")],
    )
    r["first"] = [ok, responses[0].WhichOneof("response"), [[text(v), m.version] for v, m in responses[1]]]
    ok, responses = c.transaction(
        compare=[tx.value("e3/t") == b"1"],
        success=[tx.delete("e3/t")],
        failure=[tx.get("e3/t"), tx.put("e3/t2", b"failed")],
    )
    r["second"] = [ok, [[text(v), m.version] for v, m in responses[0]], responses[1].WhichOneof("response")]
    r["other_after"] = [text(o.get("e3/t")[0]), text(o.get("e3/t2")[0])]
    # A nested txn, and compares on revisions.
    _, meta = c.get("e3/t")
    ok, responses = c.transaction(
        compare=[tx.mod("e3/t") == meta.mod_revision, tx.create("e3/t") < meta.mod_revision + 1],
        success=[tx.txn(compare=[tx.value("e3/t") != b"2"], success=[], failure=[tx.put("e3/t", b"nested")])],
        failure=[],
    )
    nested = responses[0].response_txn
    r["nested"] = [ok, nested.succeeded, [x.WhichOneof("response") for x in nested.responses]]
    ok, responses = c.transaction(compare=[], success=[tx.delete("e3/t2", prev_kv=True)], failure=[])
    r["delete_in_txn"] = [ok, responses[0].response_delete_range.deleted]
    r["replace"] = [c.replace("e3/t", b"nested", b"3"), c.replace("e3/t", b"nested", b"4")]
    r["other_replaced"] = text(o.get("e3/t")[0])
    return r


def watches(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    # watch: one key; the changes are made through the other member.
    events, cancel = c.watch("e3/w/key")
    o.put("e3/w/other", "no")
    o.put("e3/w/key", "1")
    o.delete("e3/w/key")
    r["watch"] = take(events, cancel, 2)
    cancel()
    r["watch_after_cancel"] = [event(e) for e in events]

    # watch_prefix, with prev_kv.
    events, cancel = c.watch_prefix("e3/wp/", prev_kv=True)
    o.put("e3/wq", "outside")
    o.put("e3/wp/x", "1")
    o.put("e3/wp/x", "2")
    o.delete_prefix("e3/wp/")
    r["watch_prefix"] = take(events, cancel, 3, lambda e: event(e) + [text(e.prev_value)])
    cancel()
    r["watch_prefix_after_cancel"] = [event(e) for e in events]

    # watch from a past revision: history replayed.
    start = o.put("e3/wh", "a").header.revision
    o.put("e3/wh", "b")
    events, cancel = c.watch("e3/wh", start_revision=start)
    r["watch_history"] = take(events, cancel, 2)
    cancel()

    # watch_response: the responses, each with its header.
    responses, cancel = c.watch_response("e3/wr")
    put = o.put("e3/wr", "1")
    timer = threading.Timer(20, cancel)
    timer.start()
    first = next(iter(responses), None)
    timer.cancel()
    cancel()
    r["watch_response"] = (
        None
        if first is None
        else [first.header.revision - put.header.revision, [event(e) for e in first.events], first.header.member_id]
    )

    # add_watch_callback / cancel_watch.
    got: list[Any] = []
    arrived = threading.Event()

    def callback(response: Any) -> None:
        got.append(response)
        arrived.set()

    watch_id = c.add_watch_callback("e3/cb", callback)
    o.put("e3/cb", "1")
    arrived.wait(20)
    c.cancel_watch(watch_id)
    time.sleep(0.5)
    o.put("e3/cb", "2")  # after the cancel: not delivered
    time.sleep(1)
    r["callback"] = delivered(got)
    got.clear()
    arrived.clear()
    watch_id = c.add_watch_prefix_callback("e3/cbp/", callback)
    o.put("e3/cbp/1", "x")
    arrived.wait(20)
    c.cancel_watch(watch_id)
    r["prefix_callback"] = delivered(got)

    # watch_once: the first event, or WatchTimedOut.
    threading.Timer(0.5, lambda: o.put("e3/once", "1")).start()
    r["watch_once"] = event(c.watch_once("e3/once", timeout=20))
    try:
        c.watch_once("e3/never", timeout=1)
        r["watch_once_timeout"] = "no timeout"
    except etcd3.exceptions.WatchTimedOut:
        r["watch_once_timeout"] = "WatchTimedOut"
    return r


def compacted_watch(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    """A watch from a compacted revision, by a client with etcd3's default timeout (none).
    etcd answers `created`, then a response with compact_revision (and canceled): etcd3's
    watch() returns at once and its iterator raises RevisionCompactedError."""
    old = o.put("e3/cw", "1").header.revision
    now = o.put("e3/cw", "2").header.revision
    c.compact(now)
    fresh = etcd3.client(host=HOST, port=PORT)
    seen: dict[str, Any] = {}

    def watch() -> None:
        try:
            events, cancel = fresh.watch("e3/cw", start_revision=old)
        except Exception as exc:
            seen["watch"] = type(exc).__name__
            return
        seen["watch"] = "returned"
        timer = threading.Timer(20, cancel)
        timer.start()
        try:
            seen["events"] = [event(e) for e in events]
            seen["iterator"] = "ended"
        except etcd3.exceptions.RevisionCompactedError as exc:
            seen["iterator"] = "RevisionCompactedError"
            seen["compacted_revision"] = exc.compacted_revision - now
        finally:
            timer.cancel()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # left blocked: os._exit ends it
        seen.setdefault("watch", "no answer within 10 s")
    return seen


def leases(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    lease = c.lease(60)
    r["grant"] = [lease.id > 0, lease.ttl]
    c.put("e3/leased", "x", lease=lease)
    c.put("e3/leased2", "y", lease=lease.id)
    r["keys"] = sorted(text(k) for k in lease.keys)
    r["remaining_ttl"] = lease.remaining_ttl
    r["granted_ttl"] = lease.granted_ttl
    _, meta = o.get("e3/leased")
    r["other_sees_lease"] = meta.lease_id == lease.id
    info = o.get_lease_info(lease.id)
    r["other_info"] = [info.ID == lease.id, info.grantedTTL, 50 <= info.TTL <= 60, sorted(text(k) for k in info.keys)]
    refreshed = lease.refresh()
    r["refresh"] = [[x.ID == lease.id, x.TTL] for x in refreshed]
    r["refresh_via_other"] = [[x.ID == lease.id, x.TTL] for x in o.refresh_lease(lease.id)]
    lease.revoke()
    r["after_revoke"] = [list(o.get("e3/leased")), list(c.get("e3/leased2"))]
    r["ttl_after_revoke"] = lease.remaining_ttl  # etcd: TTL -1 for a lease that is gone
    r["keys_after_revoke"] = list(lease.keys)
    r["refresh_after_revoke"] = [[x.ID == lease.id, x.TTL] for x in lease.refresh()]  # etcd: TTL 0
    # Revoked through the other member's client.
    other = c.lease(30)
    c.put("e3/leased3", "z", lease=other)
    o.revoke_lease(other.id)
    r["revoked_by_other"] = list(c.get("e3/leased3"))
    # A short lease expires, and its key with it.
    short = c.lease(2)
    c.put("e3/short", "s", lease=short)
    began = time.monotonic()
    while c.get("e3/short")[0] is not None and time.monotonic() - began < 15:
        time.sleep(0.2)
    r["expired"] = [list(c.get("e3/short")), time.monotonic() - began < 15, short.remaining_ttl]
    return r


def locks(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    with c.lock("e3-job", ttl=30) as held:
        r["held"] = [held.is_acquired(), held.key]
        value, meta = o.get(held.key)
        r["key_on_other"] = [value == held.uuid, meta.lease_id == held.lease.id]
        r["key_lease_granted_ttl"] = held.lease.granted_ttl
        r["refresh"] = [x.TTL for x in held.refresh()]
        rival = o.lock("e3-job", ttl=30)
        began = time.monotonic()
        r["rival_acquire"] = rival.acquire(timeout=1)
        r["rival_waited"] = round(time.monotonic() - began, 1)
        r["rival_is_acquired"] = rival.is_acquired()
        r["rival_release"] = rival.release()  # not its lock: the value is not its uuid
        r["still_held"] = held.is_acquired()
    r["after_with"] = [held.is_acquired(), list(o.get(held.key))]
    # Released while the rival waits: the rival gets it.
    first = c.lock("e3-job2", ttl=30)
    r["first_acquire"] = first.acquire(timeout=5)
    rival = o.lock("e3-job2", ttl=30)
    threading.Timer(1, first.release).start()
    began = time.monotonic()
    r["waiting_rival_acquire"] = rival.acquire(timeout=10)
    r["waiting_rival_waited"] = round(time.monotonic() - began, 1)
    r["waiting_rival_is_acquired"] = [rival.is_acquired(), first.is_acquired()]
    r["release"] = [rival.release(), rival.release()]
    return r


def cluster(c: etcd3.Etcd3Client, o: etcd3.Etcd3Client) -> dict[str, Any]:
    r: dict[str, Any] = {}
    members = list(c.members)
    r["members"] = sorted([m.name, m.id, list(m.peer_urls), list(m.client_urls)] for m in members)
    r["other_members"] = sorted([m.name, m.id] for m in o.members)
    for name, client in (("status", c), ("other_status", o)):
        status = client.status()
        leader = status.leader
        r[name] = {
            "version": status.version,
            "leader": None if leader is None else [leader.name, leader.id],
            "raft_index": status.raft_index,
            "raft_term": status.raft_term,
            "db_size": status.db_size,
        }
    r["member_id"] = c.get("e3/a")[1].response_header.member_id
    r["alarms"] = [[a.alarm_type, a.member_id] for a in c.list_alarms()]
    return r


SCENARIOS = [kv, txn, watches, compacted_watch, leases, locks, cluster]


def main() -> None:
    global HOST, PORT
    HOST, PORT, other_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    report: dict[str, Any] = {"etcd3": etcd3.__version__, "tenacity": version("tenacity")}
    c = etcd3.client(host=HOST, port=PORT, timeout=TIMEOUT)
    o = etcd3.client(host=HOST, port=other_port, timeout=TIMEOUT)
    for scenario in SCENARIOS:
        began = time.monotonic()
        try:
            report[scenario.__name__] = scenario(c, o)
        except Exception as exc:  # reported, so the test names it; the other scenarios still run
            report[scenario.__name__] = {"error": f"{exc!r}", "traceback": traceback.format_exc()}
        report.setdefault("seconds", {})[scenario.__name__] = round(time.monotonic() - began, 1)
    print(json.dumps(report), flush=True)
    # etcd3's watch thread is a daemon, reconnecting forever; grpc's channels hold threads too.
    os._exit(0)


if __name__ == "__main__":
    main()
