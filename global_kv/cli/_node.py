"""`global-kv node`: one Global replica as an OS process, run until SIGTERM/SIGINT.

It starts an ergo_py node (listening for peers), the Global application on it,
and the ops HTTP server if METRICS is set; then prints one `READY ...` line to
stdout, the only thing it ever prints there, so a harness can wait for it. Logs
go to stderr. A signal (or, with --exit-with-stdin, the parent closing our stdin)
stops it cleanly: the ops server, then the node (callers of in-flight requests
get an answer or a connection error, the replica's storage is closed), then
`STOPPED ...` and exit code 0. It must never exit 0 after an unclean stop: if the
Global application dies on its own, the command fails. A replica that cannot go on under
its identity (a data dir of another node or cluster, or a lost log: `DataDirMismatch`,
`LogLost`) is reported as that error's one line, without a traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any, TextIO

import trio

import ergo_py

from .._errors import GlobalKVError, LogLost
from ..api import open_etcd_server
from ..app import Application
from ..ops import open_ops_server
from ._errors import CLIError
from ._settings import NodeSettings

__all__ = ["parse_status_line", "ready_line", "run_node"]

_log = logging.getLogger("global_kv.cli.node")


def ready_line(fields: dict[str, Any]) -> str:
    return "READY " + " ".join(f"{k}={v}" for k, v in fields.items())


def parse_status_line(line: str) -> tuple[str, dict[str, str]]:
    """`WORD k=v k=v` -> (WORD, {k: v}); the format of READY and STOPPED lines."""
    word, _, rest = line.strip().partition(" ")
    fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
    return word, fields


_INNER_PANIC = re.compile(r"Panic\((?P<type>\w+)\((?P<quote>['\"])(?P<message>.*)(?P=quote)\)\)")


def _reason_text(reason: Any) -> str:
    """A process's exit reason as one readable line (the innermost error of nested start failures)."""
    error = getattr(reason, "error", None)
    text = str(error) if error else repr(reason)
    inner = _INNER_PANIC.search(text)
    return f"{inner['type']}: {inner['message']}" if inner else text


def _cause(exc: BaseException) -> GlobalKVError | None:
    """The innermost of our errors behind a start failure (spawn errors wrap it in Panic reprs)."""
    found: GlobalKVError | None = None
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, GlobalKVError):
            found = e
        e = e.__cause__ or e.__context__
    return found


async def _watch_signals(signals: Any, stop: trio.Event) -> None:
    async for signum in signals:
        if stop.is_set():
            _log.warning("already stopping (signal %s ignored)", signal.Signals(signum).name)
        else:
            _log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()


async def _watch_stdin(stop: trio.Event) -> None:
    """The parent holds our stdin open; EOF means it is gone, so we must not linger."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stream:
        while await stream.receive_some(4096):
            pass
    if not stop.is_set():
        _log.warning("stdin closed (the parent process is gone): stopping")
        stop.set()


async def run_node(settings: NodeSettings, *, out: TextIO | None = None) -> None:
    """Serve until a signal; raises CLIError if the node cannot start or stops on its own."""
    out = out if out is not None else sys.stdout
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as watchers:
            watchers.start_soon(_watch_signals, signals, stop)
            if settings.exit_with_stdin:
                watchers.start_soon(_watch_stdin, stop)
            try:
                await _serve(settings, stop, out)
            finally:
                watchers.cancel_scope.cancel()


async def _serve(settings: NodeSettings, stop: trio.Event, out: TextIO) -> None:
    config = settings.config
    host, port = settings.listen
    async with AsyncExitStack() as stack:
        try:
            node = await stack.enter_async_context(ergo_py.start_node(settings.name, settings.node_options()))
        except BaseException as exc:
            raise _start_error(exc, f"cannot listen on {host}:{port}") from exc
        try:
            await node.application_start(Application(config, mode=ergo_py.Mode.PERMANENT))
        except ergo_py.ErgoError as exc:
            cause = _cause(exc)
            reason = getattr(exc, "reason", None)
            if cause is not None:
                detail = str(cause)
            else:
                detail = _reason_text(reason) if reason is not None else str(exc)
            raise CLIError(f"the Global replica did not start: {detail}") from exc
        metrics_url = "off"
        if settings.metrics is not None:
            ops = await stack.enter_async_context(open_ops_server(node, settings.metrics))
            metrics_url = ops.url
        client_url = "off"
        if settings.client_listen is not None:
            members = [p.node for p in settings.bootstrap]
            try:
                api = await stack.enter_async_context(
                    open_etcd_server(
                        node,
                        settings.client_listen,
                        members,
                        cluster=config.cluster_id,
                        tls=settings.client_tls.context() if settings.client_tls else None,
                        peer_ports={p.node: p.port for p in (*settings.bootstrap, *settings.extra_routes)},
                    )
                )
            except OSError as exc:
                host_, port_ = settings.client_listen
                raise CLIError(f"cannot serve etcd's API on {host_}:{port_}: {exc.strerror or exc}") from exc
            client_url = api.url
        fields = {
            "node": settings.name,
            "listen": f"ws://{host}:{node.port}",
            "metrics": metrics_url,
            "client": client_url,
            "cluster": config.cluster_id,
            "storage": config.storage_type,
            "member": "yes" if settings.is_member else "no",
            "pid": os.getpid(),
        }
        if not settings.is_member:
            _log.info("%s is not in BOOTSTRAP: it waits to be added (global-kv ctl add-peer)", settings.name)
        # What exists now (modules, classes, the recovered state) lives as long as the
        # process: move it out of the cyclic collector's sight, so that a full collection
        # scans only what was allocated since (see the README, "Where the time goes").
        gc.collect()  # what start-up left as cyclic garbage goes now, not frozen forever
        gc.freeze()
        print(ready_line(fields), file=out, flush=True)
        _log.info("serving %s on ws://%s:%s (metrics %s)", settings.name, host, node.port, metrics_url)
        await stop.wait()
        _log.info("shutting down")
    if not stop.is_set() and isinstance(node.stop_reason, LogLost):
        raise CLIError(f"{settings.name} stopped: {node.stop_reason}")
    if not stop.is_set():
        raise CLIError(
            f"{settings.name} stopped on its own: the Global application terminated "
            f"({_reason_text(node.stop_reason)}); see the log above"
        )
    try:
        print(f"STOPPED node={settings.name}", file=out, flush=True)
    except BrokenPipeError:
        # Whoever read our stdout is gone (a harness that died); the stop was still clean.
        # Point stdout at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _start_error(exc: BaseException, what: str) -> BaseException:
    """Flatten trio's exception groups around a start failure into one CLIError line."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(exc)
    for leaf in leaves:
        if isinstance(leaf, (OSError, ergo_py.ErgoError, ValueError)):
            detail = leaf.strerror if isinstance(leaf, OSError) and leaf.strerror else str(leaf)
            return CLIError(f"{what}: {detail}")
    return exc
