"""Choose a storage engine by name, as the configuration spells it.

Each durable engine gets its own subdirectory (`<data_dir>/kv-<name>`), so switching
the configured engine never makes one engine open another's files. This module must
never guess: an unknown name or a missing data directory for a durable engine raises.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._engine import StorageEngine
from ._hybrid import HybridStorage
from ._leveldb import LevelDBStorage
from ._lmdb import LMDBStorage
from ._memory import MemoryStorage

__all__ = ["DEFAULT_ENGINE", "ENGINE_NAMES", "engine_path", "open_engine"]

ENGINE_NAMES = ("memory", "leveldb", "lmdb", "hybrid")
DEFAULT_ENGINE = "leveldb"

_DURABLE: dict[str, type[LevelDBStorage | LMDBStorage | HybridStorage]] = {
    "leveldb": LevelDBStorage,
    "lmdb": LMDBStorage,
    "hybrid": HybridStorage,
}


def engine_path(name: str, data_dir: str | os.PathLike[str]) -> Path:
    """Where `open_engine(name, data_dir)` keeps its files."""
    return Path(data_dir) / f"kv-{name}"


def open_engine(
    name: str = DEFAULT_ENGINE,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> StorageEngine:
    """Open engine `name` ("memory", "leveldb", "lmdb" or "hybrid") under `data_dir`.

    `options` go to the engine's constructor (e.g. `sync=True`). "memory" keeps nothing
    on disk and ignores `data_dir`.
    """
    if name == "memory":
        if options:
            raise TypeError(f"memory engine takes no options, got {sorted(options)}")
        return MemoryStorage()
    cls = _DURABLE.get(name)
    if cls is None:
        raise ValueError(f"unknown storage engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    if data_dir is None:
        raise ValueError(f"the {name} engine is durable and needs a data directory")
    return cls(engine_path(name, data_dir), **options)
