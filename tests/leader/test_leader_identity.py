"""A replica's identity: its data dir says whose it is, a lost log stops it cleanly, and
traffic from another cluster is dropped with a warning, not in silence."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv._errors import DataDirMismatch, LogLost
from global_kv.leader import LeaderActor, LeaderOptions
from global_kv.storage import IDENTITY_FILE, DataDirIdentity, read_identity

NODE = "t@localhost"
NAMES = ("l1", "l2", "l3")
BOOT = tuple(ProcessID(n, NODE) for n in NAMES)


class Replica(LeaderActor):
    async def handle_call(self, from_: Any, ref: Any, request: Any) -> Any:
        st = self.raft_status()
        return self.is_leader(), st.commit


def options(
    data_dir: Path | None = None, cluster_id: str = "test", bootstrap: tuple[ProcessID, ...] = BOOT
) -> LeaderOptions:
    return LeaderOptions(cluster_id=cluster_id, bootstrap=bootstrap, data_dir=str(data_dir) if data_dir else None)


def causes(exc: BaseException) -> list[BaseException]:
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


async def wait_commit(node: e.Node, names: tuple[str, ...], at_least: int) -> None:
    with trio.fail_after(5):
        while True:
            commits = [(await node.call(n, "status"))[1] for n in names]
            if min(commits) >= at_least:
                return
            await trio.sleep(0.02)


async def test_a_data_dir_records_its_replica_and_refuses_another(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            pid = await node.spawn(Replica, options(tmp_path, bootstrap=()), name="solo")
            assert read_identity(tmp_path) == DataDirIdentity("test", NODE, "solo")
            await node.stop_process(pid)
            for opts, name in ((options(tmp_path, cluster_id="other"), "solo"), (options(tmp_path), "another")):
                with pytest.raises(e.SpawnError) as caught:
                    await node.spawn(Replica, opts, name=name)
                mismatch = [c for c in causes(caught.value) if isinstance(c, DataDirMismatch)]
                assert mismatch and mismatch[0].found == ("test", NODE, "solo"), causes(caught.value)
            # A data dir from before identity files: adopted, then checked like any other.
            (tmp_path / IDENTITY_FILE).unlink()
            pid = await node.spawn(Replica, options(tmp_path, bootstrap=()), name="solo")
            assert read_identity(tmp_path) == DataDirIdentity("test", NODE, "solo")
            await node.stop_process(pid)


async def test_a_member_restarted_on_an_emptied_data_dir_stops_its_node_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(15):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Replica, options(tmp_path / name), name=name)
            await wait_commit(node, NAMES, 2)  # the bootstrap entry and a leader's no-op, everywhere
            victim = [n for n in NAMES if not (await node.call(n, "status"))[0]][0]
            node.kill(node.whereis(victim))  # type: ignore[arg-type]
            while node.whereis(victim) is not None:
                await trio.sleep(0.01)
            shutil.rmtree(tmp_path / victim)  # the lost disk
            caplog.clear()
            await node.spawn(Replica, options(tmp_path / victim), name=victim)  # a first start, as far as it knows
            await trio.sleep_forever()  # until the replica stops the node
    assert isinstance(node.stop_reason, LogLost)
    assert node.stop_reason.replica == f"{victim}@{NODE}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().endswith(str(node.stop_reason))  # once, no crash
    assert all(r.exc_info is None for r in errors)


async def test_raft_traffic_of_another_cluster_is_dropped_with_a_rate_limited_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with trio.fail_after(10):
        async with e.start_node(NODE) as node:
            for name in NAMES:
                await node.spawn(Replica, options(), name=name)
            # A replica restarted with the wrong cluster id keeps campaigning at the others.
            stray = (ProcessID("l1", NODE), ProcessID("l4", NODE))
            await node.spawn(Replica, options(cluster_id="global", bootstrap=stray), name="l4")
            await trio.sleep(1.5)  # several elections' worth of votes asked for
            assert (await node.call("l1", "status"))[1] >= 1  # cluster "test" unharmed
    warnings = [r.getMessage() for r in caplog.records if "of cluster 'global'" in r.getMessage()]
    from_l4 = [w for w in warnings if f"from l4@{NODE}" in w]
    assert len(from_l4) == 1, warnings  # at most one per sender and 10 s
    assert "this replica is in cluster 'test'" in from_l4[0] and "same CLUSTER_ID" in from_l4[0]
