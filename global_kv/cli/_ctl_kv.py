"""`global-kv ctl` commands for etcd's data model: ranges with revisions and options,
compaction, transactions from stdin, watches, leases, elections and semaphores.

Registered into `_ctl`'s command table on import. Readable output is one line per key or
event (tab-separated, bytes escaped as `get` escapes them); `--json` gives the whole
answer with revisions. Long-running ones (`watch`, `lease keep-alive`, `elect`,
`semaphore`) run until Ctrl-C/SIGTERM, `--duration` or `--count`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._errors import LeaseNotFound
from ..client import ops
from ..protocol import KeyValue, prefix_range_end
from ._ctl import Output, _command
from ._errors import EXIT_OUTCOME, UsageError
from ._format import bytes_fields, show_bytes, tsv_row
from ._session import Session

__all__: list[str] = []


def kv_json(kv: KeyValue) -> dict[str, Any]:
    return {
        **bytes_fields("key", kv.key),
        **bytes_fields("value", kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


def _range_end(a: argparse.Namespace) -> bytes:
    if a.prefix:
        return prefix_range_end(a.key)
    return a.range_end or b""


async def get_range(s: Session, a: argparse.Namespace) -> Output:
    """`get` with any of --rev, --prefix, --range-end, --keys-only, --count-only, --sort-by,
    --order, --limit: etcd's Range."""
    found = await s.client.range_kv(
        a.key,
        _range_end(a),
        revision=a.rev,
        limit=a.limit,
        consistency=a.consistency,
        sort_order=a.order or ("none" if a.sort_by is None else "ascend"),
        sort_target=a.sort_by or "key",
        keys_only=a.keys_only,
        count_only=a.count_only,
    )
    data = {
        "revision": found.header.revision,
        "kvs": [kv_json(kv) for kv in found.kvs],
        "more": found.more,
        "count": found.count,
    }
    if a.count_only:
        return Output(data, str(found.count))
    if a.keys_only:
        return Output(data, "\n".join(show_bytes(kv.key) for kv in found.kvs))
    return Output(data, "\n".join(tsv_row(kv.key, kv.value) for kv in found.kvs))


@_command("compaction")
async def _compaction(s: Session, a: argparse.Namespace) -> Output:
    done = await s.client.compact(a.revision)
    return Output({"compacted": a.revision, "revision": done.header.revision}, f"compacted revision {a.revision}")


# -- transactions -----------------------------------------------------------------------------
_TARGETS = {"value", "version", "create", "mod", "lease"}


def _compare(line: str) -> Any:
    """`value("key") = "v"`, `mod("key") > "5"`, ... (etcdctl txn's compare lines)."""
    head, _, rest = line.partition("(")
    target = head.strip()
    key_text, _, tail = rest.partition(")")
    words = shlex.split(tail)
    if target not in _TARGETS or len(words) != 2 or words[0] not in ("=", "!=", "<", ">"):
        raise UsageError(f'not a compare: {line!r} (write: value("key") = "v", or version/create/mod/lease)')
    key = shlex.split(key_text)[0].encode() if key_text.strip() else b""
    result, operand = words
    build = getattr(ops, target)(key)
    value: Any = operand.encode() if target == "value" else _int(operand, line)
    return {"=": build.__eq__, "!=": build.__ne__, "<": build.__lt__, ">": build.__gt__}[result](value)


def _int(text: str, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"not a number in {line!r}: {text!r}") from None


def _op(line: str) -> Any:
    """`put KEY VALUE`, `del KEY [END]`, `get KEY [END]` (etcdctl txn's operation lines)."""
    words = shlex.split(line)
    if not words:
        raise UsageError("an empty operation")
    verb, args = words[0], [w.encode() for w in words[1:]]
    if verb == "put" and len(args) == 2:
        return ops.put(args[0], args[1])
    if verb in ("del", "delete") and len(args) in (1, 2):
        return ops.delete(args[0], args[1] if len(args) == 2 else b"")
    if verb == "get" and len(args) in (1, 2):
        return ops.get(args[0], args[1] if len(args) == 2 else b"")
    raise UsageError(f"not an operation: {line!r} (write: put KEY VALUE, del KEY [END], get KEY [END])")


def parse_txn(text: str) -> tuple[list[Any], list[Any], list[Any]]:
    """etcdctl txn's stdin: compares, a blank line, success operations, a blank line,
    failure operations."""
    blocks: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if blocks[-1] or len(blocks) > 1:
                blocks.append([])
            continue
        blocks[-1].append(line)
    while len(blocks) < 3:
        blocks.append([])
    if len(blocks) > 3 and any(blocks[3:]):
        raise UsageError("a txn is compares, a blank line, success operations, a blank line, failure operations")
    return [_compare(c) for c in blocks[0]], [_op(o) for o in blocks[1]], [_op(o) for o in blocks[2]]


@_command("txn")
async def _txn(s: Session, a: argparse.Namespace) -> Output:
    compares, success, failure = parse_txn(a.stdin.read().decode("utf-8", "surrogateescape"))
    answer = await s.client.txn(compares, success, failure)
    lines = ["SUCCESS" if answer.succeeded else "FAILURE"]
    responses: list[Any] = []
    for r in answer.responses:
        kvs = getattr(r, "kvs", None)
        if kvs is not None:
            lines += [tsv_row(kv.key, kv.value) for kv in kvs]
            responses.append({"kvs": [kv_json(kv) for kv in kvs], "count": r.count})  # type: ignore[union-attr]
        elif hasattr(r, "deleted"):
            lines.append(f"deleted {r.deleted}")  # type: ignore[union-attr]
            responses.append({"deleted": r.deleted})  # type: ignore[union-attr]
        else:
            lines.append("OK")
            responses.append({"ok": True})
    data = {"succeeded": answer.succeeded, "revision": answer.header.revision, "responses": responses}
    return Output(data, "\n".join(lines))


# -- long-running commands --------------------------------------------------------------------
@asynccontextmanager
async def _until_stopped(a: argparse.Namespace) -> AsyncIterator[trio.CancelScope]:
    """A scope cancelled by Ctrl-C/SIGTERM or after --duration."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()
            if getattr(a, "duration", None) is not None:
                scope.deadline = trio.current_time() + a.duration

            async def stop_on_signal() -> None:
                async for _ in signals:
                    scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            try:
                yield scope
            finally:
                nursery.cancel_scope.cancel()


def _print(a: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if a.json else text, file=a.out, flush=True)


@_command("watch")
async def _watch(s: Session, a: argparse.Namespace) -> Output:
    seen = 0
    async with _until_stopped(a) as scope:
        with scope:
            async with s.client.watch(a.key, _range_end(a), start_revision=a.rev, prev_kv=a.prev_kv) as events:
                async for event in events:
                    kind = event.type.upper()
                    shown = tsv_row(event.kv.key, event.kv.value) if kind == "PUT" else show_bytes(event.kv.key)
                    text = f"{kind}\t{shown}"
                    data = {"type": kind, "revision": event.kv.mod_revision, "kv": kv_json(event.kv)}
                    if event.prev_kv is not None:
                        data["prev_kv"] = kv_json(event.prev_kv)
                    _print(a, data, text)
                    seen += 1
                    if a.count and seen >= a.count:
                        break
    a.json = False  # every event is printed already
    return Output(None, "")


@_command("lease")
async def _lease(s: Session, a: argparse.Namespace) -> Output:
    client = s.client
    action = a.action
    if action == "list":
        leases = (await client.leases()).leases
        return Output({"leases": list(leases)}, "\n".join(f"{i:x}" for i in leases))
    if a.arg is None:
        raise UsageError(f"lease {action} needs {'a TTL' if action == 'grant' else 'a lease id (hex)'}")
    if action == "grant":
        try:
            seconds = float(a.arg)
        except ValueError:
            raise UsageError(f"not a TTL in seconds: {a.arg!r}") from None
        granted = await client.lease_grant(seconds)
        text = f"lease {granted.lease_id:x} granted with TTL {granted.ttl:g}s"
        return Output({"id": granted.lease_id, "ttl": granted.ttl}, text)
    try:
        lease_id = int(a.arg, 16)
    except ValueError:
        raise UsageError(f"not a lease id (hex, as lease grant prints it): {a.arg!r}") from None
    if action == "revoke":
        await client.lease_revoke(lease_id)
        return Output({"revoked": lease_id}, f"lease {lease_id:x} revoked")
    if action == "timetolive":
        ttl = await client.lease_time_to_live(lease_id, keys=a.keys)
        if ttl.ttl < 0:
            return Output(
                {"id": lease_id, "ttl": -1}, "", EXIT_OUTCOME, f"lease {lease_id:x} not found (expired or revoked)"
            )
        keys = [show_bytes(k) for k in ttl.keys]
        text = f"lease {lease_id:x} granted with TTL({ttl.granted_ttl:g}s), remaining({ttl.ttl:.1f}s)"
        if a.keys:
            text += ", attached keys(" + ", ".join(keys) + ")"
        return Output({"id": lease_id, "ttl": ttl.ttl, "granted_ttl": ttl.granted_ttl, "keys": keys}, text)
    # keep-alive: until stopped (or --once)
    sent = 0
    try:
        async with _until_stopped(a) as scope:
            with scope:
                while True:
                    alive = await client.lease_keepalive(lease_id)
                    sent += 1
                    _print(
                        a, {"id": lease_id, "ttl": alive.ttl}, f"lease {lease_id:x} keepalived with TTL({alive.ttl:g})"
                    )
                    if a.once:
                        break
                    await trio.sleep(max(alive.ttl / 3, 0.05))
    except LeaseNotFound:
        return Output(None, "", EXIT_OUTCOME, f"lease {lease_id:x} expired or was revoked")
    a.json = False
    return Output(None, "")


@_command("elect")
async def _elect(s: Session, a: argparse.Namespace) -> Output:
    election = s.client.election(a.name)
    if a.listen:
        seen = 0
        async with _until_stopped(a) as scope:
            with scope:
                async for leader in election.observe():
                    if leader is None:
                        _print(a, {"leader": None}, "(no leader)")
                    else:
                        _print(a, {"leader": kv_json(leader)}, tsv_row(leader.key, leader.value))
                    seen += 1
                    if a.count and seen >= a.count:
                        break
        a.json = False
        return Output(None, "")
    if a.value is None:
        raise UsageError("elect NAME VALUE campaigns (or elect NAME --listen observes)")
    async with s.client.lease(a.ttl) as lease:
        await election.campaign(a.value_bytes, lease.lease_id)
        _print(a, {"elected": True, **bytes_fields("name", election.name)}, f"elected: {show_bytes(election.name)}")
        async with _until_stopped(a) as scope:
            with scope:
                await trio.sleep_forever()
        with trio.CancelScope(shield=True):
            await election.resign()
    a.json = False
    return Output(None, "")


@_command("semaphore")
async def _semaphore(s: Session, a: argparse.Namespace) -> Output:
    pool = s.client.semaphore(a.name, a.permits)
    async with pool.hold(ttl=a.ttl, timeout=a.wait or None) as permit:
        _print(a, {"acquired": True, "token": permit.token}, f"acquired {show_bytes(permit.name)} token={permit.token}")
        async with _until_stopped(a) as scope:
            with scope:
                await trio.sleep_forever()
    a.json = False
    return Output(None, "")
