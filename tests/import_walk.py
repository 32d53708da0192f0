"""Static import walks for the layout tests: which modules a package's code imports.

Shared by the Raft core's and the simulator's "no I/O, no clock" tests, so both read
imports the same way.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import global_kv

ROOT = Path(global_kv.__file__).resolve().parent


def imports_of(path: Path, *, type_checking: bool = True) -> list[tuple[str, int]]:
    """(absolute module, line) for each import in `path`, resolving relative ones; with
    `type_checking=False`, not those under `if TYPE_CHECKING:` (they never run)."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def global_kv_closure(start: list[Path], *, type_checking: bool = True) -> dict[Path, list[tuple[str, int]]]:
    """Every global_kv module reachable from `start` by its own import statements, with its
    imports; not into the linearizability checker, whose history-file parsers (which use os)
    are for tests and tools while the simulator calls only its in-memory search.
    `type_checking=False` follows only the imports that run (see imports_of)."""
    seen: dict[Path, list[tuple[str, int]]] = {}
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = imports_of(path, type_checking=type_checking)
        for mod, _ in seen[path]:
            if mod.startswith("global_kv.") and not mod.startswith("global_kv.checker"):
                rel = Path(*mod.split(".")[1:])
                for cand in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
                    if cand.exists():
                        todo.append(cand)
    return seen


def assert_only_reexports(package: ModuleType) -> None:
    """The package's __init__ holds a docstring and `from ._x import Name as Name` lines only."""
    tree = ast.parse(Path(package.__file__ or "").read_text())
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
    for stmt in body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1, ast.dump(stmt)
        for alias in stmt.names:
            assert alias.asname == alias.name and not alias.name.startswith("_")
            assert getattr(package, alias.name) is not None
