"""BOOTSTRAP strings: who the members are and where to dial them.

Format (the seed's, extended): a comma-separated list of entries, each either a
bare node name `name@host` (dialled at `ws://host:15001`, the seed's docker
layout where every node listens on 15001 under its own hostname) or
`name@host=ws://addr:port` (or `wss://`). The same string is given to every node
and to `global-kv ctl --cluster`. Parsing is strict: a malformed entry is a
`UsageError` naming it, never skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ergo_py import ProcessID, validate_node_name

from ..client import DEFAULT_PORT
from ..client import parse_bootstrap as parse_routes
from ._errors import UsageError

__all__ = [
    "DEFAULT_PORT",
    "Peer",
    "format_bootstrap",
    "members_of",
    "parse_bootstrap",
    "routes_of",
    "validate_node_name",
]


@dataclass(frozen=True)
class Peer:
    """One member: its node name and the websocket URL it accepts links on."""

    node: str
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_PORT

    def entry(self) -> str:
        return f"{self.node}={self.url}"


def parse_bootstrap(text: str, *, what: str = "BOOTSTRAP") -> list[Peer]:
    """Parse a BOOTSTRAP string; raises UsageError for a malformed or repeated entry."""
    try:
        routes = parse_routes(text, what=what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return [Peer(node, url) for node, url in routes.items()]


def format_bootstrap(peers: Iterable[Peer]) -> str:
    return ",".join(p.entry() for p in peers)


def members_of(peers: Sequence[Peer], name: str = "global") -> tuple[ProcessID, ...]:
    """The Raft members a BOOTSTRAP names: the `global` process on each node."""
    return tuple(ProcessID(name, p.node) for p in peers)


def routes_of(peers: Iterable[Peer], *, exclude: str | None = None) -> dict[str, str]:
    """node -> url for ergo_py's NodeOptions.routes (without `exclude`, the node itself)."""
    return {p.node: p.url for p in peers if p.node != exclude}
