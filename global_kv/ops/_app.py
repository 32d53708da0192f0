"""The ASGI application behind a node's ops address: `GET /metrics` and `GET /health`.

Each request asks the local `global` replica for fresh numbers (one `MetricsRequest`
and/or `StatusRequest` call, bounded by a timeout), so a scrape never shows a
cached value and the endpoint costs nothing between scrapes. It must never block
the replica: calls go through the replica's mailbox like any client's, and a
replica that does not answer in time makes the endpoint answer 503, not hang.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import ergo_py
from ergo_py import ErgoError

from .._errors import GlobalKVError
from ..app import GLOBAL_NAME
from ..protocol import MetricsRequest, StatusRequest, StatusResponse, health_read
from ._errors import OpsError
from ._health import DEFAULT_MAX_COMMIT_LAG, health_from_status
from ._metrics import CONTENT_TYPE, render_metrics

__all__ = ["NodeSource", "OpsApp", "ReplicaSource"]

_log = logging.getLogger("global_kv.ops")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ReplicaSource(Protocol):
    """Where the numbers come from (a node's local replica; tests may give another)."""

    node_name: str

    async def status(self) -> StatusResponse: ...

    async def metrics(self) -> dict[str, Any]: ...

    async def read_through(self) -> None:
        """A linearizable read through this replica (raises if it does not complete)."""


class NodeSource:
    """The replica registered as `name` on `node`, asked with calls bounded by `timeout`."""

    def __init__(self, node: ergo_py.Node, name: str = GLOBAL_NAME, timeout: float = 2.0) -> None:
        self.node = node
        self.name = name
        self.timeout = timeout
        self.node_name = node.name

    async def status(self) -> StatusResponse:
        result = await self.node.call(self.name, StatusRequest(), timeout=self.timeout)
        if not isinstance(result, StatusResponse):
            raise OpsError(f"{self.name} answered StatusRequest with {type(result).__name__}, not a StatusResponse")
        return result

    async def read_through(self) -> None:
        await self.node.call(self.name, health_read(), timeout=self.timeout)

    async def metrics(self) -> dict[str, Any]:
        result = await self.node.call(self.name, MetricsRequest(), timeout=self.timeout)
        if not isinstance(result, dict):
            raise OpsError(f"{self.name} answered MetricsRequest with {type(result).__name__}, not a dict")
        return result


# What a replica that is down, starting, or overloaded raises: answered as 503.
_UNAVAILABLE = (ErgoError, GlobalKVError)


class OpsApp:
    """ASGI 3 application; `max_commit_lag` is the /health limit of unapplied entries."""

    def __init__(self, source: ReplicaSource, *, max_commit_lag: int = DEFAULT_MAX_COMMIT_LAG) -> None:
        self.source = source
        self.max_commit_lag = max_commit_lag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not served here: returning closes the connection
        path = scope.get("path", "/")
        method = scope.get("method", "GET")
        if path not in ("/metrics", "/health", "/"):
            await _respond(send, 404, b"not found: try /metrics or /health\n")
            return
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed: use GET\n", extra=[(b"allow", b"GET, HEAD")])
            return
        if path == "/metrics":
            status_code, body, content_type = await self._metrics()
        elif path == "/health":
            status_code, body, content_type = await self._health()
        else:
            status_code, body, content_type = 200, b"global-kv node: GET /metrics, GET /health\n", "text/plain"
        await _respond(send, status_code, body, content_type=content_type, head=method == "HEAD")

    async def _metrics(self) -> tuple[int, bytes, str]:
        try:
            status = await self.source.status()
            metrics = await self.source.metrics()
        except _UNAVAILABLE as exc:
            return 503, f"global replica unavailable: {exc}\n".encode(), "text/plain; charset=utf-8"
        try:
            return 200, render_metrics(metrics, status, node=self.source.node_name), CONTENT_TYPE
        except OpsError as exc:
            _log.error("cannot render metrics: %s", exc)
            return 500, f"{exc}\n".encode(), "text/plain; charset=utf-8"

    async def _health(self) -> tuple[int, bytes, str]:
        try:
            status: StatusResponse | None = await self.source.status()
            error = None
        except _UNAVAILABLE as exc:
            status, error = None, str(exc) or type(exc).__name__
        unread = None
        if status is not None and status.has_quorum:
            # As etcd's /health: a read through this replica, so that one cut off from its
            # leader says so, also while its quiet group has not noticed the cut.
            try:
                await self.source.read_through()
            except _UNAVAILABLE as exc:
                unread = str(exc) or type(exc).__name__
        health = health_from_status(
            status, node=self.source.node_name, error=error, max_commit_lag=self.max_commit_lag, unread=unread
        )
        body = json.dumps(health.to_json()).encode() + b"\n"
        return health.http_status, body, "application/json"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
