"""How the examples reach a cluster: the one given (like `global-kv ctl`), or their own.

`--cluster BOOTSTRAP` (default $BOOTSTRAP) and `--cookie` (default $COOKIE or
$ERGO_COOKIE) name a running cluster, e.g. the one `global-kv cluster --nodes 3`
prints. With neither, the example starts a 3-node `LocalCluster` (real OS processes
on 127.0.0.1, LevelDB in a temporary directory) and stops it at the end.

Every client handed out is a `GlobalClient` acting for its own actor process on one
dial-only client node, exactly as separate application actors would. This module
must never leave a process behind: the local cluster is reaped by `LocalCluster`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from global_kv import GlobalClient, GlobalKVError, open_client
from global_kv.cli import CLIError, LocalCluster, open_session, parse_bootstrap

__all__ = ["add_cluster_arguments", "open_clients", "run_main"]


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        default=os.environ.get("BOOTSTRAP"),
        metavar="BOOTSTRAP",
        help="members n1@host=ws://host:port,... (default: $BOOTSTRAP; none: start a local 3-node cluster)",
    )
    parser.add_argument(
        "--cookie",
        default=os.environ.get("COOKIE") or os.environ.get("ERGO_COOKIE"),
        help="the cluster's cookie (default: $COOKIE)",
    )


@asynccontextmanager
async def open_clients(bootstrap: str | None, cookie: str | None, count: int) -> AsyncIterator[list[GlobalClient]]:
    """`count` GlobalClients, each with its own process, over the cluster (or a local one)."""
    async with AsyncExitStack() as stack:
        if not bootstrap:
            print("no --cluster given: starting a local 3-node cluster (LevelDB, temporary dir)", file=sys.stderr)
            cluster = await stack.enter_async_context(LocalCluster(3))
            bootstrap, cookie = cluster.bootstrap, cluster.cookie
        session = await stack.enter_async_context(open_session(parse_bootstrap(bootstrap), cookie=cookie, timeout=10.0))
        clients = [
            await stack.enter_async_context(open_client(session.node, session.reachable, timeout=10.0))
            for _ in range(count)
        ]
        yield clients


def run_main(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run `fn(*args)` under trio; a cluster or KV error becomes one line and exit code 1 (or the CLI's)."""
    try:
        return trio.run(fn, *args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except GlobalKVError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
