"""The one place the client protocol names its wire types: `global_kv.<ClassName>`.

A registered name is the contract between nodes of different versions, so it is fixed
here rather than derived from the module path: moving a class between modules must not
break a running cluster.
"""

from __future__ import annotations

from typing import Any

from ergo_py.wire import register_type

__all__ = ["wire_type"]


def wire_type(cls: type) -> Any:
    """Register `cls` for the wire as `global_kv.<its class name>` (a class decorator)."""
    return register_type(cls, name=f"global_kv.{cls.__name__}")
