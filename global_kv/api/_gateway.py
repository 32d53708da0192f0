"""etcd's JSON gateway (grpc-gateway's mapping of the same services): `POST /v3/kv/range`
with a JSON RangeRequest answers a JSON RangeResponse, in the proto3 JSON mapping that
etcd uses (original field names, bytes in base64, 64-bit integers as strings). Streams
(`/v3/watch`, `/v3/lease/keepalive`) take one request and answer newline-delimited
`{"result": ...}` objects until the client hangs up. Errors are grpc-gateway's:
`{"error", "code", "message"}` with the HTTP status of the gRPC code. `/v3beta` and
`/v3alpha` are accepted as `/v3`, as etcd 3.4 did for older clients.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from google.protobuf.message import Message

from ._grpc import BodyWriter, Call, GrpcError, HttpRequest, HttpResponse, Method, Status
from ._json import message_to_dict, parse_json
from ._services import ETCD_VERSION

__all__ = ["Gateway"]

# grpc-gateway (v1, as etcd 3.5 uses it): gRPC code -> HTTP status.
_HTTP_STATUS = {
    Status.OK: 200,
    Status.CANCELLED: 408,
    Status.UNKNOWN: 500,
    Status.INVALID_ARGUMENT: 400,
    Status.DEADLINE_EXCEEDED: 504,
    Status.NOT_FOUND: 404,
    Status.ALREADY_EXISTS: 409,
    Status.PERMISSION_DENIED: 403,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.FAILED_PRECONDITION: 400,
    Status.ABORTED: 409,
    Status.OUT_OF_RANGE: 400,
    Status.UNIMPLEMENTED: 501,
    Status.INTERNAL: 500,
    Status.UNAVAILABLE: 503,
    Status.DATA_LOSS: 500,
    Status.UNAUTHENTICATED: 401,
}

# Gateway path -> gRPC method path.
_ROUTES = {
    "/v3/kv/range": "/etcdserverpb.KV/Range",
    "/v3/kv/put": "/etcdserverpb.KV/Put",
    "/v3/kv/deleterange": "/etcdserverpb.KV/DeleteRange",
    "/v3/kv/txn": "/etcdserverpb.KV/Txn",
    "/v3/kv/compaction": "/etcdserverpb.KV/Compact",
    "/v3/watch": "/etcdserverpb.Watch/Watch",
    "/v3/lease/grant": "/etcdserverpb.Lease/LeaseGrant",
    "/v3/lease/revoke": "/etcdserverpb.Lease/LeaseRevoke",
    "/v3/kv/lease/revoke": "/etcdserverpb.Lease/LeaseRevoke",
    "/v3/lease/keepalive": "/etcdserverpb.Lease/LeaseKeepAlive",
    "/v3/lease/timetolive": "/etcdserverpb.Lease/LeaseTimeToLive",
    "/v3/kv/lease/timetolive": "/etcdserverpb.Lease/LeaseTimeToLive",
    "/v3/lease/leases": "/etcdserverpb.Lease/LeaseLeases",
    "/v3/kv/lease/leases": "/etcdserverpb.Lease/LeaseLeases",
    "/v3/cluster/member/list": "/etcdserverpb.Cluster/MemberList",
    "/v3/cluster/member/add": "/etcdserverpb.Cluster/MemberAdd",
    "/v3/cluster/member/remove": "/etcdserverpb.Cluster/MemberRemove",
    "/v3/cluster/member/update": "/etcdserverpb.Cluster/MemberUpdate",
    "/v3/cluster/member/promote": "/etcdserverpb.Cluster/MemberPromote",
    "/v3/maintenance/status": "/etcdserverpb.Maintenance/Status",
    "/v3/maintenance/alarm": "/etcdserverpb.Maintenance/Alarm",
    "/v3/maintenance/defragment": "/etcdserverpb.Maintenance/Defragment",
    "/v3/maintenance/hash": "/etcdserverpb.Maintenance/Hash",
    "/v3/maintenance/snapshot": "/etcdserverpb.Maintenance/Snapshot",
    "/v3/maintenance/transfer-leadership": "/etcdserverpb.Maintenance/MoveLeader",
    "/v3/lock/lock": "/v3lockpb.Lock/Lock",
    "/v3/lock/unlock": "/v3lockpb.Lock/Unlock",
    "/v3/election/campaign": "/v3electionpb.Election/Campaign",
    "/v3/election/proclaim": "/v3electionpb.Election/Proclaim",
    "/v3/election/leader": "/v3electionpb.Election/Leader",
    "/v3/election/observe": "/v3electionpb.Election/Observe",
    "/v3/election/resign": "/v3electionpb.Election/Resign",
    "/v3/auth/authenticate": "/etcdserverpb.Auth/Authenticate",
    "/v3/auth/enable": "/etcdserverpb.Auth/AuthEnable",
    "/v3/auth/disable": "/etcdserverpb.Auth/AuthDisable",
    "/v3/auth/status": "/etcdserverpb.Auth/AuthStatus",
}


def _error_body(error: GrpcError) -> dict[str, Any]:
    return {"error": error.message, "code": error.code, "message": error.message}


def _error(error: GrpcError) -> HttpResponse:
    body = json.dumps(_error_body(error), separators=(",", ":")).encode()
    return HttpResponse(_HTTP_STATUS.get(error.code, 500), body)


def _query_flag(path: str, name: str) -> bool:
    """Whether the query string of `path` sets `name` to true (etcd's `?serializable=true`)."""
    query = path.split("?", 1)[1] if "?" in path else ""
    return any(part in (name, f"{name}=true", f"{name}=1") for part in query.split("&"))


class Gateway:
    """Answers plain HTTP requests with the gRPC methods' handlers; `health` says whether
    this member serves (etcd's `/health`); a request's message is at most `max_message`
    bytes, as over gRPC."""

    def __init__(self, methods: dict[str, Method], health: Any, max_message: int) -> None:
        self.methods = methods
        self.health = health
        self.max_message = max_message

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        for old in ("/v3beta/", "/v3alpha/"):
            if path.startswith(old):
                path = "/v3/" + path[len(old) :]
        if path == "/version" and request.method == "GET":
            return HttpResponse(200, json.dumps({"etcdserver": ETCD_VERSION, "etcdcluster": "3.5.0"}).encode())
        if path in ("/health", "/readyz", "/livez") and request.method == "GET":
            ok, reason = await self.health(_query_flag(request.path, "serializable"))
            body = {"health": "true" if ok else "false", "reason": reason}
            return HttpResponse(200 if ok else 503, json.dumps(body).encode())
        grpc_path = _ROUTES.get(path)
        if grpc_path is None:
            return HttpResponse(404, json.dumps({"error": "Not Found", "code": 5, "message": "Not Found"}).encode())
        if request.method != "POST":
            return HttpResponse(405, json.dumps({"error": "Method Not Allowed", "code": 12}).encode())
        method = self.methods[grpc_path]
        try:
            message = method.request()
            parse_json(request.body or b"{}", message)
        except (ValueError, RecursionError) as exc:
            return _error(GrpcError(Status.INVALID_ARGUMENT, f"invalid JSON request: {exc}"))
        size = message.ByteSize()
        if size > self.max_message:
            too_big = f"grpc: received message larger than max ({size} vs. {self.max_message})"
            return _error(GrpcError(Status.RESOURCE_EXHAUSTED, too_big))
        if not method.streaming:
            try:
                response = await method.handler(message, None)
            except GrpcError as exc:
                return _error(exc)
            return HttpResponse(200, json.dumps(message_to_dict(response), separators=(",", ":")).encode())
        call = Call(0, grpc_path, dict(request.headers), "gateway", *trio.open_memory_channel[Any](0))
        return HttpResponse(200, self._stream(method, message, call))

    def _stream(self, method: Method, message: Message, call: Call) -> BodyWriter:
        """The handler's responses as `{"result": ...}` lines; an error is the last line."""

        async def one() -> AsyncIterator[Message]:
            # The body's one message, then the end of the request stream (as grpc-gateway does:
            # a keep-alive answers once; a watch or an observe goes on until the client leaves).
            yield message

        async def write(send: Callable[[bytes], Awaitable[None]]) -> None:
            try:
                await method.handler(one(), lambda m: send(_line({"result": message_to_dict(m)})), call)
            except GrpcError as exc:
                await send(_line({"error": _error_body(exc)}))

        return write

    def may_wait(self, request: HttpRequest) -> bool:
        """Whether answering may wait on others (a lock, a campaign): then the client's
        hanging up must cancel it, so that it takes its place in line back."""
        return request.path.split("?", 1)[0].rsplit("/", 1)[-1] in ("lock", "campaign")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
