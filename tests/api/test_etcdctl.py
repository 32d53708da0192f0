"""etcd's own command-line client (Debian's etcd-client) against a 3-node cluster of
node processes serving etcd's API: every command goes to a member chosen on purpose
(leader or follower), and what one member wrote another must show."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess

import trio

from global_kv.cli import LocalCluster

ETCDCTL = shutil.which("etcdctl")
if ETCDCTL is None:  # a missing client fails these tests, it never skips them
    raise RuntimeError("etcdctl is missing: apt-get install -y etcd-client (.ci/run installs it)")


async def etcdctl(endpoint: str, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    cmd = [ETCDCTL, f"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=10s", *argv]
    with trio.fail_after(30):
        done = await trio.run_process(
            cmd,
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def ok(endpoint: str, *argv: str, stdin: bytes = b"") -> str:
    code, out, err = await etcdctl(endpoint, *argv, stdin=stdin)
    assert code == 0, (argv, out, err)
    return out


async def test_etcdctl_reads_writes_txns_leases_and_cluster_state_on_any_member() -> None:
    with trio.fail_after(120):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            urls = [n.client_url or "" for n in cluster.nodes]
            lead, f1, f2 = urls[leader], *(u for i, u in enumerate(urls) if i != leader)

            # Writes on a follower are forwarded; linearizable reads see them on every member.
            assert await ok(f1, "put", "app/a", "1") == "OK\n"
            assert await ok(f2, "put", "app/b", "2") == "OK\n"
            for url in urls:
                assert await ok(url, "get", "app/", "--prefix") == "app/a\n1\napp/b\n2\n"
            # Serializable reads are served from the member's own state.
            with trio.fail_after(10):  # once f2 has applied it
                while "app/a" not in await ok(f2, "get", "app/a", "--consistency=s"):
                    await trio.sleep(0.05)
            found = json.loads(await ok(f1, "get", "app/a", "-w", "json"))
            assert found["kvs"][0]["version"] == 1 and found["count"] == 1
            first_rev = found["kvs"][0]["mod_revision"]

            # A txn from stdin, in etcdctl's own format, on a follower.
            txn = b'value("app/a") = "1"\n\nput app/a 10\nget app/b\n\nget app/a\n\n'
            assert await ok(f1, "txn", stdin=txn) == "SUCCESS\n\nOK\n\napp/b\n2\n"
            assert await ok(lead, "txn", stdin=txn) == "FAILURE\n\napp/a\n10\n"

            # History and compaction, with etcd's error text.
            assert await ok(f2, "get", "app/a", f"--rev={first_rev}") == "app/a\n1\n"
            assert "compacted revision" in await ok(lead, "compaction", str(first_rev + 1))
            code, _, err = await etcdctl(f2, "get", "app/a", f"--rev={first_rev}")
            assert code != 0 and "required revision has been compacted" in err

            # Leases: granted on one member, used and checked on others, revoked with its keys.
            lease = (await ok(f1, "lease", "grant", "60")).split()[1]
            assert await ok(f2, "put", "app/leased", "x", f"--lease={lease}") == "OK\n"
            assert "attached keys([app/leased])" in await ok(lead, "lease", "timetolive", lease, "--keys")
            assert lease in await ok(f2, "lease", "list")
            assert "keepalived with TTL(60)" in await ok(f1, "lease", "keep-alive", "--once", lease)
            assert "revoked" in await ok(f2, "lease", "revoke", lease)
            assert await ok(lead, "get", "app/leased") == ""
            code, _, err = await etcdctl(f1, "lease", "revoke", lease)
            assert code != 0 and "requested lease not found" in err

            # Bad input gets etcd's errors; the members keep serving.
            code, _, err = await etcdctl(f1, "put", "", "x")
            assert code != 0 and "key is not provided" in err
            code, _, err = await etcdctl(f1, "put", "app/big", stdin=b"x" * (2 * 1024 * 1024))  # the value
            assert code != 0 and "larger than max" in err, err

            # Cluster state as etcd reports it: three members, one leader.
            members = json.loads(await ok(f1, "member", "list", "-w", "json"))["members"]
            assert sorted(m["name"] for m in members) == sorted(n.name for n in cluster.nodes)
            # Every member's client URL is listed (clients that find their endpoints there).
            assert {m["name"]: m["clientURLs"] for m in members} == {n.name: [n.client_url] for n in cluster.nodes}
            statuses = json.loads(await ok(",".join(urls), "endpoint", "status", "-w", "json"))
            leaders = {s["Status"]["leader"] for s in statuses}
            ids = {s["Status"]["header"]["member_id"] for s in statuses}
            assert len(leaders) == 1 and leaders <= ids, statuses
            code, out, err = await etcdctl(f2, "endpoint", "health")
            assert code == 0 and "is healthy" in out + err
            assert await ok(lead, "get", "app/a") == "app/a\n10\n"


async def test_etcdctl_watch_on_a_follower_sees_writes_made_on_the_leader() -> None:
    with trio.fail_after(120):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            urls = [n.client_url or "" for n in cluster.nodes]
            follower = next(u for i, u in enumerate(urls) if i != leader)
            await ok(urls[leader], "put", "cfg/x", "0")
            rev = json.loads(await ok(urls[leader], "get", "cfg/x", "-w", "json"))["header"]["revision"]
            cmd = [ETCDCTL, f"--endpoints={follower}", "watch", "cfg/", "--prefix", "--prev-kv", f"--rev={rev}"]
            proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
            try:
                assert proc.stdout is not None
                await ok(urls[leader], "put", "cfg/x", "1")
                await ok(urls[leader], "del", "cfg/x")
                seen = b""
                with trio.fail_after(20):
                    while b"DELETE\ncfg/x\n" not in seen:
                        chunk = await proc.stdout.receive_some(4096)
                        assert chunk, seen
                        seen += chunk
                # From its start revision: the put at rev, then put (with its previous value) and delete.
                lines = seen.decode().splitlines()
                assert lines[:2] == ["PUT", "cfg/x"] and lines[2] == "0"
                assert "DELETE" in lines and lines.count("PUT") == 2, lines
            finally:
                proc.kill()
                with trio.move_on_after(5):
                    await proc.wait()
            # A watch from a compacted revision is canceled with etcd's reason (once the follower
            # serving it has applied the compaction: a serializable read there says so).
            await ok(urls[leader], "compaction", str(rev + 1))
            with trio.fail_after(20):
                while (await etcdctl(follower, "get", "cfg/x", f"--rev={rev}", "--consistency=s"))[0] == 0:
                    await trio.sleep(0.1)
            code, out, err = await etcdctl(follower, "watch", "cfg/x", f"--rev={rev}")
            assert "required revision has been compacted" in out + err, (code, out, err)


async def test_etcdctl_member_add_remove_and_hashkv() -> None:
    with trio.fail_after(150):
        async with LocalCluster(3, spares=1, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            urls = [n.client_url or "" for n in cluster.nodes[:3]]
            follower = next(u for i, u in enumerate(urls) if i != leader)
            spare = cluster.nodes[3].name
            for i in range(20):
                await ok(urls[i % 3], "put", f"k{i}", str(i))

            # Every member at the same revision: the same HashKV (etcdctl compares them).
            revision = json.loads(await ok(urls[leader], "get", "k0", "-w", "json"))["header"]["revision"]
            with trio.fail_after(20):
                while True:
                    hashes = json.loads(
                        await ok(",".join(urls), "endpoint", "hashkv", f"--rev={revision}", "-w", "json")
                    )
                    if len({h["HashKV"]["hash"] for h in hashes}) == 1:
                        break
                    await trio.sleep(0.2)
            assert hashes[0]["HashKV"]["hash"] != 0

            # MemberAdd names the node by its peer URL, http://NODE:PORT; MemberRemove by its id.
            out = await ok(follower, "member", "add", "n4", f"--peer-urls=http://{spare}:15004")
            assert "added to cluster" in out, out
            members = json.loads(await ok(follower, "member", "list", "-w", "json"))["members"]
            assert spare in {m["name"] for m in members} and len(members) == 4
            code, _, err = await etcdctl(follower, "member", "add", "again", f"--peer-urls=http://{spare}:15004")
            assert code != 0 and "Peer URLs already exists" in err
            code, _, err = await etcdctl(follower, "member", "add", "bad", "--peer-urls=http://10.0.0.1:2380")
            assert code != 0 and "http://NODE:PORT" in err
            added = next(m for m in members if m["name"] == spare)
            with trio.fail_after(20):  # a new member's change must commit before the next one
                while True:
                    code, out, err = await etcdctl(follower, "member", "remove", "%x" % added["ID"])
                    if code == 0:
                        break
                    await trio.sleep(0.3)
            assert "removed from cluster" in out
            members = json.loads(await ok(follower, "member", "list", "-w", "json"))["members"]
            assert spare not in {m["name"] for m in members} and len(members) == 3
            code, _, err = await etcdctl(follower, "member", "remove", "%x" % added["ID"])
            assert code != 0 and "member not found" in err


async def test_a_member_without_quorum_serves_serializable_reads_only() -> None:
    with trio.fail_after(120):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            urls = [n.client_url or "" for n in cluster.nodes]
            await ok(urls[leader], "put", "k", "v")
            survivor = (leader + 1) % 3
            with trio.fail_after(20):  # the survivor has applied the put
                while await ok(urls[survivor], "get", "k", "--consistency=s") != "k\nv\n":
                    await trio.sleep(0.1)
            for i in range(3):
                if i != survivor:
                    await cluster.kill(i)
            # As etcd: its own state answers a serializable read; a linearizable one cannot be served.
            assert await ok(urls[survivor], "get", "k", "--consistency=s") == "k\nv\n"
            code, _, err = await etcdctl(urls[survivor], "get", "k", "--command-timeout=3s")
            assert code != 0, err
            code, _, err = await etcdctl(urls[survivor], "put", "k", "w", "--command-timeout=3s")
            assert code != 0, err
            status = json.loads(await ok(urls[survivor], "endpoint", "status", "-w", "json"))
            assert status[0]["Status"]["errors"] == ["etcdserver: no leader"] or status[0]["Status"]["leader"] == 0


async def test_etcdctl_range_options_deletes_locks_elections_keepalives_and_snapshots(tmp_path: object) -> None:
    with trio.fail_after(150):
        async with LocalCluster(3, metrics=False, etcd_api=True) as cluster:
            leader = await cluster.wait_for_leader()
            urls = [n.client_url or "" for n in cluster.nodes]
            f1, f2 = (u for i, u in enumerate(urls) if i != leader)
            for key, value in (("s/b", "2"), ("s/a", "1"), ("s/c", "3"), ("s/a", "10")):
                await ok(f1, "put", key, value)
            assert await ok(f2, "get", "s/", "--prefix", "--keys-only") == "s/a\n\ns/b\n\ns/c\n\n"
            assert await ok(f2, "get", "s/", "--prefix", "--limit=2") == "s/a\n10\ns/b\n2\n"
            out = await ok(f2, "get", "s/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--keys-only")
            assert out.split() == ["s/a", "s/c", "s/b"]
            assert json.loads(await ok(f1, "get", "s/", "--prefix", "--limit=1", "-w", "json"))["count"] == 3
            assert await ok(f2, "del", "s/b") == "1\n"
            assert await ok(f1, "del", "s/", "--prefix") == "2\n"
            assert await ok(f2, "get", "s/", "--prefix") == ""

            # A lock (etcdctl's own recipe: a lease, a key, a txn, a watch): the second waits.
            cmd = [
                ETCDCTL,
                f"--endpoints={f1}",
                "lock",
                "job",
                "--",
                "sh",
                "-c",
                "echo first; sleep 2; echo first-done",
            ]
            first = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
            try:
                assert first.stdout is not None
                assert (await first.stdout.receive_some(100)).startswith(b"first")
                started = trio.current_time()
                out = await ok(f2, "lock", "job", "echo", "second")
                assert out == "second\n" and trio.current_time() - started > 1.0
                rest = b""
                while chunk := await first.stdout.receive_some(100):
                    rest += chunk
                assert b"first-done" in rest
            finally:
                first.kill()
                with trio.move_on_after(5):
                    await first.wait()

            # An election: the campaigner leads, an observer on another member sees it.
            campaign = await trio.lowlevel.open_process(
                [ETCDCTL, f"--endpoints={f1}", "elect", "pool", "worker-1"], stdout=subprocess.PIPE
            )
            try:
                assert campaign.stdout is not None
                said = b""
                with trio.fail_after(15):  # (its key line and its value line may come apart)
                    while b"worker-1" not in said:
                        chunk = await campaign.stdout.receive_some(200)
                        assert chunk, f"etcdctl elect ended, having said {said!r}"
                        said += chunk
                observer = await trio.lowlevel.open_process(
                    [ETCDCTL, f"--endpoints={f2}", "elect", "--listen", "pool"], stdout=subprocess.PIPE
                )
                try:
                    assert observer.stdout is not None
                    seen = b""
                    with trio.fail_after(15):
                        while b"worker-1" not in seen:
                            seen += await observer.stdout.receive_some(200)
                    assert b"pool/" in seen
                finally:
                    observer.kill()
                    with trio.move_on_after(5):
                        await observer.wait()
            finally:
                campaign.kill()
                with trio.move_on_after(5):
                    await campaign.wait()

            # keep-alive as a stream: etcdctl renews every TTL/3 until it is stopped.
            lease = (await ok(f1, "lease", "grant", "6")).split()[1]
            renew = await trio.lowlevel.open_process(
                [ETCDCTL, f"--endpoints={f2}", "lease", "keep-alive", lease], stdout=subprocess.PIPE
            )
            try:
                assert renew.stdout is not None
                seen = b""
                with trio.fail_after(15):
                    while seen.count(b"keepalived") < 3:
                        seen += await renew.stdout.receive_some(1000)
            finally:
                renew.kill()
                with trio.move_on_after(5):
                    await renew.wait()

            # snapshot save: a dump of the key-values at one revision, ending with its SHA-256.
            await ok(f1, "put", "snap/x", "1")
            path = f"{tmp_path}/snap.db"
            assert "Snapshot saved at" in await ok(f2, "snapshot", "save", path)
            data = open(path, "rb").read()
            body, digest = data[:-32], data[-32:]
            assert hashlib.sha256(body).digest() == digest
            assert len(body) % 512 == 0
            lines = [json.loads(line) for line in body.splitlines() if line]
            assert lines[0]["format"] == "global-kv-snapshot"
            assert {base64.b64decode(x["key"]) for x in lines[1:]} >= {b"snap/x"}
