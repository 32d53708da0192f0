"""The README's layer table is the import graph: no package imports one above it.

The table (under "Layout") lists the packages top to bottom; a module of a package may
import from its own package and from any row below, never from its own row's other
packages nor from above. The client, though above the replica in the table, imports
only the protocol (`tests/protocol` proves it in a fresh interpreter too).
"""

from __future__ import annotations

import re

from tests.import_walk import ROOT, imports_of

README = ROOT.parent / "README.md"


def _rows() -> list[list[str]]:
    """The table's packages, top row first (only `global_kv.*` names)."""
    text = README.read_text()
    table = text[text.index("Layout (each layer imports only") :]
    table = table[: table.index("\n\n", table.index("| package |"))]
    rows = []
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            rows.append(re.findall(r"`global_kv\.(\w+)`", first_cell))
    return [r for r in rows if r]


def _imports_between_packages() -> dict[str, set[tuple[str, str]]]:
    """package -> {(imported package, where)} for imports across global_kv packages."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if len(rel.parts) < 2:
            continue  # the top-level __init__ and _errors: not a layer
        package = rel.parts[0]
        for module, line in imports_of(path):
            parts = module.split(".")
            if parts[0] == "global_kv" and len(parts) > 1 and not parts[1].startswith("_") and parts[1] != package:
                out.setdefault(package, set()).add((parts[1], f"{rel}:{line}"))
    return out


def test_the_table_names_every_package_once() -> None:
    listed = [p for row in _rows() for p in row]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert sorted(listed) == sorted(packages)


def test_no_package_imports_one_above_it() -> None:
    rows = _rows()
    rank = {p: len(rows) - i for i, row in enumerate(rows) for p in row}
    for package, imported in _imports_between_packages().items():
        for target, where in imported:
            assert rank[target] < rank[package], f"{where}: {package} (row {rank[package]}) imports {target}"


def test_the_client_imports_only_the_protocol() -> None:
    imported = {target for target, _ in _imports_between_packages().get("client", set())}
    assert imported == {"protocol"}


def test_the_check_can_fail() -> None:
    rows = _rows()
    rank = {p: len(rows) - i for i, row in enumerate(rows) for p in row}
    assert rank["replica"] > rank["protocol"] > rank["state"] > rank["raft"]
    assert rank["app"] > rank["leader"] > rank["replica"]
