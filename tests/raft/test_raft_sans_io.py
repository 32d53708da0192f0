"""The Raft core and the simulator stay sans-IO, and the package exports only re-exports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import global_kv
import global_kv.raft
import global_kv.sim

ROOT = Path(global_kv.__file__).resolve().parent
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


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module, line) for each import in `path`, resolving relative ones."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return out


def _closure(start: list[Path]) -> dict[Path, list[tuple[str, int]]]:
    """Every global_kv module reachable from `start`, with its imports (stops at the checker)."""
    seen: dict[Path, list[tuple[str, int]]] = {}
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = _imports(path)
        for mod, _ in seen[path]:
            if mod.startswith("global_kv.") and not mod.startswith("global_kv.checker"):
                rel = Path(*mod.split(".")[1:])
                for cand in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
                    if cand.exists():
                        todo.append(cand)
    return seen


# The simulator applies the real state machine now (cbor2, the engine's lock); its own
# import rule lives in tests/sim/test_sim_layout.py.
@pytest.mark.parametrize("package", ["raft"])
def test_no_io_clock_or_runtime_imports(package: str) -> None:
    files = [p for p in (ROOT / package).glob("*.py") if p.name != "__main__.py"]
    assert len(files) >= 5
    for path, imports in _closure(files).items():
        for mod, line in imports:
            top = mod.split(".")[0]
            assert top not in FORBIDDEN, (
                f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"
            )


def test_the_core_draws_randomness_only_from_the_injected_generator() -> None:
    for path in (ROOT / "raft").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr == "Random", (
                    f"{path.name}:{node.lineno} uses random.{node.attr}"
                )


@pytest.mark.parametrize(
    "package", [global_kv.raft, global_kv.sim], ids=["raft", "sim"]
)
def test_init_only_reexports(package: object) -> None:
    tree = ast.parse(Path(package.__file__).read_text())  # type: ignore[attr-defined]
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
    for stmt in body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1
        for alias in stmt.names:
            assert alias.asname == alias.name and not alias.name.startswith("_")
            assert getattr(package, alias.name) is not None
