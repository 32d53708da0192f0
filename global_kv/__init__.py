"""Global: a Raft-replicated key-value store with distributed locks, hosted on ergo_py.

Start it on a node with `await node.application_start(Application(GlobalConfig(...)))`
and use it through `GlobalClient` (or `open_client` from code that is not an actor).

Importing the package loads no module: each name is imported from its module on first
use (PEP 562), so `import global_kv.client` loads no server (`global_kv.app`,
`global_kv.leader`, the storage engines) and `import global_kv.protocol` no trio, while
`from global_kv import GlobalClient, Application` works as before.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import CASFailed as CASFailed
    from ._errors import ConfChangeRejected as ConfChangeRejected
    from ._errors import DataDirMismatch as DataDirMismatch
    from ._errors import GlobalKVError as GlobalKVError
    from ._errors import InvalidRequest as InvalidRequest
    from ._errors import LockHeld as LockHeld
    from ._errors import LockNotHeld as LockNotHeld
    from ._errors import LockTimeout as LockTimeout
    from ._errors import LogLost as LogLost
    from ._errors import NotLeader as NotLeader
    from ._errors import RaftInvariantError as RaftInvariantError
    from ._errors import RequestFailed as RequestFailed
    from ._errors import RequestTooLarge as RequestTooLarge
    from ._errors import SessionExpired as SessionExpired
    from ._errors import StaleToken as StaleToken
    from ._errors import StorageCorrupted as StorageCorrupted
    from ._errors import StorageError as StorageError
    from ._errors import StorageFull as StorageFull
    from ._errors import TooManyWaiters as TooManyWaiters
    from ._errors import TransferRejected as TransferRejected
    from ._errors import Unavailable as Unavailable
    from .app import Application as Application
    from .app import GlobalActor as GlobalActor
    from .app import GlobalConfig as GlobalConfig
    from .client import FencedResource as FencedResource
    from .client import GlobalClient as GlobalClient
    from .client import LockHandle as LockHandle
    from .client import open_client as open_client
    from .leader import LeaderActor as LeaderActor
    from .leader import LeaderOptions as LeaderOptions

# Each public name, by the module it lives in: imported on first use.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._errors": (
        "CASFailed",
        "ConfChangeRejected",
        "DataDirMismatch",
        "GlobalKVError",
        "InvalidRequest",
        "LockHeld",
        "LockNotHeld",
        "LockTimeout",
        "LogLost",
        "NotLeader",
        "RaftInvariantError",
        "RequestFailed",
        "RequestTooLarge",
        "SessionExpired",
        "StaleToken",
        "StorageCorrupted",
        "StorageError",
        "StorageFull",
        "TooManyWaiters",
        "TransferRejected",
        "Unavailable",
    ),
    ".app": ("Application", "GlobalActor", "GlobalConfig"),
    ".client": ("FencedResource", "GlobalClient", "LockHandle", "open_client"),
    ".leader": ("LeaderActor", "LeaderOptions"),
}
_SUBMODULES: tuple[str, ...] = ()

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [*_SUBMODULES, *_WHERE]


def __getattr__(name: str) -> Any:
    """Import `name` from its module on first use, and keep it (PEP 562)."""
    if name in _SUBMODULES:
        value = import_module(f".{name}", __name__)
    elif name in _WHERE:
        value = getattr(import_module(_WHERE[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
