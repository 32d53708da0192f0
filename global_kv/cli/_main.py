"""The `global-kv` console script: `node`, `cluster`, `ctl` and `demo`.

`main` parses arguments, runs the command under trio, and turns every failure a
user can cause into one line on stderr and a non-zero exit code (see `_errors`).
It must never print a traceback for bad input; an exception it does not know is
a bug and is allowed to show.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import BinaryIO, NoReturn, TextIO

import trio

import ergo_py

from .._errors import GlobalKVError
from ..app import READ_CONSISTENCIES
from ._ctl import map_error, run_ctl
from ._ctl_args import VersionAction, add_ctl_parser
from ._errors import EXIT_OUTCOME, CLIError, UsageError
from ._format import readable_message

__all__ = ["build_parser", "main"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="global-kv", description="Global: a Raft-replicated KV store with distributed locks.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = sub.add_parser(
        "node",
        help="run one node (settings from flags or the environment)",
        description="Run one node until SIGTERM/SIGINT. Each flag falls back to the environment variable "
        "in brackets. Prints 'READY ...' on stdout when serving.",
    )
    node.add_argument("--name", help="node name name@host [NODE_NAME]")
    node.add_argument("--cluster-id", help="cluster id [CLUSTER_ID] (default global)")
    node.add_argument(
        "--bootstrap", help="members: n1@h1,n2@h2 or n1@h1=ws://h1:15001,... [BOOTSTRAP] (default: just this node)"
    )
    node.add_argument("--routes", help="addresses of non-members (for add-peer), same format [ROUTES]")
    node.add_argument("--data-dir", help="data directory [DATA_DIR] (none: memory storage)")
    node.add_argument("--cookie", help="the cluster's shared secret [COOKIE or ERGO_COOKIE]; prefer the environment")
    node.add_argument("--listen", help="host:port for peers [LISTEN] (default: this node's BOOTSTRAP address)")
    node.add_argument("--metrics", help="host:port of the HTTP /metrics and /health server [METRICS] (default off)")
    node.add_argument(
        "--client-listen",
        help="host:port (or a port, on 127.0.0.1) of etcd's API, gRPC and JSON [CLIENT_LISTEN] (default off)",
    )
    node.add_argument("--client-cert", help="TLS certificate of etcd's API [CLIENT_CERT] (default: plain)")
    node.add_argument("--client-key", help="its private key [CLIENT_KEY]")
    node.add_argument("--trusted-ca", help="CA that signs client certificates; they are required then [TRUSTED_CA]")
    node.add_argument("--storage", help="memory, leveldb, lmdb, hybrid [STORAGE] (default leveldb with a data dir)")
    node.add_argument(
        "--read-consistency", help=f"default read level, one of {', '.join(READ_CONSISTENCIES)} [READ_CONSISTENCY]"
    )
    node.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR [LOG_LEVEL] (default INFO)")
    node.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other GlobalConfig field, e.g. --set heartbeat_interval=50",
    )
    node.add_argument(
        "--exit-with-stdin", action="store_true", help="stop when stdin closes (for supervisors that hold it open)"
    )

    cluster = sub.add_parser(
        "cluster",
        help="run a local cluster of N node processes until Ctrl-C",
        description="Start N `global-kv node` processes on 127.0.0.1 and stop them all on Ctrl-C/SIGTERM.",
    )
    cluster.add_argument("--nodes", type=int, default=3, help="members (default 3)")
    cluster.add_argument(
        "--data-dir", help="keep data and logs here (default: a temporary directory, removed at the end)"
    )
    cluster.add_argument("--storage", default="leveldb", help="storage engine (default leveldb)")
    cluster.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="node i listens on BASE+i, its metrics on BASE+100+i (default: free ports)",
    )
    cluster.add_argument("--no-metrics", action="store_true", help="no HTTP metrics/health servers")
    cluster.add_argument(
        "--etcd-api", action="store_true", help="each node also serves etcd's API (for etcdctl), on BASE+200+i"
    )
    cluster.add_argument("--read-consistency", choices=READ_CONSISTENCIES, default=None)
    cluster.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="GlobalConfig field for every node"
    )

    demo = sub.add_parser("demo", help="a narrated tour of a local 3-node cluster (well under a minute)")
    demo.add_argument("--storage", default="leveldb", help="storage engine (default leveldb)")

    add_ctl_parser(sub)
    return parser


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _as_cli_error(exc: BaseException) -> CLIError | None:
    """The one CLIError to report for `exc` (unwrapping trio's groups); None for a bug."""
    for leaf in _leaves(exc):
        if isinstance(leaf, KeyboardInterrupt):
            return None
        mapped = map_error(leaf)
        if mapped is not None:
            return mapped
        if isinstance(leaf, trio.TooSlowError):
            return CLIError("timed out")
        if isinstance(leaf, (ergo_py.ErgoError, GlobalKVError, OSError)):
            text = leaf.strerror if isinstance(leaf, OSError) and leaf.strerror else str(leaf)
            return CLIError(text or type(leaf).__name__)
    return None


def _unexpected(exc: BaseException) -> str:
    """One line for an exception no handler knows (a bug): its innermost, most telling leaf."""
    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, trio.Cancelled)] or [exc]
    leaf = leaves[0]
    text = " ".join(str(leaf).split())[:300]
    more = f" (and {len(leaves) - 1} more)" if len(leaves) > 1 else ""
    return f"unexpected error, a bug worth reporting: {type(leaf).__name__}: {text}{more}"


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=_LOG_FORMAT, force=True)


async def _run_cluster(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    from ._cluster import LocalCluster
    from ._settings import parse_overrides

    config = parse_overrides(args.set)
    cookie = env.get("COOKIE") or env.get("ERGO_COOKIE")
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        cluster = LocalCluster(
            args.nodes,
            data_dir=args.data_dir,
            storage=args.storage,
            base_port=args.base_port,
            cookie=cookie,
            metrics=not args.no_metrics,
            etcd_api=args.etcd_api,
            read_consistency=args.read_consistency,
            config=config,
        )
        async with cluster:
            out = sys.stdout
            print(cluster.describe(show_cookie=not cookie), file=out, flush=True)
            async with trio.open_nursery() as nursery:

                async def watch(i: int) -> None:
                    node = cluster.nodes[i]
                    process = node.process
                    assert process is not None
                    code = await process.wait()
                    print(
                        f"note: {node.name} (pid {process.pid}) exited with code {code}; see {node.log_path}",
                        file=sys.stderr,
                        flush=True,
                    )

                for i in range(len(cluster.nodes)):
                    nursery.start_soon(watch, i)
                async for signum in signals:
                    print(
                        f"\n{signal.Signals(signum).name}: stopping {len(cluster.nodes)} nodes...", file=out, flush=True
                    )
                    break
                nursery.cancel_scope.cancel()
        print("stopped every node", file=sys.stdout, flush=True)


async def ctl(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: BinaryIO | None = None,
) -> int:
    """`global-kv ctl ARGV...` inside a running trio program; returns the exit code.

    Output and the one-line error go to `out`/`err` exactly as the command prints
    them, so a harness can script a cluster without starting a process per command.
    """
    env = os.environ if env is None else env
    err = err if err is not None else sys.stderr
    try:
        args = build_parser().parse_args(["ctl", *argv])
        return await run_ctl(args, env=env, out=out, err=err, stdin=stdin)
    except (SystemExit, KeyboardInterrupt, trio.Cancelled):
        raise
    except BaseException as exc:
        error = _as_cli_error(exc)
        if error is None:  # never a traceback from ctl: one line, exit 1
            print(f"global-kv ctl: {_unexpected(exc)}", file=err, flush=True)
            return EXIT_OUTCOME
        print(f"global-kv ctl: {readable_message(str(error))}", file=err, flush=True)
        return error.exit_code or EXIT_OUTCOME


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the `global-kv` command; returns the exit code (the console script exits with it)."""
    env = os.environ if env is None else env
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "global-kv ctl" if argv[:1] == ["ctl"] else "global-kv"
    try:
        args = build_parser().parse_args(argv)
        command = f"global-kv {args.command}"
        # Imported per command: ctl must not pay for the node, the ops server or the cluster runner.
        if args.command == "node":
            from ._node import run_node
            from ._settings import node_settings

            settings = node_settings(args, env)
            _setup_logging(settings.config.log_level)
            trio.run(run_node, settings)
            return 0
        if args.command == "cluster":
            _setup_logging("WARNING")
            trio.run(_run_cluster, args, env)
            return 0
        if args.command == "demo":
            from ._demo import run_demo

            _setup_logging("ERROR")  # the tour is the output; the nodes log to files
            trio.run(lambda: run_demo(storage=args.storage))
            return 0
        _setup_logging("ERROR")
        code: int = trio.run(lambda: run_ctl(args, env=env))
        return code
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        error = _as_cli_error(exc)
        if error is None:
            if command != "global-kv ctl":
                raise
            print(f"{command}: {_unexpected(exc)}", file=sys.stderr, flush=True)
            return EXIT_OUTCOME
        print(f"{command}: {readable_message(str(error))}", file=sys.stderr, flush=True)
        return error.exit_code or EXIT_OUTCOME
