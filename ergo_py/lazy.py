"""Package namespaces whose names are imported on first use (PEP 562).

`ergo_py`, `ergo_py.net` and `global_kv` export many names from many modules; importing
them all at once would load trio (and, for `global_kv`, the server and its storage
engines) for a program that only wants an identifier type or the client. Each of those
packages lists its names by module and gets its `__all__`, `__getattr__` and `__dir__`
here. Imports no trio.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any

__all__ = ["lazy_namespace"]


def lazy_namespace(
    package: str, exports: Mapping[str, Sequence[str]], submodules: Sequence[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for `package`, whose public names are
    `exports` (relative module -> names) and its `submodules`. A name is imported from its
    module when first asked for, then kept in the package's namespace."""
    where = {name: module for module, names in exports.items() for name in names}
    names = [*submodules, *where]
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in submodules:
            value = import_module(f".{name}", package)
        elif name in where:
            value = getattr(import_module(where[name], package), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return names, __getattr__, __dir__
