"""Fixtures for the state machine tests: engines by name, a machine, a log builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from global_kv.state import StateMachine
from global_kv.storage import StorageEngine, open_engine
from tests.state.state_support import Log


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[..., StorageEngine]]:
    """Opens engines by name ("memory", "leveldb", ...) in fresh directories; closes them."""
    opened: list[StorageEngine] = []
    counter = iter(range(10_000))

    def make(name: str = "memory", directory: Path | None = None) -> StorageEngine:
        where = directory if directory is not None else tmp_path / f"e{next(counter)}"
        engine = open_engine(name, where) if name != "memory" else open_engine("memory")
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(engines: Callable[..., StorageEngine]) -> StorageEngine:
    return engines("memory")


@pytest.fixture
def sm(engine: StorageEngine) -> StateMachine:
    return StateMachine(engine)


@pytest.fixture
def log() -> Log:
    return Log()
