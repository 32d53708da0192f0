"""`ProcessTables`, the one owner of a node's names, monitors and links: plain data, no trio.

What a node does with what the tables return (DOWN messages, exit signals, controls to
other nodes) is tested through the node in test_monitors_links.py and test_remote.py;
here each table rule is checked on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ergo_py import PID, MessageDownNode, MessageDownPID, MessageDownProcessID, NameTaken, ProcessID, Ref
from ergo_py._tables import Monitor, NodeLoss, ProcessTables, down_message
from tests.import_walk import ROOT, imports_of

HERE = "a@h"
THERE = "b@h"
ELSEWHERE = "c@h"


@dataclass(eq=False)
class Proc:
    """The least a process must have for the tables (what `Entry` asks for)."""

    pid: PID
    name: str | None = None
    links: set[PID] = field(default_factory=set)
    monitors: dict[Ref, Any] = field(default_factory=dict)


def pid(n: int, node: str = HERE) -> PID:
    return PID(node, n, 1)


def ref(n: int, node: str = HERE) -> Ref:
    return Ref(node, 1, n)


def empty() -> dict[str, int]:
    return {"names": 0, "monitors": 0, "remote_monitors": 0, "node_monitors": 0, "remote_links": 0}


@pytest.fixture
def tables() -> ProcessTables[Proc]:
    return ProcessTables(HERE)


# -- names -------------------------------------------------------------------------------
def test_a_name_names_one_process_and_the_process_knows_it(tables: ProcessTables[Proc]) -> None:
    p, q = Proc(pid(1)), Proc(pid(2))
    tables.register("svc", p)
    assert tables.whereis("svc") is p and p.name == "svc"
    tables.register("svc", p)  # again by its holder: nothing changes
    with pytest.raises(NameTaken) as taken:
        tables.register("svc", q)
    assert taken.value.name == "svc" and q.name is None
    tables.register("other", p)  # a process has one name: registering again renames it
    assert tables.registered() == {"other": p.pid} and tables.whereis("svc") is None
    tables.register("svc", q)
    assert tables.registered() == {"other": p.pid, "svc": q.pid}


@pytest.mark.parametrize("bad", ["", "x@y", 5, None])
def test_an_invalid_name_is_refused(tables: ProcessTables[Proc], bad: Any) -> None:
    p = Proc(pid(1))
    with pytest.raises(ValueError, match="invalid process name"):
        tables.register(bad, p)
    assert p.name is None and tables.registered() == {}


def test_unregister_frees_only_the_name_its_process_holds(tables: ProcessTables[Proc]) -> None:
    p, q = Proc(pid(1)), Proc(pid(2))
    tables.register("svc", p)
    q.name = "svc"  # a stale record must not free a name someone else holds
    tables.unregister(q)
    assert q.name is None and tables.whereis("svc") is p
    tables.unregister(p)
    assert p.name is None and tables.statistics() == empty()


# -- monitors ----------------------------------------------------------------------------
def test_a_monitor_on_a_local_process_is_found_by_ref_and_counted_for_its_target(
    tables: ProcessTables[Proc],
) -> None:
    tables.add_monitor(ref(1), pid(1), ProcessID("svc", HERE), pid(2))
    tables.add_monitor(ref(2, THERE), pid(7, THERE), pid(2), pid(2))  # a remote watcher
    assert tables.monitored_by(pid(2)) == 2 and tables.monitored_by(pid(1)) == 0
    assert tables.statistics()["monitors"] == 2
    assert tables.remove_monitor(ref(1), ProcessID("svc", HERE)) == Monitor(ref(1), pid(1), ProcessID("svc", HERE))
    assert tables.remove_monitor(ref(1), ProcessID("svc", HERE)) is None  # once only
    assert tables.remove_monitor(ref(2, THERE), pid(2)) is not None
    assert tables.monitored_by(pid(2)) == 0 and tables.statistics() == empty()


def test_remove_monitor_looks_where_the_target_says(tables: ProcessTables[Proc]) -> None:
    tables.add_node_monitor(ref(1), pid(1), THERE)
    tables.add_remote_monitor(ref(2), pid(1), pid(5, THERE))
    tables.add_monitor(ref(3), pid(1), pid(2), pid(2))
    # The wrong kind of target finds nothing and removes nothing.
    assert tables.remove_monitor(ref(1), pid(5, THERE)) is None
    assert tables.remove_monitor(ref(2), THERE) is None
    assert tables.statistics() == {**empty(), "monitors": 1, "remote_monitors": 1, "node_monitors": 1}
    assert tables.remove_monitor(ref(1), THERE) == Monitor(ref(1), pid(1), THERE)
    assert tables.remove_monitor(ref(2), ProcessID("x", THERE)) == Monitor(ref(2), pid(1), pid(5, THERE))
    assert tables.remove_monitor(ref(3), pid(2)) == Monitor(ref(3), pid(1), pid(2))
    assert tables.statistics() == empty()


def test_a_remote_monitor_is_taken_once_by_its_node_and_ref(tables: ProcessTables[Proc]) -> None:
    tables.add_remote_monitor(ref(1), pid(1), ProcessID("svc", THERE))
    assert tables.pop_remote_monitor(ELSEWHERE, ref(1)) is None
    mon = tables.pop_remote_monitor(THERE, ref(1))
    assert mon is not None and mon.down("boom") == MessageDownProcessID(ProcessID("svc", THERE), "boom")
    assert tables.pop_remote_monitor(THERE, ref(1)) is None and tables.statistics() == empty()


def test_node_monitors_are_taken_all_at_once(tables: ProcessTables[Proc]) -> None:
    tables.add_node_monitor(ref(1), pid(1), THERE)
    tables.add_node_monitor(ref(2), pid(2), THERE)
    tables.add_node_monitor(ref(3), pid(1), ELSEWHERE)
    assert [m.watcher for m in tables.pop_node_monitors(THERE)] == [pid(1), pid(2)]
    assert tables.pop_node_monitors(THERE) == []
    assert tables.statistics()["node_monitors"] == 1


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (pid(2), MessageDownPID(pid(2), "r")),
        (ProcessID("svc", THERE), MessageDownProcessID(ProcessID("svc", THERE), "r")),
        (THERE, MessageDownNode(THERE)),
    ],
)
def test_a_down_names_the_target_as_the_watcher_named_it(target: Any, expected: Any) -> None:
    assert down_message(target, "r") == expected
    assert Monitor(ref(1), pid(1), target).down("r") == expected


# -- links -------------------------------------------------------------------------------
def test_links_to_remote_processes_are_indexed_by_their_node(tables: ProcessTables[Proc]) -> None:
    p, q = Proc(pid(1)), Proc(pid(2))
    tables.link(p, q.pid)  # local links are not indexed: their other side is a process here
    tables.link(q, p.pid)
    tables.link(p, pid(9, THERE))
    tables.link(p, pid(9, THERE))  # a set: linking twice is one link
    assert p.links == {q.pid, pid(9, THERE)} and q.links == {p.pid}
    assert tables.statistics()["remote_links"] == 1
    assert tables.unlink(p, pid(9, THERE)) is True
    assert tables.unlink(p, pid(9, THERE)) is False
    assert tables.unlink(p, q.pid) is True and p.links == set()
    assert tables.statistics() == empty()


# -- a process ends ----------------------------------------------------------------------
def test_a_process_that_ends_leaves_nothing_and_says_whom_to_tell(tables: ProcessTables[Proc]) -> None:
    p, q = Proc(pid(1)), Proc(pid(2))
    tables.register("p", p)
    for n, target in enumerate([pid(2), ProcessID("svc", THERE), ELSEWHERE, pid(3, THERE)]):
        p.monitors[ref(10 + n)] = target
    tables.add_monitor(ref(10), p.pid, pid(2), pid(2))
    tables.add_remote_monitor(ref(11), p.pid, ProcessID("svc", THERE))
    tables.add_node_monitor(ref(12), p.pid, ELSEWHERE)
    # ref 13 already fired: p still holds it until it reads the DOWN, the tables do not.
    tables.add_monitor(ref(20), q.pid, pid(1), pid(1))
    tables.add_monitor(ref(21, THERE), pid(8, THERE), pid(1), pid(1))
    for other in (q.pid, pid(9, THERE)):
        tables.link(p, other)
    tables.link(q, p.pid)

    gone = tables.remove_process(p)

    # Only a monitor of a process on another node needs that node told.
    assert gone.demonitors == [Monitor(ref(11), p.pid, ProcessID("svc", THERE))]
    assert sorted(m.watcher for m in gone.watchers) == [pid(2), pid(8, THERE)]
    assert sorted(gone.links) == [q.pid, pid(9, THERE)]
    assert p.name is None and p.links == set() and p.monitors == {}
    assert tables.whereis("p") is None and tables.monitored_by(p.pid) == 0
    # q's side of the link is the node's to undo, with the exit signal it sends q.
    assert q.links == {p.pid}
    assert tables.statistics() == empty()


# -- a node is lost ----------------------------------------------------------------------
def test_losing_a_node_takes_everything_that_refers_to_it_and_nothing_else(tables: ProcessTables[Proc]) -> None:
    p = Proc(pid(1))
    tables.add_remote_monitor(ref(1), p.pid, pid(5, THERE))
    tables.add_remote_monitor(ref(2), p.pid, pid(5, ELSEWHERE))
    tables.link(p, pid(6, THERE))
    tables.link(p, pid(6, ELSEWHERE))
    tables.add_node_monitor(ref(3), p.pid, THERE)
    tables.add_node_monitor(ref(4), p.pid, ELSEWHERE)
    tables.add_monitor(ref(5, THERE), pid(7, THERE), p.pid, p.pid)  # held there: never deliverable now
    tables.add_monitor(ref(6, ELSEWHERE), pid(7, ELSEWHERE), p.pid, p.pid)
    tables.add_monitor(ref(7), pid(2), p.pid, p.pid)

    lost = tables.remove_node(THERE)

    assert lost.monitors == [Monitor(ref(1), p.pid, pid(5, THERE))]
    assert lost.links == [(p.pid, pid(6, THERE))]
    assert lost.node_monitors == [Monitor(ref(3), p.pid, THERE)]
    assert tables.monitored_by(p.pid) == 2
    assert tables.remove_monitor(ref(5, THERE), p.pid) is None
    # The process's own link set is the node's to update, with the exit signal it sends.
    assert p.links == {pid(6, THERE), pid(6, ELSEWHERE)}
    assert tables.statistics() == {
        "names": 0,
        "monitors": 2,
        "remote_monitors": 1,
        "node_monitors": 1,
        "remote_links": 1,
    }
    assert tables.remove_node(THERE) == NodeLoss()


def test_the_tables_import_no_trio_and_no_runtime() -> None:
    """Plain data: nothing here may block, schedule or touch a socket."""
    path = ROOT.parent / "ergo_py" / "_tables.py"
    assert path.exists()
    imported = {mod for mod, _ in imports_of(path)}
    runtime = {m for m in imported if m.split(".")[0] in {"trio", "trio_websocket", "socket", "ssl", "time"}}
    assert runtime == set()
    ours = {m for m in imported if m.startswith("ergo_py")}
    assert ours <= {"ergo_py._errors", "ergo_py.ids", "ergo_py._messages"}, ours
