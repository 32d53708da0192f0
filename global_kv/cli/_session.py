"""A short-lived, dial-only client node for `global-kv ctl` and the demo.

It starts an ergo_py node that listens nowhere, dials each member named in the
BOOTSTRAP string to find out at once which ones are reachable and authenticated
(so a wrong cookie or a wrong node name is reported as such, not as a timeout),
and hands out a `GlobalClient` over the reachable ones. It never retries forever:
every wait is bounded by the session's timeout.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

import ergo_py
from ergo_py import ProcessID
from ergo_py.net import HandshakeError

from .._errors import NotLeader
from ..app import GLOBAL_NAME, RequestStatus, StatusResponse
from ..client import GlobalClient, open_client
from ._errors import ClusterUnavailable, ConnectError
from ._peers import Peer, routes_of

__all__ = ["Session", "open_session", "probe"]

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


@dataclass
class Session:
    """A connected client node: `client` talks to the `reachable` members."""

    node: ergo_py.Node
    client: GlobalClient
    peers: list[Peer]
    reachable: list[str]
    problems: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0

    async def status_of(self, name: str) -> StatusResponse:
        result = await self.node.call(ProcessID(GLOBAL_NAME, name), RequestStatus(), timeout=self.timeout)
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
) -> AsyncIterator[Session]:
    """A dial-only node and a client over the reachable members (all, or just `only`).

    Raises ConnectError when no member can be reached and authenticated.
    """
    name = f"ctl-{secrets.token_hex(4)}@localhost"
    options = ergo_py.NodeOptions(cookie=cookie, routes=routes_of(peers))
    names = [p.node for p in peers]
    if only is not None:
        if only not in names:
            raise ConnectError({only: "not in the cluster's BOOTSTRAP list (--cluster)"})
        names = [only]
    async with ergo_py.start_node(name, options) as node:
        reachable, problems = await probe(node, names, connect_timeout or min(timeout, 3.0))
        if not reachable:
            raise ConnectError(problems)
        async with open_client(node, reachable, timeout=timeout) as client:
            yield Session(node, client, list(peers), reachable, problems, timeout)
