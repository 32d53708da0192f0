"""The simulator stays deterministic and free of I/O, and its package only re-exports.

It drives the real state machine, whose pure dependencies (cbor2, io.BytesIO, ergo_py's
PID, the storage engine's threading lock) are allowed; anything that reads a clock,
touches the operating system or runs an event loop is not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import global_kv
import global_kv.sim

ROOT = Path(global_kv.__file__).resolve().parent
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
ALLOWED_FROM_ERGO = {"ergo_py._ids"}  # PID: a value type; the runtime itself is forbidden


def _imports(path: Path) -> list[tuple[str, int]]:
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
    """Every global_kv module reachable from `start` (by its own import statements), but
    not into the linearizability checker: the simulator calls only its in-memory search,
    while its history-file parsers (which use os) are for tests and tools."""
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


def test_the_simulator_reads_no_clock_and_does_no_io() -> None:
    files = [p for p in (ROOT / "sim").glob("*.py") if p.name != "__main__.py"]
    closure = _closure(files)
    assert ROOT / "state" / "_machine.py" in closure  # it does run the real state machine
    for path, imports in closure.items():
        for mod, line in imports:
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {mod}"
            assert mod.split(".")[0] not in FORBIDDEN, where
            assert not mod.startswith("ergo_py") or mod in ALLOWED_FROM_ERGO, where
            assert not mod.startswith("global_kv.client") and not mod.startswith("global_kv.app"), where


def test_the_package_only_re_exports() -> None:
    tree = ast.parse(Path(global_kv.sim.__file__).read_text())
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
    for stmt in body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1
        for alias in stmt.names:
            assert alias.asname == alias.name and not alias.name.startswith("_")
            assert getattr(global_kv.sim, alias.name) is not None
