"""Fixtures for the simulator's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def patch() -> Iterator[Callable[[object, str, object], None]]:
    """Replace an attribute for the test (to inject a bug), restored afterwards."""
    undo: list[tuple[object, str, object]] = []

    def apply(owner: object, name: str, value: object) -> None:
        undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    yield apply
    for owner, name, value in reversed(undo):
        setattr(owner, name, value)
