"""Global: a Raft-replicated key-value store with distributed locks, hosted on ergo_py.

Start it on a node with `await node.application_start(Application(GlobalConfig(...)))`
and use it through `GlobalClient` (or `open_client` from code that is not an actor).

Importing the package loads no module: each name is imported from its module on first
use (PEP 562), so `import global_kv.client` loads no server (`global_kv.app`,
`global_kv.leader`, the storage engines) and `import global_kv.protocol` no trio, while
`from global_kv import GlobalClient, Application` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ergo_py.lazy import lazy_namespace

if TYPE_CHECKING:
    from ._errors import CASFailed as CASFailed
    from ._errors import Compacted as Compacted
    from ._errors import ConfChangeRejected as ConfChangeRejected
    from ._errors import DataDirMismatch as DataDirMismatch
    from ._errors import FutureRevision as FutureRevision
    from ._errors import GlobalKVError as GlobalKVError
    from ._errors import InvalidRequest as InvalidRequest
    from ._errors import KeyNotFound as KeyNotFound
    from ._errors import LeaseExists as LeaseExists
    from ._errors import LeaseNotFound as LeaseNotFound
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
        "KeyNotFound",
        "LeaseExists",
        "LeaseNotFound",
        "LockHeld",
        "LockNotHeld",
        "LockTimeout",
        "LogLost",
        "NotLeader",
        "RaftInvariantError",
        "RequestFailed",
        "RequestTooLarge",
        "SessionExpired",
        "Compacted",
        "FutureRevision",
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

__all__, __getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS, _SUBMODULES)
