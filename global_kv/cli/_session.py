"""A short-lived, dial-only client node for `global-kv ctl` and the demo.

It starts an ergo_py node that listens nowhere and hands out a `GlobalClient` over
the members named in the BOOTSTRAP string, so the first request goes out at once
(the member it reaches answers for the leader). Only when a command has not
finished within `PROBE_AFTER` are the members dialed one by one (`probe`): if none
of them can be reached and authenticated, the command fails at once with
ConnectError saying why for each (wrong cookie, not that node, unreachable),
instead of timing out. It never retries forever: every wait is bounded by the
session's timeout.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

import ergo_py
from ergo_py import ProcessID
from ergo_py.net import HandshakeError

from .._errors import NotLeader, Unavailable
from ..app import GLOBAL_NAME
from ..client import GlobalClient, open_client
from ..protocol import StatusRequest, StatusResponse
from ._errors import ClusterUnavailable, ConnectError
from ._peers import Peer, routes_of

__all__ = ["PROBE_AFTER", "Session", "open_session", "probe"]

T = TypeVar("T")

# Errors after which asking again (or asking another member) may succeed.
_RETRY = (NotLeader, ergo_py.NoConnection, ergo_py.CallTimeout, ergo_py.ProcessUnknown, ergo_py.ProcessExited)


def _why(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        if exc.reason == HandshakeError.COOKIE:
            return "wrong cookie (set COOKIE to the cluster's cookie)"
        if exc.reason == HandshakeError.NAME:
            return f"not that node: {exc.detail}"
        return str(exc)
    if isinstance(exc, ergo_py.NoConnection):
        detail = getattr(exc, "detail", "") or str(exc)
        return f"unreachable ({detail})"
    return str(exc) or type(exc).__name__


async def probe(node: ergo_py.Node, names: Sequence[str], timeout: float) -> tuple[list[str], dict[str, str]]:
    """Connect to each of `names` concurrently: (reachable names, {name: why not})."""
    reachable: list[str] = []
    problems: dict[str, str] = {}

    async def one(name: str) -> None:
        try:
            with trio.fail_after(timeout):
                await node.connect(name)
        except trio.TooSlowError:
            problems[name] = f"no answer within {timeout:g} s"
        except (ergo_py.ErgoError, OSError, ValueError) as exc:
            problems[name] = _why(exc)
        else:
            reachable.append(name)

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
    order = {n: i for i, n in enumerate(names)}
    reachable.sort(key=order.__getitem__)
    return reachable, {n: problems[n] for n in names if n in problems}


# A command still running after this long has its members probed alongside (see `Session.run`).
PROBE_AFTER = 0.2


@dataclass
class Session:
    """A client node: `client` talks to the `reachable` members (all of them until a probe says otherwise)."""

    node: ergo_py.Node
    client: GlobalClient
    peers: list[Peer]
    reachable: list[str]
    problems: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    connect_timeout: float = 3.0

    async def run(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run `command`; if it takes longer than PROBE_AFTER, probe the members alongside, and
        when none of them can be reached and authenticated, cancel it and raise ConnectError."""
        results: list[T] = []
        refused: list[ConnectError] = []

        async def watchdog(cancel: trio.CancelScope) -> None:
            await trio.sleep(PROBE_AFTER)
            reachable, problems = await probe(self.node, self.reachable, self.connect_timeout)
            self.problems.update(problems)
            if not reachable:
                refused.append(ConnectError(problems))
                cancel.cancel()

        failure: BaseException | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watchdog, nursery.cancel_scope)
            try:
                results.append(await command())
            except (ClusterUnavailable, Unavailable, *_RETRY) as exc:
                failure = exc  # failed before the watchdog could tell why: ask below
            nursery.cancel_scope.cancel()
        if refused:
            raise refused[0]
        if failure is not None:
            reachable, problems = await probe(self.node, self.reachable, self.connect_timeout)
            self.problems.update(problems)
            if not reachable:
                raise ConnectError(problems) from failure
            raise failure
        return results[0]

    async def status_of(self, name: str) -> StatusResponse:
        result = await self.node.call(ProcessID(GLOBAL_NAME, name), StatusRequest(), timeout=self.timeout)
        return result  # type: ignore[no-any-return]

    async def call_member(self, name: str, request: Any) -> Any:
        return await self.node.call(ProcessID(GLOBAL_NAME, name), request, timeout=self.timeout)

    async def call_leader(self, request: Any) -> tuple[str, Any]:
        """Send `request` to the leader (following NotLeader hints) until the timeout: (leader, reply)."""
        deadline = trio.current_time() + self.timeout
        last: BaseException | None = None
        candidates = list(self.reachable)
        target: str | None = None
        attempt = 0
        while trio.current_time() < deadline:
            if target is None:
                target = candidates[attempt % len(candidates)]
                attempt += 1
            remaining = deadline - trio.current_time()
            try:
                reply = await self.node.call(ProcessID(GLOBAL_NAME, target), request, timeout=min(remaining, 2.0))
            except NotLeader as exc:
                last = exc
                hint = exc.leader_hint
                target = hint.node if isinstance(hint, ProcessID) and hint.node != target else None
                if target is None:
                    await trio.sleep(min(0.1, max(0.0, deadline - trio.current_time())))
                continue
            except _RETRY as exc:
                last = exc
                target = None
                await trio.sleep(min(0.1, max(0.0, deadline - trio.current_time())))
                continue
            return target, reply
        raise ClusterUnavailable(
            f"no leader answered {type(request).__name__} within {self.timeout:g} s "
            f"(is a majority of the cluster up? last error: {last})"
        )


@asynccontextmanager
async def open_session(
    peers: Sequence[Peer],
    *,
    cookie: str | None,
    timeout: float = 5.0,
    only: str | None = None,
    connect_timeout: float | None = None,
    probe_first: bool = True,
) -> AsyncIterator[Session]:
    """A dial-only node and a client over the members (all, or just `only`).

    With `probe_first` every member is dialed before the session is handed out, and
    ConnectError is raised at once when none can be reached and authenticated; without
    it nothing is dialed yet (the fast path of ctl), and `Session.run` raises it instead.
    """
    name = f"ctl-{secrets.token_hex(4)}@localhost"
    options = ergo_py.NodeOptions(cookie=cookie, routes=routes_of(peers))
    names = [p.node for p in peers]
    if only is not None:
        if only not in names:
            raise ConnectError({only: "not in the cluster's BOOTSTRAP list (--cluster)"})
        names = [only]
    connect_timeout = connect_timeout or min(timeout, 3.0)
    async with ergo_py.start_node(name, options) as node:
        reachable: list[str] = list(names)
        problems: dict[str, str] = {}
        if probe_first:
            reachable, problems = await probe(node, names, connect_timeout)
            if not reachable:
                raise ConnectError(problems)
        async with open_client(node, reachable, timeout=timeout) as client:
            yield Session(node, client, list(peers), reachable, problems, timeout, connect_timeout)
