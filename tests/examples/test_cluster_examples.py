"""The cluster examples run against a running cluster, and alone (starting and reaping their own)."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import trio

from global_kv.cli import LocalCluster
from tests.os_processes import processes_with

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    """Import examples/<name>.py the way `python examples/<name>.py` sees its siblings."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_both_examples_against_a_running_cluster() -> None:
    pool = load("lock_worker_pool")
    config = load("distributed_config")
    with trio.fail_after(90):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()

            report = await pool.run(cluster.bootstrap, cluster.cookie, tasks=8, workers=3, freeze=True)
            # Every task done exactly once, in the store and in the sink, with the same token.
            assert sorted(report.done) == list(range(8)), report.log
            assert sorted(report.sink.results) == list(range(8))
            for task, (worker, token) in report.sink.results.items():
                assert report.done[task] == f"{worker}:{token}".encode()
            # The frozen worker's late result was refused, and the task went to a higher token.
            assert len(report.sink.refused) == 1, report.log
            task, worker, stale = report.sink.refused[0]
            assert worker == "worker1"
            assert report.sink.results[task][1] > stale
            assert report.sink.results[task][0] != "worker1"

            cfg = await config.run(cluster.bootstrap, cluster.cookie, admins=3, updates=5)
            assert cfg.final["version"] == 15
            assert cfg.final["max_connections"] == 115
            assert sorted(cfg.final["flags"]) == sorted(f"admin{a}.feature{i}" for a in (1, 2, 3) for i in range(5))

            # A wrong cookie: one line on stderr, exit code 3 (cannot authenticate), no traceback.
            env = dict(os.environ, BOOTSTRAP=cluster.bootstrap, COOKIE="not-the-cookie")
            result = await trio.run_process(
                [sys.executable, str(EXAMPLES / "distributed_config.py"), "--admins", "1", "--updates", "1"],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            err = result.stderr.decode()
            assert result.returncode == 3, err
            assert "Traceback" not in err and "cookie" in err


async def test_the_watch_lease_queue_and_election_examples_against_a_running_cluster() -> None:
    reload, discovery = load("config_reload"), load("service_discovery")
    queue, election = load("work_queue"), load("election_observed")
    with trio.fail_after(120):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            args = (cluster.bootstrap, cluster.cookie)
            cfg = await reload.run(*args, changes=5)
            assert cfg.settings == cfg.stored and len(cfg.reloads) == 5
            found = await discovery.run(*args, workers=3)
            assert sorted(found.joined) == ["worker0", "worker1", "worker2"] and found.left == ["worker0"]
            assert found.left_after < 5  # the owner's death, not the 60 s TTL
            jobs = await queue.run(*args, jobs=20, consumers=3)
            assert sorted(j for taken in jobs.taken.values() for j in taken) == list(range(20))
            seen = await election.run(*args)
            assert seen[-3:] == [b"first", b"first, again", b"second"], seen


async def test_config_example_alone_starts_and_reaps_its_own_cluster() -> None:
    marker = f"EXAMPLE_TEST_MARKER={secrets.token_hex(8)}"
    name, value = marker.split("=")
    env = {k: v for k, v in os.environ.items() if k not in ("BOOTSTRAP", "COOKIE", "ERGO_COOKIE")}
    env[name] = value
    with trio.fail_after(90):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / "distributed_config.py"), "--admins", "2", "--updates", "3"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "starting a local 3-node cluster" in result.stderr.decode()
    assert "final version 6, 6 flags, max_connections 106" in out, out
    assert processes_with(marker) == []  # the nodes it started are gone


def test_update_config_gives_up_with_data_after_too_many_conflicts() -> None:
    config = load("distributed_config")

    class AlwaysLoses:
        """A client whose every CAS loses the race (another writer always got there first)."""

        def __init__(self) -> None:
            self.cas_calls = 0

        async def get(self, key: str) -> bytes:
            return json.dumps({"version": self.cas_calls}).encode()

        async def cas(self, key: str, old: bytes, new: bytes) -> None:
            from global_kv import CASFailed

            self.cas_calls += 1
            raise CASFailed(key.encode(), b"{}")

    client = AlwaysLoses()

    async def attempt() -> None:
        try:
            await config.update_config(client, "k", lambda c: None, attempts=5)
        except config.ConfigConflict as exc:
            assert exc.attempts == 5 and exc.key == "k"
        else:
            raise AssertionError("update_config succeeded although every CAS failed")

    trio.run(attempt)
    assert client.cas_calls == 5
