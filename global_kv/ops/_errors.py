"""The errors of global_kv.ops: the HTTP metrics/health server of a node."""

from __future__ import annotations

from .._errors import GlobalKVError

__all__ = ["MetricsIncomplete", "OpsError", "OpsServerError"]


class OpsError(GlobalKVError):
    """Root of the errors the ops server raises."""


class MetricsIncomplete(OpsError):
    """The replica's metrics lack a value the exposition promises (`missing` names them).

    Raised instead of exporting a partial set: a dashboard that silently loses a
    series is worse than a scrape that fails and says why.
    """

    def __init__(self, missing: tuple[str, ...]) -> None:
        self.missing = missing
        super().__init__(
            f"the replica's metrics lack {', '.join(missing)}; the node and global_kv.ops "
            "are from different versions: upgrade them together"
        )


class OpsServerError(OpsError):
    """The HTTP server could not start (`address` is what it tried to bind)."""

    def __init__(self, address: str, detail: str) -> None:
        self.address = address
        self.detail = detail
        super().__init__(f"cannot serve metrics on {address}: {detail}")
