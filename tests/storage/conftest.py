"""Fixtures for the storage tests: an engine factory per engine (the small tmpfs is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from global_kv.storage import ENGINE_NAMES, StorageEngine, open_engine


class EngineFactory:
    """Opens (and reopens) one engine kind in one directory; closes what it opened."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.durable = name != "memory"
        self._opened: list[StorageEngine] = []

    def open(self, **options: Any) -> StorageEngine:
        if self.name == "hybrid":
            options.setdefault("checkpoint_bytes", 64 << 10)  # exercise checkpoints often
        if self.name == "lmdb":
            options.setdefault("map_size", 1 << 20)  # exercise map growth
        engine = open_engine(self.name, self.root, **options)
        self._opened.append(engine)
        return engine

    def close_all(self) -> None:
        for engine in self._opened:
            engine.close()


@pytest.fixture(params=ENGINE_NAMES)
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    factory = EngineFactory(request.param, tmp_path / request.param)
    yield factory
    factory.close_all()


@pytest.fixture(params=[n for n in ENGINE_NAMES if n != "memory"])
def durable_engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    factory = EngineFactory(request.param, tmp_path / request.param)
    yield factory
    factory.close_all()


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[[str], StorageEngine]]:
    """Open any engine by name in a fresh directory (for cross-engine tests)."""
    factories: list[EngineFactory] = []

    def make(name: str) -> StorageEngine:
        f = EngineFactory(name, tmp_path / f"{name}-{uuid.uuid4().hex[:8]}")
        factories.append(f)
        return f.open()

    yield make
    for f in factories:
        f.close_all()
