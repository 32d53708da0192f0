from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

# The helpers module sits beside this file; pytest does not put test directories on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from net_helpers import Cluster


@pytest.fixture
async def cluster(nursery: trio.Nursery) -> AsyncIterator[Cluster]:
    c = Cluster(nursery)
    try:
        yield c
    finally:
        await c.aclose()
