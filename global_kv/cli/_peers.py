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

DEFAULT_PORT = 15001


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


def _check_url(node: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad address {url!r} for {node}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname or port is None:
        raise UsageError(f"bad address {url!r} for {node}: expected ws://host:port or wss://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"bad address {url!r} for {node}: give only scheme, host and port")
    return f"{parts.scheme}://{parts.netloc}"


def parse_bootstrap(text: str, *, what: str = "BOOTSTRAP") -> list[Peer]:
    """Parse a BOOTSTRAP string; raises UsageError for a malformed or repeated entry."""
    peers: list[Peer] = []
    seen: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        node, sep, url = entry.partition("=")
        node = node.strip()
        try:
            validate_node_name(node)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None
        if node in seen:
            raise UsageError(f"{what}: node {node} is listed twice")
        seen.add(node)
        if sep:
            url = _check_url(node, url.strip())
        else:
            url = f"ws://{node.partition('@')[2]}:{DEFAULT_PORT}"
        peers.append(Peer(node, url))
    if not peers:
        raise UsageError(f"{what} is empty: give name@host[=ws://host:port] entries separated by commas")
    return peers


def format_bootstrap(peers: Iterable[Peer]) -> str:
    return ",".join(p.entry() for p in peers)


def members_of(peers: Sequence[Peer], name: str = "global") -> tuple[ProcessID, ...]:
    """The Raft members a BOOTSTRAP names: the `global` process on each node."""
    return tuple(ProcessID(name, p.node) for p in peers)


def routes_of(peers: Iterable[Peer], *, exclude: str | None = None) -> dict[str, str]:
    """node -> url for ergo_py's NodeOptions.routes (without `exclude`, the node itself)."""
    return {p.node: p.url for p in peers if p.node != exclude}
