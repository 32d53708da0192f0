"""The etcd API port faces anything a network can send. These tests send it bad input on
purpose (garbage protobufs, oversized, compressed, truncated, missing or extra messages,
unknown methods, abrupt disconnects, non-HTTP bytes, bad HTTP/2 frames, bad JSON, tiny
deadlines) and check two things each time: the client gets a clear answer (the exact
gRPC status, an HTTP error, or a closed stream or connection), and the same server then
still serves a real Put and Range. A raw h2 client controls the bytes; grpcio is the
realistic client."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trio

import ergo_py as e
from ergo_py import ProcessID
from global_kv.api import EtcdServer, Status, open_etcd_server
from global_kv.api._grpc import PREFACE, json_body_limit
from global_kv.api._pb import rpc_pb2, v3election_pb2
from global_kv.app import Application, GlobalConfig
from global_kv.client import open_client
from global_kv.protocol import MetricsRequest

NODE = "api1@localhost"
MAX = 4096  # the server's max_request_bytes: oversized messages stay cheap
BODY = json_body_limit(MAX)  # the gateway's: MAX bytes of message, in base64 and JSON
RANGE, PUT, WATCH = "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.Watch/Watch"
_keys = itertools.count()


@dataclass
class Api:
    node: e.Node
    server: EtcdServer


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with e.start_node(NODE) as node:
        with trio.fail_after(20):
            await node.application_start(Application(GlobalConfig(bootstrap=(ProcessID("global", NODE),))))
            async with open_client(node, [NODE]) as client:
                while not (await client.status()).is_leader:
                    await trio.sleep(0.02)
        async with open_etcd_server(node, ("127.0.0.1", 0), [NODE], max_request_bytes=MAX) as server:
            yield Api(node, server)


# -- clients ----------------------------------------------------------------------------------
def _grpc_call(port: int, path: str, payload: bytes) -> tuple[grpc.StatusCode, str, bytes | None]:
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        call = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            return grpc.StatusCode.OK, "", call(payload, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", None


async def grpc_call(server: EtcdServer, path: str, payload: bytes) -> tuple[grpc.StatusCode, str, bytes | None]:
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(_grpc_call, server.port, path, payload, abandon_on_cancel=True)


async def tcp(server: EtcdServer) -> trio.SocketStream:
    with trio.fail_after(5):
        return await trio.open_tcp_stream("127.0.0.1", server.port)


async def assert_serves(server: EtcdServer) -> None:
    """A real Put then Range (grpcio) on the same server."""
    key = f"good/{next(_keys)}".encode()
    code, details, _ = await grpc_call(server, PUT, rpc_pb2.PutRequest(key=key, value=b"v").SerializeToString())
    assert code is grpc.StatusCode.OK, details
    code, details, raw = await grpc_call(server, RANGE, rpc_pb2.RangeRequest(key=key).SerializeToString())
    assert code is grpc.StatusCode.OK and raw is not None, details
    assert [(kv.key, kv.value) for kv in rpc_pb2.RangeResponse.FromString(raw).kvs] == [(key, b"v")]


def msg(payload: bytes, *, compressed: int = 0, length: int | None = None) -> bytes:
    """One gRPC message: flag, big-endian length, payload."""
    return bytes([compressed]) + (len(payload) if length is None else length).to_bytes(4, "big") + payload


@dataclass
class Reply:
    headers: dict[str, str] = field(default_factory=dict)  # headers and trailers
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int | None:
        return int(self.headers["grpc-status"]) if "grpc-status" in self.headers else None

    def messages(self) -> list[bytes]:
        out, rest = [], bytes(self.data)
        while len(rest) >= 5:
            n = int.from_bytes(rest[1:5], "big")
            out.append(rest[5 : 5 + n])
            rest = rest[5 + n :]
        return out


class RawH2:
    """A minimal HTTP/2 gRPC client over a trio TCP stream: every byte is ours."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.replies: dict[int, Reply] = {}
        self.eof = False
        self.pongs = 0

    @classmethod
    async def connect(cls, server: EtcdServer, settings: dict[int, int] | None = None) -> RawH2:
        client = cls(await tcp(server))
        client.conn.initiate_connection()
        if settings:
            client.conn.update_settings(settings)
        await client.flush()
        return client

    async def flush(self) -> None:
        if data := self.conn.data_to_send():
            await self.stream.send_all(data)

    async def start(self, path: str, *extra: tuple[Any, Any], kind: str = "application/grpc") -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1")]
        headers += [("content-type", kind), ("te", "trailers"), *extra]
        self.conn.send_headers(sid, headers)
        self.replies[sid] = Reply()
        await self.flush()
        return sid

    async def send(self, sid: int, data: bytes, *, end: bool = False) -> None:
        self.conn.send_data(sid, data, end_stream=end)
        await self.flush()

    async def wait(self, done: Callable[[], bool]) -> None:
        while not done():
            assert not self.eof, "the server closed the connection"
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                self.eof = True
                continue
            for ev in self.conn.receive_data(data):
                self.pongs += isinstance(ev, h2.events.PingAckReceived)
                reply = self.replies.get(getattr(ev, "stream_id", 0))
                if reply is None:
                    continue
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    reply.headers.update((k.decode(), v.decode()) for k, v in ev.headers or ())
                elif isinstance(ev, h2.events.DataReceived):
                    reply.data += ev.data or b""
                    self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    reply.ended = True
                elif isinstance(ev, h2.events.StreamReset):
                    reply.ended, reply.reset = True, ev.error_code
            await self.flush()

    async def result(self, sid: int) -> Reply:
        with trio.fail_after(10):
            await self.wait(lambda: self.replies[sid].ended)
        return self.replies[sid]

    async def call(self, path: str, body: bytes, *extra: tuple[Any, Any]) -> Reply:
        sid = await self.start(path, *extra)
        await self.send(sid, body, end=True)
        return await self.result(sid)


async def assert_connection_serves(client: RawH2) -> None:
    """The connection that carried a bad call still serves a good one."""
    reply = await client.call(RANGE, msg(rpc_pb2.RangeRequest(key=b"any").SerializeToString()))
    assert reply.status == Status.OK and len(reply.messages()) == 1, reply


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    out = bytearray()
    with trio.fail_after(10), contextlib.suppress(trio.BrokenResourceError):  # a reset is a close too
        while chunk := await stream.receive_some(65536):
            out += chunk
    return bytes(out)


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


# -- bad gRPC messages ---------------------------------------------------------------------------
GOOD_RANGE = rpc_pb2.RangeRequest(key=b"k").SerializeToString()
GOOD_WATCH = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k")).SerializeToString()
BAD_MESSAGES = {  # name -> (body, status, words in grpc-message, whether a Watch stream is bad with it too)
    "garbage-protobuf": (msg(b"\x0a\x05ab"), Status.INTERNAL, "unmarshalling", True),
    "oversized": (msg(b"", length=MAX + 1), Status.RESOURCE_EXHAUSTED, "larger than max", True),
    "compressed": (msg(GOOD_RANGE, compressed=1), Status.UNIMPLEMENTED, "compressed", True),
    "ends-inside-message": (msg(b"x" * 10, length=100), Status.INTERNAL, "ended inside a message", True),
    "two-messages": (msg(GOOD_RANGE) * 2, Status.INTERNAL, "more than one", False),
    "no-message": (b"", Status.INTERNAL, "no request", False),
}
CASES = [(c, p) for c, (*_, both) in BAD_MESSAGES.items() for p in (RANGE, WATCH) if both or p == RANGE]


@pytest.mark.parametrize(("case", "path"), CASES)
async def test_a_bad_message_gets_its_grpc_status_and_the_server_goes_on(api: Api, case: str, path: str) -> None:
    body, status, words, _ = BAD_MESSAGES[case]
    client = await RawH2.connect(api.server)
    async with client.stream:
        reply = await client.call(path, body)
        assert (reply.status, reply.reset) == (status, None), reply
        assert words in reply.headers.get("grpc-message", ""), reply
        assert reply.messages() == []
        await assert_connection_serves(client)
    await assert_serves(api.server)


async def test_grpcio_garbage_and_oversized_requests(api: Api) -> None:
    code, details, _ = await grpc_call(api.server, RANGE, b"\xff\xff\xff")
    assert code is grpc.StatusCode.INTERNAL and "unmarshalling" in details, details
    big = rpc_pb2.PutRequest(key=b"big", value=b"x" * (MAX + 10)).SerializeToString()
    code, details, _ = await grpc_call(api.server, PUT, big)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert f"vs. {MAX}" in details
    fits = rpc_pb2.PutRequest(key=b"fits", value=b"x" * (MAX - 100)).SerializeToString()
    assert (await grpc_call(api.server, PUT, fits))[0] is grpc.StatusCode.OK
    await assert_serves(api.server)


UNKNOWN = {"/nope.Svc/Do": "service nope.Svc", "/etcdserverpb.KV/Nope": "method Nope for service etcdserverpb.KV"}


@pytest.mark.parametrize("path", list(UNKNOWN))
async def test_unknown_service_or_method_is_unimplemented_by_name(api: Api, path: str) -> None:
    expected = (grpc.StatusCode.UNIMPLEMENTED, f"unknown {UNKNOWN[path]}", None)
    assert await grpc_call(api.server, path, GOOD_RANGE) == expected
    await assert_serves(api.server)


@pytest.mark.parametrize("value", ["1n", "0m", "bogus"])
async def test_a_tiny_or_malformed_deadline_never_hangs(api: Api, value: str) -> None:
    client = await RawH2.connect(api.server)
    async with client.stream:
        reply = await client.call(RANGE, msg(GOOD_RANGE), ("grpc-timeout", value))
        allowed = {Status.OK} if value == "bogus" else {Status.OK, Status.DEADLINE_EXCEEDED}
        assert reply.status in allowed, reply
        assert len(reply.messages()) == (1 if reply.status == Status.OK else 0)
        await assert_connection_serves(client)
    await assert_serves(api.server)


# -- disconnects and bad connections -------------------------------------------------------------
async def test_streams_cut_off_by_an_abrupt_disconnect_end_on_the_server(api: Api) -> None:
    code, details, raw = await grpc_call(api.server, "/etcdserverpb.Lease/LeaseGrant", b"\x08\x3c")  # TTL=60
    assert code is grpc.StatusCode.OK and raw is not None, details
    lease = rpc_pb2.LeaseGrantResponse.FromString(raw).ID

    async def watchers() -> int:
        with trio.fail_after(5):
            return int((await api.node.call("global", MetricsRequest()))["watchers"])

    before = await watchers()
    client = await RawH2.connect(api.server)
    watch = await client.start(WATCH)
    await client.send(watch, msg(GOOD_WATCH))
    keep = await client.start("/etcdserverpb.Lease/LeaseKeepAlive")
    await client.send(keep, msg(rpc_pb2.LeaseKeepAliveRequest(ID=lease).SerializeToString()))
    with trio.fail_after(10):
        await client.wait(lambda: bool(client.replies[watch].messages() and client.replies[keep].messages()))
    assert rpc_pb2.WatchResponse.FromString(client.replies[watch].messages()[0]).created
    assert rpc_pb2.LeaseKeepAliveResponse.FromString(client.replies[keep].messages()[0]).TTL == 60
    assert await watchers() == before + 1
    client.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    await client.stream.aclose()
    with trio.fail_after(10):
        while await watchers() != before:  # the server ended the watch of the gone client
            await trio.sleep(0.02)
    await assert_serves(api.server)


_SETTINGS = frame(4, 0, 0, b"")
GARBAGE_H2 = {  # name -> (bytes after the preface, the GOAWAY's error code)
    "oversized-frame": (_SETTINGS + frame(0, 0, 1, bytes(16385)), 6),  # FRAME_SIZE_ERROR (max 16384)
    "bad-hpack": (_SETTINGS + frame(1, 0x5, 1, b"\xff\xff\xff\xff\xff"), 1),  # PROTOCOL_ERROR
    "data-on-stream-0": (_SETTINGS + frame(0, 0, 0, b"abc"), 1),
}


@pytest.mark.parametrize("case", list(GARBAGE_H2))
async def test_http2_garbage_frames_close_the_connection(api: Api, case: str) -> None:
    garbage, error_code = GARBAGE_H2[case]
    stream = await tcp(api.server)
    async with stream:
        await stream.send_all(PREFACE + garbage)
        received = await read_to_eof(stream)
    parser = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    parser.initiate_connection()
    ends = [ev for ev in parser.receive_data(received) if isinstance(ev, h2.events.ConnectionTerminated)]
    assert [ev.error_code for ev in ends] == [error_code]
    await assert_serves(api.server)


async def test_a_header_that_is_not_utf8_ends_only_its_stream_or_connection(api: Api) -> None:
    client = await RawH2.connect(api.server)
    async with client.stream:
        sid = await client.start(RANGE, (b"x-bad", b"\xff\xfe"))
        await client.send(sid, msg(GOOD_RANGE), end=True)
        with trio.fail_after(10):
            await client.wait(lambda: client.eof or client.replies[sid].ended)
    await assert_serves(api.server)


async def test_bytes_that_are_neither_http2_nor_http1_get_400_and_a_close(api: Api) -> None:
    garbage = random.Random(8).randbytes(2000).replace(b"\n", b"").replace(b"P", b"") + b"\r\n\r\n"
    stream = await tcp(api.server)
    async with stream:
        await stream.send_all(garbage)
        assert (await read_to_eof(stream)).startswith(b"HTTP/1.1 400 ")
    await assert_serves(api.server)


# -- the JSON gateway over HTTP/1.1 --------------------------------------------------------------
def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


async def http1(server: EtcdServer, raw: bytes) -> tuple[int, bytes]:
    stream = await tcp(server)
    async with stream:
        await stream.send_all(raw)
        head, _, body = (await read_to_eof(stream)).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("body", [b"{not json", b"1", b"\xff", b"[" * 4000, b'{"limit": "abc"}'])
async def test_gateway_malformed_json_is_400_invalid_argument(api: Api, body: bytes) -> None:
    status, answer = await http1(api.server, post("/v3/kv/range", body))
    assert status == 400 and json.loads(answer)["code"] == 3, answer


async def test_gateway_bad_requests_get_their_http_errors_then_it_serves(api: Api) -> None:
    assert (await http1(api.server, post("/v3/nope", b"{}")))[0] == 404
    status, answer = await http1(api.server, post("/v3/kv/put", b"{" + b" " * BODY + b"}"))
    assert status == 413 and json.loads(answer)["code"] == 8, answer
    assert (await http1(api.server, b"GARBAGE\r\n\r\n"))[0] == 400
    chunked = b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    for size in (b"+2", b"0x2", b" 2", b"0_2", b"-2"):  # what int(x, 16) takes, and a proxy may not
        assert (await http1(api.server, chunked + size + b"\r\n{}\r\n0\r\n\r\n"))[0] == 400, size
    with trio.fail_after(5):  # at once, not when the connection's idle time runs out
        assert (await http1(api.server, b"GET /version HTTP/1.1\nHost: x\n\n"))[0] == 400
    status, answer = await http1(api.server, post("/v3/kv/range", b'{"limit": ' + b"9" * 5000 + b"}"))
    assert status == 400 and "digits" in json.loads(answer)["message"], answer
    good = b'{"key":"Zw=="}'  # 14 bytes: "e", and a chunk extension after white space is fine
    assert (await http1(api.server, chunked + b"e ;ext=1\r\n" + good + b"\r\n0\r\n\r\n"))[0] == 200
    assert (await http1(api.server, b"GET / HTTP/9.9 extra\r\nHost: x\r\n\r\n"))[0] == 400
    key, value = base64.b64encode(b"gw").decode(), base64.b64encode(b"ok").decode()
    status, _ = await http1(api.server, post("/v3/kv/put", json.dumps({"key": key, "value": value}).encode()))
    assert status == 200
    status, answer = await http1(api.server, post("/v3/kv/range", json.dumps({"key": key}).encode()))
    assert status == 200 and json.loads(answer)["kvs"][0]["value"] == value, answer
    await assert_serves(api.server)


def _window_holds(client: RawH2, sid: int, n: int) -> bool:
    return bool(client.conn.local_flow_control_window(sid) >= n)


async def test_http2_gateway_body_over_the_limit_is_413_while_the_client_still_sends(api: Api) -> None:
    # The client's window is 0 (the 413's body waits), and the rest of its body comes after the 413's headers.
    client = await RawH2.connect(api.server, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    async with client.stream:
        sid = await client.start("/v3/kv/put", kind="application/json")
        body = b"{" + b" " * BODY
        for start in range(0, len(body), 16_000):  # frames within 16 KiB, as the window opens
            piece = body[start : start + 16_000]
            with trio.fail_after(10):
                await client.wait(partial(_window_holds, client, sid, len(piece)))
            await client.send(sid, piece)
        with trio.fail_after(10):
            await client.wait(lambda: ":status" in client.replies[sid].headers)
        assert client.replies[sid].headers[":status"] == "413"
        await client.send(sid, b" " * 10 + b"}", end=True)
        client.conn.ping(b"12345678")  # answered after the server has read the data before it
        await client.flush()
        with trio.fail_after(10):
            await client.wait(lambda: client.pongs == 1)
        client.conn.increment_flow_control_window(65535, sid)
        await client.flush()
        reply = await client.result(sid)
        assert json.loads(reply.data)["code"] == 8, reply
    await assert_serves(api.server)


async def test_an_answer_over_the_limits_is_resource_exhausted_and_a_refused_delete_deletes_nothing(api: Api) -> None:
    """A range whose answer passes the reply limit, and a delete whose prev_kvs would pass
    the result budget, get ResourceExhausted (what a gRPC client sees when a reply passes
    its limit), not etcd's InvalidArgument "request is too large": the delete is refused
    before it applies, so nothing is deleted."""
    async with open_client(api.node, [NODE]) as client:
        for i in range(7):  # 9.8 MB: over the 8 MiB reply limit and the 4 MiB result budget
            await client.put_kv(b"huge/%d" % i, b"x" * 1_400_000)
    everything = rpc_pb2.RangeRequest(key=b"huge/", range_end=b"huge0").SerializeToString()
    code, details, _ = await grpc_call(api.server, RANGE, everything)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "response is too large" in details, (code, details)
    delete = "/etcdserverpb.KV/DeleteRange"
    with_prev = rpc_pb2.DeleteRangeRequest(key=b"huge/", range_end=b"huge0", prev_kv=True).SerializeToString()
    code, details, _ = await grpc_call(api.server, delete, with_prev)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "nothing was deleted" in details, (code, details)
    count = rpc_pb2.RangeRequest(key=b"huge/", range_end=b"huge0", count_only=True).SerializeToString()
    code, _, raw = await grpc_call(api.server, RANGE, count)
    assert code is grpc.StatusCode.OK and raw is not None and rpc_pb2.RangeResponse.FromString(raw).count == 7
    plain = rpc_pb2.DeleteRangeRequest(key=b"huge/", range_end=b"huge0").SerializeToString()
    code, _, raw = await grpc_call(api.server, delete, plain)
    assert code is grpc.StatusCode.OK and raw is not None and rpc_pb2.DeleteRangeResponse.FromString(raw).deleted == 7
    await assert_serves(api.server)


async def test_negative_limits_and_revisions_mean_none_and_now_and_txns_hold_at_most_128_ops(api: Api) -> None:
    """As etcd: `etcdctl get --limit=-1` and a revision below 0 read everything, now; a txn
    with more than 128 compares or operations in a branch is refused (--max-txn-ops)."""
    put = "/etcdserverpb.KV/Put"
    for key in (b"neg/a", b"neg/b"):
        assert (await grpc_call(api.server, put, rpc_pb2.PutRequest(key=key, value=b"v").SerializeToString()))[
            0
        ] is grpc.StatusCode.OK
    ask = rpc_pb2.RangeRequest(key=b"neg/", range_end=b"neg0", limit=-1, revision=-7).SerializeToString()
    code, details, raw = await grpc_call(api.server, RANGE, ask)
    assert code is grpc.StatusCode.OK and raw is not None, details
    assert [kv.key for kv in rpc_pb2.RangeResponse.FromString(raw).kvs] == [b"neg/a", b"neg/b"]
    txn = "/etcdserverpb.KV/Txn"

    def puts(n: int) -> bytes:
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t/%d" % i, value=b"v")) for i in range(n)]
        return rpc_pb2.TxnRequest(success=ops).SerializeToString()

    assert (await grpc_call(api.server, txn, puts(128)))[0] is grpc.StatusCode.OK
    code, details, _ = await grpc_call(api.server, txn, puts(129))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
    await assert_serves(api.server)


async def test_streams_opened_before_the_client_has_read_our_settings_are_all_served(api: Api) -> None:
    """The server's stream limit (1000) holds from its first byte: 150 calls opened at once
    on a new connection, before the client has read the server's SETTINGS, are all answered
    (h2's own default of 100 ended the connection at the 101st)."""
    client = await RawH2.connect(api.server)
    async with client.stream:
        sids = [await client.start(RANGE) for _ in range(150)]  # all open at once
        for sid in sids:
            await client.send(sid, msg(GOOD_RANGE), end=True)
        with trio.fail_after(20):
            await client.wait(lambda: all(client.replies[s].ended for s in sids))
        assert all((client.replies[s].status, client.replies[s].reset) == (0, None) for s in sids)
        await assert_connection_serves(client)


async def test_the_gateway_takes_a_value_as_large_as_grpc_does_and_refuses_past_it(api: Api) -> None:
    """The JSON body is held to the message's limit in base64, then the message to the limit
    itself: a value grpc takes goes through the gateway too (in base64 it is a third larger
    than the limit), one past it is refused as over gRPC; a client that sends all of an
    oversized body before reading gets the 413, not a reset."""
    key = base64.b64encode(b"gw-big").decode()
    fits = json.dumps({"key": key, "value": base64.b64encode(b"x" * (MAX - 100)).decode()}).encode()
    assert len(fits) > MAX
    status, answer = await http1(api.server, post("/v3/kv/put", fits))
    assert status == 200, answer
    past = json.dumps({"key": key, "value": base64.b64encode(b"x" * (MAX + 100)).decode()}).encode()
    status, answer = await http1(api.server, post("/v3/kv/put", past))
    assert status == 429 and "larger than max" in json.loads(answer)["message"], (status, answer)
    status, answer = await http1(api.server, post("/v3/kv/put", b"{" + b" " * (4 << 20) + b"}"))  # 4 MiB
    assert status == 413 and json.loads(answer)["code"] == 8, answer
    await assert_serves(api.server)


async def test_a_client_resetting_calls_faster_than_they_are_served_loses_its_connection(api: Api) -> None:
    """HTTP/2 "rapid reset" (CVE-2023-44487): each call opened and reset at once costs the
    server a task and a request's work; past 200 a second on one connection the server
    closes it (GOAWAY ENHANCE_YOUR_CALM; the client may see a reset instead, if the close
    came with its bytes unread), and serves the next connection."""
    client = await RawH2.connect(api.server)
    body = msg(rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00").SerializeToString())
    codes: list[int] = []
    async with client.stream:
        with trio.fail_after(20):
            try:
                for _ in range(600):
                    sid = await client.start(RANGE)
                    client.conn.send_data(sid, body, end_stream=True)
                    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    await client.flush()
                while not codes:
                    data = await client.stream.receive_some(65536)
                    if not data:
                        break
                    events = client.conn.receive_data(data)
                    codes += [e.error_code for e in events if isinstance(e, h2.events.ConnectionTerminated)]
            except trio.BrokenResourceError:
                pass  # closed while we sent or read
    assert codes in ([], [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]), codes
    await assert_serves(api.server)


async def test_proclaim_and_resign_without_a_leadership_are_not_leader(api: Api) -> None:
    """etcd's answer to a Proclaim or Resign that names no leadership the caller holds."""
    proclaim = v3election_pb2.ProclaimRequest(value=b"v").SerializeToString()
    resign = v3election_pb2.ResignRequest().SerializeToString()
    for path, body in (("/v3electionpb.Election/Proclaim", proclaim), ("/v3electionpb.Election/Resign", resign)):
        code, details, _ = await grpc_call(api.server, path, body)
        assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: election: not leader"), path
    await assert_serves(api.server)
