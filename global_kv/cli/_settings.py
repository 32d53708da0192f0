"""What one `global-kv node` runs with: flags over environment variables over defaults.

The environment names are the seed's (NODE_NAME, CLUSTER_ID, BOOTSTRAP, DATA_DIR,
COOKIE) plus LISTEN, METRICS, STORAGE, READ_CONSISTENCY, LOG_LEVEL and ROUTES, so
a container runs with environment only and a shell with flags only. Everything is
checked here, before anything starts; a bad value is a `UsageError` naming the
setting. This module never starts anything and never reads files.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ergo_py import NodeOptions

from ..app import GlobalConfig, GlobalConfigError
from ..ops import parse_host_port
from ._errors import UsageError
from ._peers import DEFAULT_PORT, Peer, members_of, parse_bootstrap, routes_of, validate_node_name

__all__ = ["ENV_NAMES", "ClientTLS", "NodeSettings", "node_settings", "parse_overrides"]

# flag attribute -> environment variable(s), first set wins
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("NODE_NAME",),
    "cluster_id": ("CLUSTER_ID",),
    "bootstrap": ("BOOTSTRAP",),
    "routes": ("ROUTES",),
    "data_dir": ("DATA_DIR",),
    "cookie": ("COOKIE", "ERGO_COOKIE"),
    "listen": ("LISTEN",),
    "metrics": ("METRICS",),
    "client_listen": ("CLIENT_LISTEN",),
    "client_cert": ("CLIENT_CERT",),
    "client_key": ("CLIENT_KEY",),
    "trusted_ca": ("TRUSTED_CA",),
    "storage": ("STORAGE",),
    "read_consistency": ("READ_CONSISTENCY",),
    "log_level": ("LOG_LEVEL",),
}

# GlobalConfig fields with a flag of their own; `--set` takes the others.
_OWN_FLAGS = {"cluster_id", "bootstrap", "storage_type", "data_dir", "read_consistency", "log_level"}


@dataclass(frozen=True)
class ClientTLS:
    """TLS for etcd's API: the server's certificate and key; with `trusted_ca`, clients
    must present a certificate signed by it (etcd's --client-cert-auth)."""

    cert: str
    key: str
    trusted_ca: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        if self.trusted_ca:
            ctx.load_verify_locations(self.trusted_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@dataclass(frozen=True)
class NodeSettings:
    """Everything a node process needs, checked."""

    name: str
    cookie: str
    listen: tuple[str, int]
    bootstrap: tuple[Peer, ...]
    extra_routes: tuple[Peer, ...] = ()
    metrics: tuple[str, int] | None = None
    client_listen: tuple[str, int] | None = None  # etcd's API (gRPC and the JSON gateway)
    client_tls: ClientTLS | None = None  # its TLS (etcd's --cert-file, --key-file, --trusted-ca-file)
    config: GlobalConfig = field(default_factory=GlobalConfig)
    exit_with_stdin: bool = False

    @property
    def is_member(self) -> bool:
        return any(p.node == self.name for p in self.bootstrap)

    def node_options(self) -> NodeOptions:
        routes = routes_of((*self.bootstrap, *self.extra_routes), exclude=self.name)
        return NodeOptions(cookie=self.cookie, listen=self.listen, routes=routes)


def _pick(args: Any, env: Mapping[str, str], attr: str) -> str | None:
    value = getattr(args, attr, None)
    if value not in (None, ""):
        return str(value)
    for var in ENV_NAMES[attr]:
        if env.get(var):
            return env[var]
    return None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`FIELD=VALUE` strings -> typed GlobalConfig overrides (type from the field's default)."""
    fields = {f.name: f for f in dataclasses.fields(GlobalConfig)}
    defaults = GlobalConfig()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE")
        if key not in fields:
            raise UsageError(f"--set {key}: no such GlobalConfig field (see the README's configuration table)")
        if key in _OWN_FLAGS:
            raise UsageError(f"--set {key}: use its own flag or environment variable instead")
        default = getattr(defaults, key)
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                value = int(raw)
            else:
                value = raw
        except ValueError:
            raise UsageError(f"--set {key}={raw!r}: expected a {type(default).__name__}") from None
        out[key] = value
    return out


def _host_port(text: str, what: str) -> tuple[str, int]:
    try:
        return parse_host_port(text, what=what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _client_tls(cert: str | None, key: str | None, trusted_ca: str | None) -> ClientTLS | None:
    if not cert and not key:
        if trusted_ca:
            raise UsageError("TRUSTED_CA needs CLIENT_CERT and CLIENT_KEY (the server's own certificate)")
        return None
    if not cert or not key:
        raise UsageError("give both CLIENT_CERT and CLIENT_KEY (the etcd API's certificate and its key)")
    tls = ClientTLS(cert, key, trusted_ca or None)
    try:
        tls.context()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the etcd API's TLS files: {exc}") from None
    return tls


def _client_url(name: str, listen: tuple[str, int] | None, tls: ClientTLS | None) -> str:
    """The etcd API's URL as other members show it: its address (the node's host if it
    listens on every interface); "" without one, or with a port chosen at start."""
    if listen is None or listen[1] == 0:
        return ""
    host = listen[0]
    if host in ("0.0.0.0", "::", ""):
        host = name.partition("@")[2] or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{listen[1]}"


def _client_listen(text: str) -> tuple[str, int]:
    """CLIENT_LISTEN: host:port, or a bare port (or :port) on 127.0.0.1: etcd's API is
    served on other interfaces only when asked by name."""
    text = text.strip()
    if text.isdigit() or text.startswith(":"):
        text = "127.0.0.1:" + text.lstrip(":")
    return _host_port(text, "CLIENT_LISTEN")


def _default_listen(name: str, bootstrap: Sequence[Peer]) -> tuple[str, int]:
    """This node's own BOOTSTRAP address: its IP if given as one, else all interfaces."""
    own = next((p for p in bootstrap if p.node == name), None)
    if own is None:
        return "0.0.0.0", DEFAULT_PORT
    try:
        ipaddress.ip_address(own.host)
        return own.host, own.port
    except ValueError:
        return ("127.0.0.1" if own.host == "localhost" else "0.0.0.0"), own.port


def node_settings(args: Any, env: Mapping[str, str]) -> NodeSettings:
    """Settings from parsed flags (`args`) and the environment; raises UsageError."""
    name = _pick(args, env, "name")
    if not name:
        raise UsageError("no node name: pass --name name@host or set NODE_NAME")
    try:
        validate_node_name(name)
    except ValueError as exc:
        raise UsageError(f"NODE_NAME: {exc}") from None
    cookie = _pick(args, env, "cookie")
    if not cookie:
        raise UsageError("no cookie: set COOKIE (or ERGO_COOKIE) to the cluster's shared secret")
    listen_text = _pick(args, env, "listen")
    bootstrap_text = _pick(args, env, "bootstrap")
    if bootstrap_text:
        bootstrap = tuple(parse_bootstrap(bootstrap_text))
    else:
        # No BOOTSTRAP: a cluster of one (the seed's single-node development setup).
        host, port = _host_port(listen_text, "LISTEN") if listen_text else ("127.0.0.1", DEFAULT_PORT)
        dial = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        bootstrap = (Peer(name, f"ws://{dial}:{port}"),)
    routes_text = _pick(args, env, "routes")
    extra = tuple(parse_bootstrap(routes_text, what="ROUTES")) if routes_text else ()
    listen = _host_port(listen_text, "LISTEN") if listen_text else _default_listen(name, bootstrap)
    metrics_text = _pick(args, env, "metrics")
    metrics = _host_port(metrics_text, "METRICS") if metrics_text else None
    client_text = _pick(args, env, "client_listen")
    client_listen = _client_listen(client_text) if client_text else None
    client_tls = _client_tls(*(_pick(args, env, k) for k in ("client_cert", "client_key", "trusted_ca")))
    if client_tls is not None and client_listen is None:
        raise UsageError("CLIENT_CERT/CLIENT_KEY need CLIENT_LISTEN (the port they secure)")
    data_dir = _pick(args, env, "data_dir")
    storage = _pick(args, env, "storage") or ("leveldb" if data_dir else "memory")
    overrides = parse_overrides(getattr(args, "set", None) or ())
    try:
        config = GlobalConfig(
            cluster_id=_pick(args, env, "cluster_id") or "global",
            bootstrap=members_of(bootstrap),
            storage_type=storage,
            data_dir=data_dir,
            read_consistency=_pick(args, env, "read_consistency") or "linearizable",
            log_level=(_pick(args, env, "log_level") or "INFO").upper(),
            client_url=_client_url(name, client_listen, client_tls),
            **overrides,
        )
    except (GlobalConfigError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return NodeSettings(
        name=name,
        cookie=cookie,
        listen=listen,
        bootstrap=bootstrap,
        extra_routes=extra,
        metrics=metrics,
        client_listen=client_listen,
        client_tls=client_tls,
        config=config,
        exit_with_stdin=bool(getattr(args, "exit_with_stdin", False)),
    )
