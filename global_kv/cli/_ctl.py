"""`global-kv ctl`: operate a cluster from a shell, like etcdctl.

Each invocation starts a temporary dial-only client node (`open_session`), runs one
command against the members named by `--cluster` (or $BOOTSTRAP), prints the
result (readable, or one JSON document with `--json`), and exits with a code that
says what happened (see `_errors`). It never prints a traceback for anything a
user can cause and never waits longer than `--timeout` (a held `lock` excepted:
it waits for Ctrl-C or `--duration` on purpose).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import trio

import ergo_py
from ergo_py import ProcessID
from ergo_py.net import RemoteError

from .._errors import (
    CASFailed,
    GlobalKVError,
    InvalidRequest,
    LockHeld,
    LockNotHeld,
    LockTimeout,
    NotLeader,
    RequestFailed,
    StaleToken,
    TooManyWaiters,
    Unavailable,
)
from ..app import GLOBAL_NAME
from ..protocol import AddPeerRequest, MetricsRequest, RemovePeerRequest, SnapshotRequest, StatusRequest
from ._errors import EXIT_OUTCOME, CLIError, ClusterUnavailable, OutcomeError, UsageError
from ._format import (
    STATUS_HEADER,
    bytes_fields,
    escape,
    lock_json,
    readable_message,
    show_bytes,
    status_json,
    status_row,
    table,
    text_or_none,
    tsv_row,
)
from ._peers import parse_bootstrap, validate_node_name
from ._session import Session, open_session

__all__ = ["Output", "map_error", "run_ctl"]


@dataclass
class Output:
    """What a command produced: `data` for --json, `text` for people, and how it ended."""

    data: Any
    text: str
    exit_code: int = 0
    error: str | None = None  # one line for stderr when exit_code != 0
    raw: bytes | None = None  # exact bytes for stdout instead of `text` (get --raw)
    note: str | None = None  # one line for stderr on success (how `text` was shown)


Handler = Callable[[Session, argparse.Namespace], Awaitable[Output]]
_HANDLERS: dict[str, Handler] = {}


def _command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


# -- KV ---------------------------------------------------------------------------------------------
@_command("put")
async def _put(s: Session, a: argparse.Namespace) -> Output:
    await s.client.put(a.key, a.value_bytes)
    return Output({"ok": True, **bytes_fields("key", a.key)}, "OK")


@_command("get")
async def _get(s: Session, a: argparse.Namespace) -> Output:
    if a.rev or a.prefix or a.range_end or a.keys_only or a.count_only or a.sort_by or a.order or a.limit:
        from ._ctl_kv import get_range

        return await get_range(s, a)
    value = await s.client.get(a.key, consistency=a.consistency)
    data = {**bytes_fields("key", a.key), "found": value is not None, **bytes_fields("value", value)}
    if value is None:
        return Output(data, "", EXIT_OUTCOME, f"key {show_bytes(a.key)} not found")
    if a.output is not None:
        try:
            with open(a.output, "wb") as f:
                f.write(value)
        except OSError as exc:
            raise CLIError(f"cannot write the value into {a.output}: {exc.strerror or exc}") from exc
        return Output(data, "")
    if a.raw:
        return Output(data, "", raw=value)
    text = text_or_none(value)
    if text is not None:
        return Output(data, text)
    note = (
        f"the value of {show_bytes(a.key)} ({len(value)} bytes) is not printable UTF-8: shown escaped "
        "(\\xNN per byte, \\t \\n \\r \\\\); --raw or -o FILE give the exact bytes"
    )
    return Output(data, escape(value), note=note)


@_command("delete")
async def _delete(s: Session, a: argparse.Namespace) -> Output:
    await s.client.delete(a.key)
    return Output({"ok": True, **bytes_fields("key", a.key)}, "OK")


@_command("cas")
async def _cas(s: Session, a: argparse.Namespace) -> Output:
    old = None if a.absent else a.old
    new = None if a.delete else a.new
    try:
        await s.client.cas(a.key, old, new)
    except CASFailed as exc:
        now = "absent" if exc.current is None else show_bytes(exc.current)
        data = {"ok": False, **bytes_fields("current", exc.current)}
        return Output(data, "", EXIT_OUTCOME, f"cas failed: {show_bytes(a.key)} is {now}; nothing was written")
    return Output({"ok": True}, "OK")


def _pairs_output(pairs: list[tuple[bytes, bytes]]) -> Output:
    data = [{**bytes_fields("key", k), **bytes_fields("value", v)} for k, v in pairs]
    return Output(data, "\n".join(tsv_row(k, v) for k, v in pairs))


@_command("range")
async def _range(s: Session, a: argparse.Namespace) -> Output:
    return _pairs_output(await s.client.range(a.start or None, a.end or None, a.limit, consistency=a.consistency))


@_command("prefix")
async def _prefix(s: Session, a: argparse.Namespace) -> Output:
    return _pairs_output(await s.client.prefix_scan(a.prefix, a.limit, consistency=a.consistency))


# -- locks ------------------------------------------------------------------------------------------
@_command("lock")
async def _lock(s: Session, a: argparse.Namespace) -> Output:
    """Acquire, say so at once, hold until Ctrl-C/SIGTERM or --duration, then release.

    A signal while still waiting in line gives up the wait. With a TTL the lock is
    refreshed every ttl/3 while held; if a refresh or the final release is refused,
    the lock was lost (unlocked elsewhere with its token, or expired) and we say so.
    """
    out: TextIO = a.out
    key = a.key
    name = show_bytes(key)
    stop = trio.Event()
    lost: list[str] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            waiting = trio.CancelScope()

            async def watch() -> None:
                async for _ in signals:
                    stop.set()
                    waiting.cancel()

            nursery.start_soon(watch)
            with waiting:
                handle = await s.client.lock_with_timeout(key, a.ttl, a.wait)
            if waiting.cancelled_caught:
                nursery.cancel_scope.cancel()
                return Output({"event": "interrupted"}, "", EXIT_OUTCOME, f"interrupted while waiting for lock {name}")
            if a.json:
                print(
                    json.dumps({"event": "locked", **bytes_fields("key", key), "token": handle.token}),
                    file=out,
                    flush=True,
                )
            else:
                until = f"for {a.duration:g} s" if a.duration is not None else "until Ctrl-C"
                print(f"locked {name} token={handle.token} (holding {until})", file=out, flush=True)

            async def keep_alive() -> None:
                while True:
                    await trio.sleep(a.ttl / 3)
                    try:
                        await handle.refresh()
                    except (StaleToken, LockNotHeld) as exc:
                        lost.append(str(exc))
                        stop.set()
                        return

            if a.ttl > 0:
                nursery.start_soon(keep_alive)
            with trio.move_on_after(a.duration if a.duration is not None else math.inf):
                await stop.wait()
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                if not lost:
                    try:
                        await handle.unlock()
                    except (StaleToken, LockNotHeld) as exc:
                        lost.append(str(exc))
    if lost:
        data = {"event": "lost", **bytes_fields("key", key), "token": handle.token}
        return Output(
            data,
            "",
            EXIT_OUTCOME,
            f"lock {name} token={handle.token} was lost while held (unlocked elsewhere or expired)",
        )
    data = {"event": "released", **bytes_fields("key", key), "token": handle.token}
    return Output(data, f"released {name} token={handle.token}")


@_command("unlock")
async def _unlock(s: Session, a: argparse.Namespace) -> Output:
    await s.client.unlock(a.key, a.token)
    return Output({"ok": True, "token": a.token}, f"released {show_bytes(a.key)} token={a.token}")


@_command("locks")
async def _locks(s: Session, a: argparse.Namespace) -> Output:
    locks = await s.client.list_locks()
    rows = [
        [show_bytes(i.key), i.owner.node, i.token, f"{i.held_for:.1f}s", f"{i.ttl:g}s" if i.ttl else "-", i.waiters]
        for i in locks
    ]
    text = table(("KEY", "OWNER NODE", "TOKEN", "HELD", "TTL", "WAITERS"), rows) if locks else "no locks held"
    return Output([lock_json(i) for i in locks], text)


# -- cluster ----------------------------------------------------------------------------------------
async def _statuses(s: Session, names: list[str]) -> dict[str, Any]:
    """name -> StatusResponse, or the reason it gave none."""
    results: dict[str, Any] = {n: s.problems[n] for n in names if n in s.problems}

    async def one(name: str) -> None:
        try:
            results[name] = await s.status_of(name)
        except (ergo_py.ErgoError, GlobalKVError) as exc:
            results[name] = f"no answer ({exc})"

    async with trio.open_nursery() as nursery:
        for name in names:
            if name not in results:
                nursery.start_soon(one, name)
    return {n: results[n] for n in names}


def _targets(s: Session, a: argparse.Namespace) -> list[str]:
    return [a.node] if a.node else [p.node for p in s.peers]


@_command("status")
async def _status(s: Session, a: argparse.Namespace) -> Output:
    results = await _statuses(s, _targets(s, a))
    rows, data = [], []
    for name, st in results.items():
        if isinstance(st, str):
            rows.append([name, st])
            data.append({"node": name, "error": st})
        else:
            rows.append(status_row(name, st))
            data.append(status_json(st))
    if not any(not isinstance(st, str) for st in results.values()):
        raise ClusterUnavailable(
            "no member answered a status request: " + "; ".join(f"{n}: {w}" for n, w in results.items())
        )
    return Output(data, table(STATUS_HEADER, rows))


async def _leader_status(s: Session) -> Any:
    _, st = await s.call_leader(StatusRequest())
    if not st.is_leader and st.leader is not None:
        st = await s.status_of(st.leader.node)
    return st


@_command("members")
async def _members(s: Session, a: argparse.Namespace) -> Output:
    st = await _leader_status(s)
    urls = {p.node: p.url for p in s.peers}
    leader = st.leader.node if st.leader is not None else None
    rows = [[m.node, "leader" if m.node == leader else "member", urls.get(m.node, "?")] for m in st.peers]
    data = [{"node": m.node, "leader": m.node == leader, "url": urls.get(m.node)} for m in st.peers]
    return Output(data, table(("NODE", "ROLE", "ADDRESS"), rows))


async def _wait_committed(s: Session, index: int) -> bool:
    with trio.move_on_after(s.timeout):
        while True:
            st = await _leader_status(s)
            if st.commit_index >= index:
                return True
            await trio.sleep(0.05)
    return False


async def _membership(s: Session, a: argparse.Namespace, adding: bool) -> Output:
    try:
        validate_node_name(a.peer)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    members = {m.node for m in (await _leader_status(s)).peers}
    if adding and a.peer in members:
        return Output({"ok": False}, "", EXIT_OUTCOME, f"{a.peer} is already a member")
    if not adding and a.peer not in members:
        return Output(
            {"ok": False}, "", EXIT_OUTCOME, f"{a.peer} is not a member (members: {', '.join(sorted(members))})"
        )
    request = (
        AddPeerRequest(ProcessID(GLOBAL_NAME, a.peer)) if adding else RemovePeerRequest(ProcessID(GLOBAL_NAME, a.peer))
    )
    _, index = await s.call_leader(request)
    committed = await _wait_committed(s, index)
    verb = "added" if adding else "removed"
    note = "committed" if committed else f"not committed within {s.timeout:g} s"
    data = {"ok": True, "node": a.peer, "index": index, "committed": committed}
    return Output(
        data,
        f"{verb} {a.peer} (log index {index}, {note})",
        0 if committed else EXIT_OUTCOME,
        None if committed else f"the change to {a.peer} was proposed at {index} but not committed in time",
    )


@_command("add-peer")
async def _add_peer(s: Session, a: argparse.Namespace) -> Output:
    return await _membership(s, a, adding=True)


@_command("remove-peer")
async def _remove_peer(s: Session, a: argparse.Namespace) -> Output:
    return await _membership(s, a, adding=False)


async def _each_member(
    s: Session, a: argparse.Namespace, ask: Callable[[str], Awaitable[Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`ask` every target member concurrently: ({name: answer}, {name: why it gave none}), in order."""
    names = _targets(s, a)
    answers: dict[str, Any] = {}
    failed: dict[str, str] = {n: s.problems[n] for n in names if n in s.problems}

    async def one(name: str) -> None:
        try:
            answers[name] = await ask(name)
        except (ergo_py.ErgoError, GlobalKVError) as exc:
            failed[name] = f"no answer ({exc})"

    async with trio.open_nursery() as nursery:
        for name in names:
            if name not in failed:
                nursery.start_soon(one, name)
    return {n: answers[n] for n in names if n in answers}, {n: failed[n] for n in names if n in failed}


def _failed_members(failed: dict[str, str], what: str, answered: int = 1) -> str:
    """The error for members without an answer; raises ClusterUnavailable when none answered."""
    message = f"{what} failed on {len(failed)} member(s): " + "; ".join(f"{n}: {why}" for n, why in failed.items())
    if not answered:
        raise ClusterUnavailable(message)
    return message


async def _snapshot_all(s: Session, a: argparse.Namespace, what: str) -> Output:
    results, failed = await _each_member(s, a, lambda name: s.call_member(name, SnapshotRequest()))
    lines = [f"{n}: {what} at applied index {i}" for n, i in results.items()]
    data: list[dict[str, Any]] = [{"node": n, "index": i} for n, i in results.items()]
    data += [{"node": n, "error": why} for n, why in failed.items()]
    if failed:
        return Output(data, "\n".join(lines), EXIT_OUTCOME, _failed_members(failed, a.ctl_command, len(results)))
    return Output(data, "\n".join(lines))


@_command("snapshot")
async def _snapshot(s: Session, a: argparse.Namespace) -> Output:
    return await _snapshot_all(s, a, "snapshot taken and log compacted")


@_command("compact")
async def _compact(s: Session, a: argparse.Namespace) -> Output:
    # A replica compacts its log by snapshotting: the entries before a snapshot are dropped.
    return await _snapshot_all(s, a, "log compacted (through a snapshot)")


@_command("metrics")
async def _metrics(s: Session, a: argparse.Namespace) -> Output:
    async def ask(name: str) -> tuple[Any, Any]:
        return await s.status_of(name), await s.call_member(name, MetricsRequest())

    from ..ops import render_metrics  # prometheus_client: only for this command

    results, failed = await _each_member(s, a, ask)
    texts, data = [], {}
    for name, (st, metrics) in results.items():
        texts.append(render_metrics(metrics, st, node=name).decode())
        data[name] = {"metrics": metrics, "status": status_json(st)}
    data.update({name: {"error": why} for name, why in failed.items()})
    text = "".join(texts).rstrip("\n")
    if failed:
        return Output(data, text, EXIT_OUTCOME, _failed_members(failed, "metrics", len(results)))
    return Output(data, text)


# -- running ----------------------------------------------------------------------------------------
def map_error(exc: BaseException) -> CLIError | None:
    """The CLIError for an exception a command may raise (None: a bug, let it show)."""
    if isinstance(exc, CLIError):
        return exc
    if isinstance(exc, InvalidRequest):  # RequestTooLarge too: the same request is refused again
        return UsageError(str(exc))
    if isinstance(exc, RequestFailed):
        return OutcomeError(str(exc))
    if isinstance(exc, (Unavailable, NotLeader)):
        return ClusterUnavailable(f"no quorum: {exc} (is a majority of the cluster up?)")
    if isinstance(exc, (LockHeld, LockTimeout, TooManyWaiters, StaleToken, LockNotHeld, CASFailed)):
        return OutcomeError(str(exc))
    if isinstance(exc, (ergo_py.CallTimeout, ergo_py.NoConnection, ergo_py.ProcessUnknown, ergo_py.ProcessExited)):
        return ClusterUnavailable(f"the cluster did not answer: {exc}")
    if isinstance(exc, RemoteError):
        if exc.type_name.rpartition(".")[2] in ("InvalidRequest", "RequestTooLarge"):
            return UsageError(f"invalid request: {exc.message}")
        return OutcomeError(f"refused: {exc.message or exc.type_name}")
    if isinstance(exc, GlobalKVError):
        return OutcomeError(str(exc))
    return None


def write_bytes(out: TextIO, data: bytes) -> None:
    """Exact bytes to a text stream: through its binary buffer when it has one (stdout does)."""
    buffer = getattr(out, "buffer", None)
    out.flush()
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:  # an in-memory stream (tests, harnesses): bytes that are not UTF-8 come back with os.fsencode
        out.write(data.decode("utf-8", "surrogateescape"))
        out.flush()


def resolve_cookie(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    cookie = getattr(args, "cookie", None) or env.get("COOKIE") or env.get("ERGO_COOKIE")
    if not cookie:
        raise UsageError("no cookie: set COOKIE (or ERGO_COOKIE) to the cluster's cookie, or pass --cookie")
    return cookie


async def run_ctl(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: BinaryIO | None = None,
) -> int:
    """Run one ctl command; returns the exit code. Raises CLIError for failures."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    cluster = args.cluster or env.get("BOOTSTRAP")
    if not cluster:
        raise UsageError("no cluster: pass --cluster 'n1@host=ws://host:port,...' or set BOOTSTRAP")
    peers = parse_bootstrap(cluster, what="--cluster")
    cookie = resolve_cookie(args, env)
    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0 seconds")
    if getattr(args, "value", None) is not None:
        args.value_bytes = (stdin or sys.stdin.buffer).read() if args.value == b"-" else args.value
    args.out = out
    args.stdin = stdin or sys.stdin.buffer
    handler = _HANDLERS[args.ctl_command]
    try:
        # No probe first: the request goes out at once, and Session.run explains a cluster it cannot reach.
        async with open_session(
            peers, cookie=cookie, timeout=args.timeout, only=args.node, probe_first=False
        ) as session:
            result = await session.run(lambda: handler(session, args))
    except BaseException as exc:
        mapped = map_error(exc)
        if mapped is None:
            raise
        raise mapped from exc
    if args.json:
        print(json.dumps(result.data, default=str), file=out, flush=True)
    elif result.raw is not None:
        write_bytes(out, result.raw)
    elif result.text:
        print(result.text, file=out, flush=True)
    if result.exit_code and result.error:
        print(f"global-kv ctl: {readable_message(result.error)}", file=err, flush=True)
    elif result.note and not args.json:
        print(f"global-kv ctl: note: {result.note}", file=err, flush=True)
    return result.exit_code


from . import _ctl_kv  # noqa: E402  (registers the revision, txn, watch, lease, elect and semaphore commands)

assert _ctl_kv
