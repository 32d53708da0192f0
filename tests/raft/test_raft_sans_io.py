"""The Raft core and the simulator stay sans-IO, and the package exports only re-exports."""

from __future__ import annotations

import ast
from types import ModuleType

import pytest

import global_kv.raft
import global_kv.sim
from tests.import_walk import ROOT, assert_only_reexports, global_kv_closure

FORBIDDEN = {
    "trio",
    "time",
    "socket",
    "os",
    "asyncio",
    "threading",
    "select",
    "selectors",
    "subprocess",
    "signal",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "datetime",
    "ergo_py",
    "cbor2",
    "plyvel",
    "lmdb",
}


# The simulator applies the real state machine now (cbor2, the engine's lock); its own
# import rule lives in tests/sim/test_sim_layout.py.
@pytest.mark.parametrize("package", ["raft"])
def test_no_io_clock_or_runtime_imports(package: str) -> None:
    files = [p for p in (ROOT / package).glob("*.py") if p.name != "__main__.py"]
    assert len(files) >= 5
    for path, imports in global_kv_closure(files).items():
        for mod, line in imports:
            top = mod.split(".")[0]
            assert top not in FORBIDDEN, f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"


def test_the_core_draws_randomness_only_from_the_injected_generator() -> None:
    for path in (ROOT / "raft").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random":
                assert node.attr == "Random", f"{path.name}:{node.lineno} uses random.{node.attr}"


@pytest.mark.parametrize("package", [global_kv.raft, global_kv.sim], ids=["raft", "sim"])
def test_init_only_reexports(package: ModuleType) -> None:
    assert_only_reexports(package)
