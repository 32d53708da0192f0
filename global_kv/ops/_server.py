"""Serve a node's `/metrics` and `/health` over HTTP inside the node's own trio loop.

Hypercorn (its trio worker) does the HTTP; `OpsApp` answers. The server lives in a
nursery the caller owns (`open_ops_server` is an async context manager), so it
stops with the node and never outlives it. Port 0 binds a free port; the bound
address is on the returned `OpsServer`. It must never print to stdout (the `node`
command's stdout is a machine-read channel): hypercorn logs through our loggers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio

import ergo_py

from ..app import GLOBAL_NAME
from ._app import NodeSource, OpsApp, ReplicaSource
from ._errors import OpsServerError
from ._health import DEFAULT_MAX_COMMIT_LAG

__all__ = ["OpsServer", "open_ops_server", "parse_host_port"]

_log = logging.getLogger("global_kv.ops.http")


@dataclass(frozen=True)
class OpsServer:
    """A running ops server: where it listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_host_port(text: str, *, what: str = "address") -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or `:port` for all interfaces) -> (host, port)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"invalid {what} {text!r}: expected host:port, e.g. 127.0.0.1:9100")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


@asynccontextmanager
async def open_ops_server(
    node: ergo_py.Node,
    address: tuple[str, int],
    *,
    source: ReplicaSource | None = None,
    name: str = GLOBAL_NAME,
    call_timeout: float = 2.0,
    max_commit_lag: int = DEFAULT_MAX_COMMIT_LAG,
) -> AsyncIterator[OpsServer]:
    """Serve `GET /metrics` and `GET /health` for the replica `name` on `node` at `address`.

    Raises `OpsServerError` if the address cannot be bound. Leaving the block stops
    the server (requests in flight get up to one second to finish).
    """
    # Imported here so that commands which only render metrics (ctl) do not pay for it.
    from hypercorn.config import Config
    from hypercorn.trio import serve

    host, port = address
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = _log
    config.graceful_timeout = 1.0
    config.include_server_header = False
    app = OpsApp(source or NodeSource(node, name, call_timeout), max_commit_lag=max_commit_lag)
    stop = trio.Event()
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        except BaseException as exc:
            cause = _os_error(exc)
            if cause is None:
                raise
            error = OpsServerError(config.bind[0], cause.strerror or str(cause))
            error.__cause__ = cause
        else:
            bound_port = int(binds[0].rpartition(":")[2]) if binds else port
            try:
                yield OpsServer(host, bound_port)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, unwrapped
                # Re-raised outside the nursery, so the caller sees its own exception
                # rather than an ExceptionGroup around it (as ergo_py.start_node does).
                error = exc
            finally:
                stop.set()
    if error is not None:
        raise error


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError (a bind failure) inside `exc`, which trio may have wrapped in groups."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _os_error(sub)
            if found is not None:
                return found
    return None
