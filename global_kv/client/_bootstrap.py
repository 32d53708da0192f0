"""BOOTSTRAP strings from the client's side: which members there are and where to dial them.

The format is the one `global-kv node` and `global-kv cluster` use: comma-separated
entries, each `name@host` (dialled at ws://host:15001) or `name@host=ws://addr:port`
(or wss://). Parsing is strict: a malformed entry raises ValueError naming it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ergo_py import validate_node_name

__all__ = ["DEFAULT_PORT", "parse_bootstrap"]

DEFAULT_PORT = 15001


def _url(node: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad address {url!r} for {node}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname or port is None:
        raise ValueError(f"bad address {url!r} for {node}: expected ws://host:port or wss://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"bad address {url!r} for {node}: give only scheme, host and port")
    return f"{parts.scheme}://{parts.netloc}"


def parse_bootstrap(text: str, *, what: str = "BOOTSTRAP") -> dict[str, str]:
    """{node: url}, in the order given; ValueError for a malformed, repeated or empty list."""
    routes: dict[str, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        node, sep, url = entry.partition("=")
        node = node.strip()
        try:
            validate_node_name(node)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
        if node in routes:
            raise ValueError(f"{what}: node {node} is listed twice")
        routes[node] = _url(node, url.strip()) if sep else f"ws://{node.partition('@')[2]}:{DEFAULT_PORT}"
    if not routes:
        raise ValueError(f"{what} is empty: give name@host[=ws://host:port] entries separated by commas")
    return routes
