"""The pure replica and the simulator that drives it stay deterministic and free of I/O.

They run the real state machine, whose pure dependencies (cbor2, io.BytesIO, ergo_py's
trio-free identifier and wire-registration modules, the storage engine's threading
lock) are allowed; anything that reads a clock, touches the operating system or runs an
event loop is not, and neither is the actor shell nor the client (the simulator's
re-exports are checked in tests/raft).
"""

from __future__ import annotations

import pytest

from tests.import_walk import ROOT, global_kv_closure

FORBIDDEN = {
    "trio",
    "time",
    "socket",
    "os",
    "asyncio",
    "select",
    "selectors",
    "subprocess",
    "signal",
    "pathlib",
    "shutil",
    "tempfile",
    "datetime",
    "plyvel",
    "lmdb",
}
# PID (a value type) and the wire registry (a dict of types); the runtime itself is forbidden.
ALLOWED_FROM_ERGO = {"ergo_py.ids", "ergo_py.wire"}
SHELL = ("global_kv.client", "global_kv.app", "global_kv.leader", "global_kv.cli", "global_kv.ops")


@pytest.mark.parametrize("package", ["sim", "replica"])
def test_it_reads_no_clock_and_does_no_io(package: str) -> None:
    files = [p for p in (ROOT / package).glob("*.py") if p.name != "__main__.py"]
    closure = global_kv_closure(files)
    assert ROOT / "state" / "_machine.py" in closure  # it does run the real state machine
    assert ROOT / "replica" / "_global_replica.py" in closure  # the production replica
    for path, imports in closure.items():
        for mod, line in imports:
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"
            assert mod.split(".")[0] not in FORBIDDEN, where
            assert not mod.startswith("ergo_py") or mod in ALLOWED_FROM_ERGO, where
            assert not mod.startswith(SHELL), where
