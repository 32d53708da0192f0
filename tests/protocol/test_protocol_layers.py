"""Which layers a client, the protocol and the identifiers load: no server, no storage, no trio.

A client process imports `global_kv.client`, and a pure replica imports
`global_kv.protocol`; neither may drag in the server (`global_kv.app`, `global_kv.leader`),
the storage engines (plyvel, lmdb) or, for the protocol, trio. The lazy package
`__init__`s (PEP 562) are what makes that possible, so their export tables are checked
against the names they declare for mypy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import ergo_py
import global_kv.protocol
from tests.import_walk import ROOT, assert_only_reexports, global_kv_closure

SERVER_AND_STORAGE = ("global_kv.app", "global_kv.leader", "global_kv.storage", "plyvel", "lmdb")


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def under(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_a_client_loads_no_server_and_no_storage_engine() -> None:
    loaded = loaded_after("import global_kv.client")
    assert "global_kv.client._client" in loaded
    for package in SERVER_AND_STORAGE:
        assert not under(loaded, package), f"import global_kv.client loads {under(loaded, package)}"


def test_the_server_does_load_them() -> None:
    """The check above can see a server: importing one shows up in sys.modules."""
    loaded = loaded_after("import global_kv.app")
    assert under(loaded, "global_kv.storage") and under(loaded, "global_kv.leader") and "trio" in loaded


@pytest.mark.parametrize("statement", ["import global_kv.protocol", "import ergo_py.ids", "import ergo_py.wire"])
def test_the_protocol_and_identifiers_load_no_trio(statement: str) -> None:
    loaded = loaded_after(statement)
    assert statement.split()[1] in loaded
    assert not under(loaded, "trio"), f"{statement} loads trio"
    for package in SERVER_AND_STORAGE:
        assert not under(loaded, package), f"{statement} loads {under(loaded, package)}"


def test_the_runtime_loads_trio_when_used() -> None:
    loaded = loaded_after("import ergo_py\nergo_py.Node")
    assert "trio" in loaded and "ergo_py._node" in loaded


# -- static: what the protocol's code imports, however deep ---------------------------------------
FORBIDDEN_TOP = {"trio", "trio_websocket", "plyvel", "lmdb", "socket", "ssl", "asyncio", "threading", "time"}
FORBIDDEN_GLOBAL_KV = ("global_kv.app", "global_kv.leader", "global_kv.storage", "global_kv.client")
ALLOWED_FROM_ERGO = {"ergo_py.ids", "ergo_py.wire"}


def protocol_closure() -> dict[Path, list[tuple[str, int]]]:
    """The protocol's modules and every global_kv module they import when run, with the
    `__init__` of each package on the way (Python runs those first), not global_kv's own
    (lazy, checked in a fresh interpreter above)."""
    start = sorted((ROOT / "protocol").glob("*.py"))
    while True:
        closure = global_kv_closure(start, type_checking=False)
        inits = {p.parent / "__init__.py" for p in closure if p.parent != ROOT} - set(start)
        if not inits:
            return closure
        start += sorted(inits)


def test_the_protocol_imports_no_runtime_server_or_storage_even_indirectly() -> None:
    closure = protocol_closure()
    assert ROOT / "state" / "_commands.py" in closure  # it does build the state machine's commands
    assert ROOT / "raft" / "__init__.py" in closure  # and package inits are walked
    for path, imports in closure.items():
        for mod, line in imports:
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"
            assert mod.split(".")[0] not in FORBIDDEN_TOP, where
            assert not mod.startswith(FORBIDDEN_GLOBAL_KV), where
            assert not mod.startswith("ergo_py") or mod in ALLOWED_FROM_ERGO, where


def test_the_protocol_package_only_reexports() -> None:
    assert_only_reexports(global_kv.protocol)


def test_the_protocol_exports_the_request_vocabulary() -> None:
    requests = (
        "GetRequest RangeRequest PrefixRequest PutRequest DeleteRequest "
        "LockRequest UnlockRequest RefreshRequest StatusRequest AddPeerRequest "
        "RemovePeerRequest SnapshotRequest ListLocksRequest MetricsRequest KVRangeRequest KVPutRequest "
        "KVDeleteRangeRequest CompactRequest TxnRequest LeaseGrantRequest LeaseRevokeRequest "
        "LeaseKeepAliveRequest LeaseTimeToLiveRequest LeaseLeasesRequest WatchCreateRequest WatchCancelRequest"
    ).split()
    others = (
        "StatusResponse LockInfo Forwarded Relayed SessionTag NO_SESSION KVWriteRequest READ_REQUESTS "
        "KV_WRITE_REQUESTS LOCK_REQUESTS WRITE_REQUESTS WIRE_ERRORS command_for lock_command_for "
        "tagged_command ttl_ms RangeResponse ResponseHeader PutResponse DeleteRangeResponse CompactResponse "
        "TxnResponse TxnRequestOp txn_op_for range_options Compare prefix_range_end "
        "LeaseGrantResponse LeaseRevokeResponse "
        "LeaseKeepAliveResponse LeaseTimeToLiveResponse LeaseLeasesResponse WATCH_FILTERS WatchAck "
        "WatchCreateResponse WatchEvents WatchEvent WatchCanceled KeyValue health_read"
    ).split()
    public = {n for n in vars(global_kv.protocol) if not n.startswith("_")}
    assert public == set(requests) | set(others)
    for path in (ROOT / "protocol").glob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), path.name


# -- the lazy package inits ----------------------------------------------------------------------
LAZY = ["ergo_py", "ergo_py.net", "global_kv"]


def declared_for_mypy(package: str) -> dict[str, str]:
    """name -> module of the `from X import Name as Name` lines under `if TYPE_CHECKING:`."""
    path = Path(import_module(package).__file__ or "")
    names: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1, ast.dump(stmt)
                for alias in stmt.names:
                    assert alias.asname == alias.name, alias.name
                    names[alias.name] = "." + (stmt.module or alias.name)
    return names


@pytest.mark.parametrize("package", LAZY)
def test_a_lazy_init_exports_exactly_what_it_declares(package: str) -> None:
    module = import_module(package)
    declared = declared_for_mypy(package)
    assert declared, package
    assert sorted(module.__all__) == sorted(declared)
    for name, where in declared.items():
        source = import_module(where, package)
        expected = source if where == "." + name else getattr(source, name)
        assert getattr(module, name) is expected, f"{package}.{name}"
        assert name in dir(module)


@pytest.mark.parametrize("package", LAZY)
def test_a_lazy_init_refuses_unknown_names(package: str) -> None:
    module = import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        _ = module.no_such_name


def test_star_import_binds_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from ergo_py import *", namespace)
    assert set(ergo_py.__all__) <= set(namespace)
    assert namespace["Node"] is ergo_py.Node and namespace["PID"] is ergo_py.ids.PID
