"""The arguments of `global-kv ctl`: common options (before or after the command) and one subcommand each.

Only argparse declarations live here; what each command does is in `_ctl`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from ..app import READ_CONSISTENCIES
from ..state import SORT_TARGETS

__all__ = ["VersionAction", "add_ctl_parser", "count", "distribution_version", "seconds"]

DISTRIBUTION = "ergo-py-global-kv"


def distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"{parser.prog} {distribution_version()}", file=sys.stdout, flush=True)
        parser.exit()


def seconds(*, zero: str | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, > 0 (or >= 0 when `zero` says what 0 means)."""
    bound = ">= 0" if zero is not None else "> 0"
    meaning = f" (0: {zero})" if zero is not None else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and zero is None):
            raise argparse.ArgumentTypeError(f"must be a number of seconds {bound}{meaning}, got {text!r}")
        return value

    return parse


def count(*, low: int = 0, zero: str | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= `low`."""
    meaning = f" (0: {zero})" if zero is not None else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}{meaning}, got {text!r}")
        return value

    return parse


def _raw(text: str) -> bytes:
    """A key or value argument as the exact bytes the shell passed (argv that is not UTF-8 included)."""
    return os.fsencode(text)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted before and after the command (`ctl --json get k` = `ctl get k --json`)."""
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    parser.add_argument(
        "--cluster",
        default=d(None),
        metavar="BOOTSTRAP",
        help="members: n1@host=ws://host:port,... (default: $BOOTSTRAP)",
    )
    parser.add_argument(
        "--cookie",
        default=d(None),
        help="the cluster's cookie (default: $COOKIE or $ERGO_COOKIE; prefer the environment)",
    )
    parser.add_argument("--json", action="store_true", default=d(False), help="print one JSON document")
    parser.add_argument(
        "--timeout", type=seconds(), default=d(5.0), metavar="S", help="give up after S seconds (default 5)"
    )
    parser.add_argument("--node", default=d(None), metavar="NAME", help="talk only to this member")


def add_ctl_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "ctl",
        help="operate a running cluster (put, get, lock, status, ...)",
        description="Operate a running cluster. Exit codes: 0 ok, 1 the answer is no (not found, CAS failed, "
        "lock held, a member gave no answer), 2 bad arguments (or a request the cluster refuses as invalid), "
        "3 cannot reach/authenticate any node, 4 no quorum.",
    )
    p.add_argument("--version", action=VersionAction)
    _common(p, top=True)
    cmds = p.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = cmds.add_parser(name, help=help_, description=help_)
        _common(c, top=False)
        return c

    def range_options(c: argparse.ArgumentParser) -> None:
        c.add_argument("--prefix", action="store_true", help="every key that starts with KEY")
        c.add_argument("--range-end", type=_raw, default=None, metavar="END", help="keys from KEY up to END")

    def duration(c: argparse.ArgumentParser) -> None:
        c.add_argument("--duration", type=seconds(), default=None, metavar="S", help="stop after S seconds")

    def consistency(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--consistency", choices=READ_CONSISTENCIES, default=None, help="read level (default: the cluster's)"
        )

    c = cmd("put", "set KEY to VALUE ('-' reads the value from stdin)")
    c.add_argument("key", type=_raw)
    c.add_argument("value", type=_raw)
    c = cmd("get", "print the value of KEY (exit 1 if it does not exist); with range options, etcd's Range")
    c.add_argument("key", type=_raw)
    shown = c.add_mutually_exclusive_group()
    shown.add_argument("--raw", action="store_true", help="write the exact bytes to stdout, no newline added")
    shown.add_argument("-o", "--output", metavar="FILE", help="write the exact bytes into FILE, print nothing")
    consistency(c)
    range_options(c)
    c.add_argument("--rev", type=count(zero="now"), default=0, help="read at revision N (default 0: now)")
    c.add_argument("--keys-only", action="store_true", help="print the keys only")
    c.add_argument("--count-only", action="store_true", help="print how many keys the range holds")
    c.add_argument("--sort-by", choices=SORT_TARGETS, default=None, help="sort by this (ascending unless --order)")
    c.add_argument("--order", choices=("ascend", "descend"), default=None, help="sort order")
    c.add_argument("--limit", type=count(zero="no limit"), default=0, help="at most N keys (default 0: no limit)")
    c = cmd("delete", "delete KEY")
    c.add_argument("key", type=_raw)
    c = cmd("cas", "compare-and-swap: set KEY to --new (or --delete) only if it is --old (or --absent)")
    c.add_argument("key", type=_raw)
    old = c.add_mutually_exclusive_group(required=True)
    old.add_argument("--old", type=_raw, help="the value KEY must have now")
    old.add_argument("--absent", action="store_true", help="KEY must not exist now")
    new = c.add_mutually_exclusive_group(required=True)
    new.add_argument("--new", type=_raw, help="the value to set")
    new.add_argument("--delete", action="store_true", help="delete KEY instead")
    c = cmd("range", "list keys with START <= key < END ('' for an open end)")
    c.add_argument("start", type=_raw)
    c.add_argument("end", type=_raw)
    c.add_argument("--limit", type=count(zero="no limit"), default=0, help="at most N pairs (default 0: no limit)")
    consistency(c)
    c = cmd("prefix", "list keys starting with PREFIX")
    c.add_argument("prefix", type=_raw)
    c.add_argument("--limit", type=count(zero="no limit"), default=0, help="at most N pairs (default 0: no limit)")
    consistency(c)
    c = cmd("lock", "acquire KEY, print its fencing token, hold it until Ctrl-C (or --duration), release")
    c.add_argument("key", type=_raw)
    c.add_argument(
        "--ttl",
        type=seconds(zero="none"),
        default=0.0,
        metavar="S",
        help="lock TTL, kept alive while held (default 0: none)",
    )
    c.add_argument(
        "--wait",
        type=seconds(zero="try once"),
        default=0.0,
        metavar="S",
        help="wait in line up to S seconds (default 0: try once)",
    )
    c.add_argument(
        "--duration",
        type=seconds(),
        default=None,
        metavar="S",
        help="release after S seconds, S > 0 (default: hold until Ctrl-C/SIGTERM)",
    )
    c = cmd("unlock", "release KEY held with fencing TOKEN (from any client)")
    c.add_argument("key", type=_raw)
    c.add_argument("token", type=count(low=1), metavar="TOKEN")
    cmd("locks", "list held locks (owner, token, held for, TTL, waiters)")
    cmd("status", "status of every member (role, term, commit, lag, storage)")
    cmd("members", "the members as the leader sees them")
    c = cmd("add-peer", "add NODE as a voting member (it must be running and reachable by the members)")
    c.add_argument("peer", metavar="NODE")
    c = cmd("remove-peer", "remove NODE from the members")
    c.add_argument("peer", metavar="NODE")
    c = cmd("compaction", "forget the key history at or below REVISION (etcd's compaction, through the log)")
    c.add_argument("revision", type=count(low=1), metavar="REVISION")
    cmd(
        "txn",
        "a transaction from stdin, as etcdctl txn reads it: compares, a blank line, success ops, "
        "a blank line, failure ops",
    )
    c = cmd("watch", "print every change of KEY (or --prefix, --range-end) until Ctrl-C, --count or --duration")
    c.add_argument("key", type=_raw)
    range_options(c)
    c.add_argument("--rev", type=count(zero="from now"), default=0, help="start at revision N (default: from now)")
    c.add_argument("--prev-kv", action="store_true", help="also print each key's previous value (--json)")
    c.add_argument("--count", type=count(zero="no limit"), default=0, help="stop after N events")
    duration(c)
    c = cmd("lease", "leases: grant TTL | revoke ID | keep-alive ID [--once] | timetolive ID [--keys] | list")
    c.add_argument("action", choices=("grant", "revoke", "keep-alive", "timetolive", "list"))
    c.add_argument("arg", nargs="?", default=None, metavar="TTL|ID")
    c.add_argument("--keys", action="store_true", help="timetolive: list the lease's keys")
    c.add_argument("--once", action="store_true", help="keep-alive: send one and exit")
    duration(c)
    c = cmd("elect", "campaign in election NAME with VALUE and hold it until Ctrl-C (or --listen: print each leader)")
    c.add_argument("name", type=_raw)
    c.add_argument("value", type=_raw, nargs="?", default=None)
    c.add_argument("--listen", action="store_true", help="observe the election instead of campaigning")
    c.add_argument("--ttl", type=seconds(), default=10.0, metavar="S", help="the campaign lease's TTL (default 10)")
    c.add_argument("--count", type=count(zero="no limit"), default=0, help="--listen: stop after N leaders")
    duration(c)
    c = cmd("semaphore", "take one of PERMITS permits of NAME, print its token, hold it until Ctrl-C or --duration")
    c.add_argument("name", type=_raw)
    c.add_argument("permits", type=count(low=1), metavar="PERMITS")
    c.add_argument("--ttl", type=seconds(), default=10.0, metavar="S", help="the permit's TTL, kept alive (default 10)")
    c.add_argument("--wait", type=seconds(zero="forever"), default=0.0, metavar="S", help="wait at most S seconds")
    duration(c)
    cmd("snapshot", "take a snapshot on every member (or --node) and compact its log")
    cmd("compact", "compact the Raft log of every member (or --node) through a snapshot")
    cmd("metrics", "print the Prometheus metrics of every member (or --node)")
    return p
