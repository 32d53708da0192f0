"""The simulator stays deterministic and free of I/O (its re-exports are checked in tests/raft).

It drives the real state machine, whose pure dependencies (cbor2, io.BytesIO, ergo_py's
PID, the storage engine's threading lock) are allowed; anything that reads a clock,
touches the operating system or runs an event loop is not.
"""

from __future__ import annotations

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
ALLOWED_FROM_ERGO = {"ergo_py.ids"}  # PID: a value type; the runtime itself is forbidden


def test_the_simulator_reads_no_clock_and_does_no_io() -> None:
    files = [p for p in (ROOT / "sim").glob("*.py") if p.name != "__main__.py"]
    closure = global_kv_closure(files)
    assert ROOT / "state" / "_machine.py" in closure  # it does run the real state machine
    for path, imports in closure.items():
        for mod, line in imports:
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"
            assert mod.split(".")[0] not in FORBIDDEN, where
            assert not mod.startswith("ergo_py") or mod in ALLOWED_FROM_ERGO, where
            assert not mod.startswith("global_kv.client") and not mod.startswith("global_kv.app"), where
