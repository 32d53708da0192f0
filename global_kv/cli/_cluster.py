"""`LocalCluster`: N `global-kv node` OS processes on one machine, started and always reaped.

What `global-kv cluster`, the demo, the tests, the benchmark and fault-injection
harnesses share. Each node is a child process (`python -m global_kv.cli node`)
configured through its environment, listening on 127.0.0.1 ports picked free (or
`base_port + i`), with its own data directory and log file. A node is ready when
it prints its READY line. Fault injection is by signal: `stop` (SIGTERM, clean),
`kill` (SIGKILL), `pause`/`resume` (SIGSTOP/SIGCONT), `restart` (same name, port
and data directory). `manual_command(i)` is the shell line that restarts node `i` by
hand with exactly the settings this object gives it (cluster id included: a node's data
dir records its cluster id and node name, and refuses any other).

The one rule: no process outlives the cluster object. `aclose()` (the end of the
`async with` block, also on errors and cancellation) stops every process by PID,
SIGKILLs the ones that do not exit in time, and waits for all of them; and each
node watches its stdin, which only this object holds open, so even a parent
killed with SIGKILL leaves no node behind.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import trio

import ergo_py
from ergo_py import ProcessID

from ..app import GLOBAL_NAME
from ..client import GlobalClient, open_client
from ..protocol import StatusRequest, StatusResponse
from ._errors import CLIError, NodeStartError, UsageError
from ._node import parse_status_line, ready_line
from ._peers import Peer, format_bootstrap

__all__ = ["LocalCluster", "LocalNode"]


@dataclass
class LocalNode:
    """One node of a LocalCluster (index `index`, 0-based)."""

    index: int
    name: str
    host: str
    port: int
    metrics_port: int | None
    data_dir: Path
    log_path: Path
    member: bool = True
    client_port: int | None = None  # etcd's API, when the cluster serves it
    process: trio.Process | None = None
    ready_fields: dict[str, str] = field(default_factory=dict)
    paused: bool = False
    stopped_cleanly: bool = False  # its last run ended with a STOPPED line
    exit_codes: list[int] = field(default_factory=list)
    _ready: trio.Event = field(default_factory=trio.Event)
    _eof: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        return f"http://{self.host}:{self.metrics_port}" if self.metrics_port is not None else None

    @property
    def client_url(self) -> str | None:
        """etcd's API of this node (gRPC and the JSON gateway), e.g. for etcdctl --endpoints."""
        return f"http://{self.host}:{self.client_port}" if self.client_port is not None else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def peer(self) -> Peer:
        return Peer(self.name, self.url)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalCluster:
    """A local cluster of `nodes` members (plus `spares` non-members, for add-peer).

    Use as `async with LocalCluster(3) as cluster:`. Nodes are `cluster.nodes[i]`,
    named n1@localhost, n2@localhost, ...; `config` entries become `--set FIELD=VALUE`
    (GlobalConfig fields); `metrics` gives each node an ops HTTP server, `etcd_api` etcd's
    API (gRPC and the JSON gateway; `node.client_url`).
    With no `data_dir` a temporary directory is used and removed on close.

    `node_routes(i)` (optional) gives node `i` its own addresses for other nodes,
    `{name: ws-url}`, asked at every start of node `i`; they go into its ROUTES and
    override the BOOTSTRAP address of the same node. A fault-injecting proxy uses it
    so that each node dials each peer through a connection it can cut.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        storage: str = "leveldb",
        base_port: int = 0,
        host: str = "127.0.0.1",
        cookie: str | None = None,
        cluster_id: str = "local",
        metrics: bool = True,
        etcd_api: bool = False,
        read_consistency: str | None = None,
        log_level: str = "INFO",
        config: Mapping[str, Any] | None = None,
        spares: int = 0,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        node_routes: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        if nodes < 1 or spares < 0:
            raise UsageError("a cluster needs at least 1 node (and spares >= 0)")
        if base_port and not (1024 <= base_port <= 65535 - 300):
            raise UsageError(
                "--base-port must be between 1024 and 65235 (nodes use base+i, metrics base+100+i, etcd API base+200+i)"
            )
        self.size = nodes
        self.spares = spares
        self.storage = storage
        self.base_port = base_port
        self.host = host
        self.cookie = cookie or secrets.token_hex(16)
        self.cluster_id = cluster_id
        self.metrics = metrics
        self.etcd_api = etcd_api
        self.read_consistency = read_consistency
        self.log_level = log_level
        self.config = dict(config or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.python = python or sys.executable
        self.extra_env = dict(env or {})
        self.node_routes = node_routes
        self._owns_dir = data_dir is None
        self._data_dir_arg = data_dir
        self.data_dir: Path | None = None
        self.nodes: list[LocalNode] = []
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._closed = False

    # -- addresses -------------------------------------------------------------------------------
    @property
    def members(self) -> list[LocalNode]:
        return [n for n in self.nodes if n.member]

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.members]

    @property
    def bootstrap(self) -> str:
        """The BOOTSTRAP string of the members: give it to `global-kv ctl --cluster`."""
        return format_bootstrap(n.peer() for n in self.members)

    @property
    def all_peers(self) -> str:
        """Every node, spares included (for ctl against spares too)."""
        return format_bootstrap(n.peer() for n in self.nodes)

    @property
    def routes(self) -> dict[str, str]:
        return {n.name: n.url for n in self.nodes}

    def index_of(self, name: str) -> int:
        for node in self.nodes:
            if node.name == name:
                return node.index
        raise KeyError(f"no node {name!r} in this cluster")

    # -- life cycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Create the layout and start every node; raises NodeStartError (after cleaning up)."""
        if self._stack is not None:
            raise CLIError("this LocalCluster was started already")
        self._stack = AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        try:
            self._make_data_dir()
            for attempt in range(3):
                self._layout()
                failures = await self._start_all()
                if not failures:
                    return
                # Free ports are picked, released, then bound by the children: another
                # program may take one in between. Only then is trying again worth it.
                raced = not self.base_port and any("already in use" in f.log_tail for f in failures)
                if not raced or attempt == 2:
                    raise failures[0]
                await self._stop_all()
                self.nodes = []
        except BaseException:
            await self.aclose()
            raise

    async def _start_all(self) -> list[NodeStartError]:
        failures: list[NodeStartError] = []

        async def start_one(i: int) -> None:
            try:
                await self.start_node(i)
            except NodeStartError as exc:
                failures.append(exc)

        async with trio.open_nursery() as starting:
            for node in self.nodes:
                starting.start_soon(start_one, node.index)
        return failures

    def _make_data_dir(self) -> None:
        if self._owns_dir:
            self.data_dir = Path(tempfile.mkdtemp(prefix="global-kv-"))
        else:
            self.data_dir = Path(self._data_dir_arg)  # type: ignore[arg-type]
            self.data_dir.mkdir(parents=True, exist_ok=True)

    def _layout(self) -> None:
        assert self.data_dir is not None
        total = self.size + self.spares
        if self.base_port:
            ports = [self.base_port + i for i in range(total)]
            metric_ports = [self.base_port + 100 + i for i in range(total)]
            client_ports = [self.base_port + 200 + i for i in range(total)]
        else:
            free = _free_ports(self.host, total * 3)
            ports, metric_ports, client_ports = free[:total], free[total : 2 * total], free[2 * total :]
        for i in range(total):
            name = f"n{i + 1}@localhost"
            node_dir = self.data_dir / f"n{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                LocalNode(
                    index=i,
                    name=name,
                    host=self.host,
                    port=ports[i],
                    metrics_port=metric_ports[i] if self.metrics else None,
                    client_port=client_ports[i] if self.etcd_api else None,
                    data_dir=node_dir,
                    log_path=self.data_dir / f"n{i + 1}.log",
                    member=i < self.size,
                )
            )

    def node_settings(self, i: int) -> tuple[dict[str, str], list[str]]:
        """What node `i` is started with, as (environment, arguments after `global-kv node`):
        every setting this object gives it, COOKIE included, and nothing inherited."""
        node = self.nodes[i]
        env = {
            "NODE_NAME": node.name,
            "CLUSTER_ID": self.cluster_id,
            "BOOTSTRAP": self.bootstrap,
            "DATA_DIR": str(node.data_dir),
            "COOKIE": self.cookie,
            "LISTEN": f"{self.host}:{node.port}",
            "STORAGE": self.storage,
            "LOG_LEVEL": self.log_level,
        }
        routes = {n.name: n.url for n in self.nodes if not n.member}
        if self.node_routes is not None:
            routes.update(self.node_routes(node.index))
        routes.pop(node.name, None)
        if routes:
            env["ROUTES"] = format_bootstrap(Peer(name, url) for name, url in routes.items())
        if node.metrics_port is not None:
            env["METRICS"] = f"{self.host}:{node.metrics_port}"
        if node.client_port is not None:
            env["CLIENT_LISTEN"] = f"{self.host}:{node.client_port}"
        if self.read_consistency:
            env["READ_CONSISTENCY"] = self.read_consistency
        args: list[str] = []
        for key, value in self.config.items():
            args += ["--set", f"{key}={value}"]
        return env, args

    def manual_command(self, i: int, *, cookie: bool = False) -> str:
        """The shell line that starts node `i` by hand (after a kill) with exactly its settings.

        COOKIE is left to the environment (`export COOKIE=...`) unless `cookie` is true, so
        that the secret is not repeated on every line.
        """
        env, args = self.node_settings(i)
        if not cookie:
            del env["COOKIE"]
        assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
        cmd = [self.python, "-m", "global_kv.cli", "node", *args]
        return " ".join([*assignments, *(shlex.quote(c) for c in cmd)])

    def ready_fields(self) -> dict[str, Any]:
        """The fields of `global-kv cluster`'s READY line: what a client needs to use it."""
        return {"nodes": len(self.nodes), "cluster": self.cluster_id, "bootstrap": self.bootstrap}

    def describe(self, *, show_cookie: bool = True) -> str:
        """What `global-kv cluster` prints once every node is up: READY, the nodes, the
        settings to use it from another shell, and the line to restart each node by hand."""
        lines = [
            ready_line(self.ready_fields()),
            "",
            f"{len(self.nodes)} nodes up ({self.storage}, data and logs in {self.data_dir}):",
        ]
        for n in self.nodes:
            metrics = f"  {n.metrics_url}/metrics" if n.metrics_url else ""
            etcd = f"  etcd API {n.client_url}" if n.client_url else ""
            lines.append(f"  {n.name:14} {n.url:24} pid {n.pid}{metrics}{etcd}")
        lines += ["", "Use it from another shell:"]
        if show_cookie:
            lines.append(f"  export COOKIE={self.cookie}")
        lines += [
            f"  export CLUSTER_ID={shlex.quote(self.cluster_id)}",
            f"  export BOOTSTRAP={shlex.quote(self.bootstrap)}",
            "  global-kv ctl put greeting hello && global-kv ctl get greeting && global-kv ctl status",
        ]
        endpoints = [n.client_url for n in self.nodes if n.client_url]
        if endpoints:
            lines += [
                f"  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS={','.join(endpoints)}",
                "  etcdctl put greeting hello && etcdctl get greeting && etcdctl endpoint status -w table",
            ]
        lines += [
            "",
            "To restart a node by hand (after `kill -9 PID`), with COOKIE exported as above:",
        ]
        for n in self.nodes:
            lines.append(f"  {self.manual_command(n.index)}")
        lines += [
            "(a node restarted by hand is yours to stop: Ctrl-C here stops only the nodes started here)",
            "",
            "Ctrl-C stops every node.",
        ]
        return "\n".join(lines)

    def _command(self, node: LocalNode) -> tuple[list[str], dict[str, str]]:
        settings, args = self.node_settings(node.index)
        cmd = [self.python, "-m", "global_kv.cli", "node", "--exit-with-stdin", *args]
        env = {k: v for k, v in os.environ.items() if k not in ("ERGO_COOKIE",)}
        env.update(self.extra_env)
        for key in ("ROUTES", "METRICS", "CLIENT_LISTEN", "READ_CONSISTENCY"):
            env.pop(key, None)
        env.update(settings)
        env["PYTHONUNBUFFERED"] = "1"
        return cmd, env

    async def start_node(self, i: int) -> None:
        """Start node `i` (again) and wait for its READY line; raises NodeStartError."""
        node = self.nodes[i]
        if self._closed or self._nursery is None:
            raise CLIError("this LocalCluster is not running (use it as `async with LocalCluster(...)`)")
        if node.running:
            raise CLIError(f"{node.name} is already running (pid {node.pid})")
        cmd, env = self._command(node)
        node._ready, node._eof = trio.Event(), trio.Event()
        node.ready_fields, node.paused, node.stopped_cleanly = {}, False, False
        log = await trio.to_thread.run_sync(open, node.log_path, "ab")
        try:
            node.process = await trio.lowlevel.open_process(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env
            )
        finally:
            log.close()  # the child has its own copy
        self._nursery.start_soon(self._read_stdout, node, node.process)
        with trio.move_on_after(self.startup_timeout) as scope:
            async with trio.open_nursery() as race:

                async def first(event: trio.Event) -> None:
                    await event.wait()
                    race.cancel_scope.cancel()

                race.start_soon(first, node._ready)
                race.start_soon(first, node._eof)
        if node._ready.is_set():
            return
        if scope.cancelled_caught:
            await self._terminate(node)
            raise NodeStartError(node.name, f"not ready within {self.startup_timeout:g} s", node.log_tail())
        code = await node.process.wait()
        node.exit_codes.append(code)
        raise NodeStartError(node.name, f"exited with code {code}", node.log_tail())

    async def _read_stdout(self, node: LocalNode, process: trio.Process) -> None:
        """Parse READY/STOPPED lines until EOF. Never raises: it runs in the cluster's nursery."""
        buffer = b""
        stream = process.stdout
        try:
            assert stream is not None
            while True:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    word, fields = parse_status_line(line.decode(errors="replace"))
                    if node.process is not process:
                        continue
                    if word == "READY":
                        node.ready_fields = fields
                        node._ready.set()
                    elif word == "STOPPED":
                        node.stopped_cleanly = True
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            if node.process is process:
                node._eof.set()

    async def stop(self, i: int, timeout: float | None = None) -> int:
        """SIGTERM node `i` (a clean stop) and wait; SIGKILL after `timeout`. Returns the exit code."""
        node = self.nodes[i]
        if not node.running:
            raise CLIError(f"{node.name} is not running")
        return await self._terminate(node, timeout)

    async def kill(self, i: int) -> int:
        """SIGKILL node `i` (a crash: nothing flushed that was not already) and reap it."""
        node = self.nodes[i]
        if not node.running:
            raise CLIError(f"{node.name} is not running")
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        return await self._reap(node)

    async def wait_exit(self, i: int, timeout: float) -> int:
        """Wait up to `timeout` for node `i` to end on its own and reap it; returns its exit
        code (raises CLIError if it still runs then)."""
        node = self.nodes[i]
        if node.process is None:
            raise CLIError(f"{node.name} was never started")
        with trio.move_on_after(timeout):
            await node.process.wait()
        if node.process.returncode is None:
            raise CLIError(f"{node.name} (pid {node.pid}) still runs after {timeout:g} s")
        return await self._reap(node)

    def pause(self, i: int) -> None:
        """SIGSTOP node `i`: it keeps its sockets but answers nothing (a GC pause, a hung VM)."""
        node = self.nodes[i]
        if not node.running:
            raise CLIError(f"{node.name} is not running")
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and node.process is not None:
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def wipe(self, i: int) -> None:
        """Empty node `i`'s data directory (a lost disk); the node must not be running."""
        node = self.nodes[i]
        if node.running:
            raise CLIError(f"{node.name} is running (pid {node.pid}): stop or kill it before wiping its data")
        shutil.rmtree(node.data_dir, ignore_errors=True)
        node.data_dir.mkdir(parents=True, exist_ok=True)

    async def restart(self, i: int) -> None:
        """Stop node `i` cleanly if it runs, then start it again with the same data directory."""
        if self.nodes[i].running:
            await self.stop(i)
        await self.start_node(i)

    async def _terminate(self, node: LocalNode, timeout: float | None = None) -> int:
        process = node.process
        assert process is not None
        if process.returncode is None:
            if node.paused:
                process.send_signal(signal.SIGCONT)
                node.paused = False
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(self.stop_timeout if timeout is None else timeout):
                await process.wait()
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
        return await self._reap(node)

    async def _reap(self, node: LocalNode) -> int:
        process = node.process
        assert process is not None
        with trio.CancelScope(shield=True):
            code = await process.wait()
            if process.stdin is not None:
                await process.stdin.aclose()
            with trio.move_on_after(2.0):
                await node._eof.wait()  # so `stopped_cleanly` has seen the last line
        node.exit_codes.append(code)
        node.paused = False
        return code

    async def _stop_all(self) -> None:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as stopping:
                for node in self.nodes:
                    if node.process is not None and node.process.returncode is None:
                        stopping.start_soon(self._terminate, node)
                    elif node.process is not None:
                        stopping.start_soon(self._reap, node)

    async def aclose(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after stop_timeout), reap all, clean up."""
        if self._closed:
            return
        self._closed = True
        await self._stop_all()
        # The reader tasks end at EOF anyway; cancel them and leave their nursery, outside the
        # shield (a nursery must be exited in the cancel-scope context it was entered in).
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self._stack is not None:
            await self._stack.aclose()
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- talking to it -------------------------------------------------------------------------
    @asynccontextmanager
    async def open_client_node(self, name: str | None = None) -> AsyncIterator[ergo_py.Node]:
        """An in-process, dial-only ergo_py node with routes to every node of the cluster."""
        options = ergo_py.NodeOptions(cookie=self.cookie, routes=self.routes)
        async with ergo_py.start_node(name or f"client-{secrets.token_hex(4)}@localhost", options) as node:
            await self.connect_all(node)
            yield node

    async def connect_all(self, node: ergo_py.Node, timeout: float = 2.0) -> list[str]:
        """Link `node` to every running node now; returns the names linked.

        Not needed for requests (a leader that cannot reach a dial-only caller answers
        through the follower that forwarded the request); it makes the first requests of
        a test skip the connection set-up, and shows at once which nodes are up.
        """
        linked: list[str] = []

        async def one(n: LocalNode) -> None:
            with trio.move_on_after(timeout):
                try:
                    await node.connect(n.name)
                    linked.append(n.name)
                except (ergo_py.ErgoError, OSError):
                    pass  # down or paused: requests to it fail over like any other failure

        async with trio.open_nursery() as nursery:
            for n in self.nodes:
                if n.running and not n.paused:
                    nursery.start_soon(one, n)
        return linked

    @asynccontextmanager
    async def open_client(self, *, nodes: Sequence[str] | None = None, **options: Any) -> AsyncIterator[GlobalClient]:
        """A GlobalClient (on its own client node) over the members, or over `nodes`."""
        async with self.open_client_node() as node, open_client(node, list(nodes or self.names), **options) as client:
            yield client

    async def statuses(self, node: ergo_py.Node, timeout: float = 1.0) -> dict[str, StatusResponse | None]:
        """The status of each running, unpaused member (None if it did not answer)."""
        result: dict[str, StatusResponse | None] = {}

        async def one(n: LocalNode) -> None:
            try:
                result[n.name] = await node.call(ProcessID(GLOBAL_NAME, n.name), StatusRequest(), timeout=timeout)
            except ergo_py.ErgoError:
                result[n.name] = None

        async with trio.open_nursery() as nursery:
            for n in self.nodes:
                if n.running and not n.paused:
                    nursery.start_soon(one, n)
        return result

    async def wait_for_leader(self, timeout: float = 15.0, *, exclude: Sequence[int] = ()) -> int:
        """Index of the node that leads, once a running member says it is leader; raises CLIError."""
        async with self.open_client_node() as client_node:
            with trio.move_on_after(timeout):
                while True:
                    for name, st in (await self.statuses(client_node)).items():
                        i = self.index_of(name)
                        if st is not None and st.is_leader and i not in exclude:
                            return i
                    await trio.sleep(0.05)
        raise CLIError(f"no leader elected within {timeout:g} s (running: {[n.name for n in self.nodes if n.running]})")
