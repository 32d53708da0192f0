"""The `global-kv` command (node, cluster, ctl, demo) and `LocalCluster` for harnesses."""

from typing import TYPE_CHECKING, Any

from ._errors import EXIT_CONNECT as EXIT_CONNECT
from ._errors import EXIT_OK as EXIT_OK
from ._errors import EXIT_OUTCOME as EXIT_OUTCOME
from ._errors import EXIT_UNAVAILABLE as EXIT_UNAVAILABLE
from ._errors import EXIT_USAGE as EXIT_USAGE
from ._errors import CLIError as CLIError
from ._errors import ClusterUnavailable as ClusterUnavailable
from ._errors import ConnectError as ConnectError
from ._errors import NodeStartError as NodeStartError
from ._errors import OutcomeError as OutcomeError
from ._errors import UsageError as UsageError
from ._main import ctl as ctl
from ._main import main as main
from ._peers import Peer as Peer
from ._peers import format_bootstrap as format_bootstrap
from ._peers import parse_bootstrap as parse_bootstrap
from ._session import Session as Session
from ._session import open_session as open_session

if TYPE_CHECKING:
    from ._cluster import LocalCluster as LocalCluster
    from ._cluster import LocalNode as LocalNode


def __getattr__(name: str) -> Any:
    # LocalCluster is imported on first use: `global-kv ctl` starts faster without it.
    if name in ("LocalCluster", "LocalNode"):
        from . import _cluster

        return getattr(_cluster, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
