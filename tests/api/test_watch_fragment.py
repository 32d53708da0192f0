"""A watch created with `fragment` gets a revision whose events would pass the size limit
as several responses, each under it, all but the last marked `fragment` (what clientv3
joins); without `fragment`, the same revision comes as one response."""

from __future__ import annotations

import queue
import threading
from typing import Any

import grpc
import trio

from global_kv.api._pb import rpc_pb2

from .test_robustness import MAX, Api, api  # noqa: F401 - the fixture

WATCH = "/etcdserverpb.Watch/Watch"
TXN = "/etcdserverpb.KV/Txn"


def _puts(fill: int) -> rpc_pb2.TxnRequest:
    """8 puts of 400 bytes: one request under the 4,096-byte limit."""
    return rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"w/%d" % i, value=bytes([fill]) * 400))
            for i in range(8)
        ]
    )


def _watch_then_txn(port: int, fragment: bool) -> list[Any]:
    """Watch w/ with prev_kv, overwrite its 8 keys in one txn, collect the responses: with
    the previous values the revision's events pass the limit."""
    requests: queue.Queue[Any] = queue.Queue()
    create = rpc_pb2.WatchCreateRequest(key=b"w/", range_end=b"w0", fragment=fragment, prev_kv=True)
    requests.put(rpc_pb2.WatchRequest(create_request=create))
    got: list[Any] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        watch = channel.stream_stream(
            WATCH,
            request_serializer=rpc_pb2.WatchRequest.SerializeToString,
            response_deserializer=rpc_pb2.WatchResponse.FromString,
        )
        txn = channel.unary_unary(
            TXN,
            request_serializer=rpc_pb2.TxnRequest.SerializeToString,
            response_deserializer=rpc_pb2.TxnResponse.FromString,
        )
        done = threading.Event()

        def feed() -> Any:
            while not done.is_set():
                try:
                    yield requests.get(timeout=0.1)
                except queue.Empty:
                    continue

        assert txn(_puts(ord("a")), timeout=10).succeeded
        responses = watch(feed(), timeout=20)
        try:
            assert next(responses).created
            assert txn(_puts(ord("b")), timeout=10).succeeded
            events = 0
            while events < 8:
                response = next(responses)
                got.append(response)
                events += len(response.events)
        finally:
            done.set()
            responses.cancel()
    return got


async def test_a_fragmented_watch_splits_a_large_revision_under_the_limit(api: Api) -> None:  # noqa: F811
    with trio.fail_after(40):
        parts = await trio.to_thread.run_sync(_watch_then_txn, api.server.port, True, abandon_on_cancel=True)
    assert len(parts) > 1
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert all(p.ByteSize() < MAX + 200 for p in parts)
    assert [e.kv.key for p in parts for e in p.events] == [b"w/%d" % i for i in range(8)]
    assert all(e.prev_kv.value == b"a" * 400 or e.prev_kv.value == b"b" * 400 for p in parts for e in p.events)
    assert len({p.header.revision for p in parts}) == 1  # one revision, one transaction

    with trio.fail_after(40):
        whole = await trio.to_thread.run_sync(_watch_then_txn, api.server.port, False, abandon_on_cancel=True)
    assert len(whole) == 1 and not whole[0].fragment and len(whole[0].events) == 8
