"""Networks in one process over real loopback websockets (127.0.0.1, port 0)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import cbor2
import pytest
import trio
import trio_websocket
from net_helpers import COOKIE, Cluster, Recorder, raw_dial, url

from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import (
    COOKIE_ENV,
    Call,
    DecodeError,
    EncodeError,
    HandshakeError,
    MessageTooLarge,
    Network,
    NetworkHandlers,
    NoConnection,
    Reply,
    Send,
    resolve_cookie,
)
from ergo_py.net._codec import TAG_OBJECT
from ergo_py.net._protocol import build_frame, decode_frame, encode_control

A, B, C = "a@host", "b@host", "c@host"
LOG = "ergo_py.net"


def pid(node: str, n: int = 1, creation: int = 1) -> PID:
    return PID(node, n, creation)


def echo_calls(net: Any, rec: Any) -> None:
    """Make `net` answer every Call with ("echo", request)."""

    def hook(peer: str, control: Any) -> None:
        if isinstance(control, Call):
            net.send(peer, Reply(control.from_, control.ref, True, ("echo", control.request)))

    rec.on_control_hook = hook


async def test_send_connects_on_demand_delivers_in_order_and_coalesces(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, 11)
        b, rb = await cluster.start(B, 22, routes={A: url(a)})
        n = 2000
        for i in range(n):  # queued before the link exists: all must arrive, in order
            b.send(A, Send(pid(B, creation=22), pid(A, 5, 11), i))
        await ra.wait_for(lambda: len(ra.controls) >= n)
        assert [c.message for _, c in ra.controls] == list(range(n))
        assert all(peer == B for peer, _ in ra.controls)
        assert ra.ups == [(B, 22)] and rb.ups == [(A, 11)]
        stats = b.statistics()
        assert stats.controls_sent == n
        assert stats.frames_sent < n // 10  # many controls per websocket message
        assert a.connected_nodes() == [B] and b.connected_nodes() == [A]


async def test_call_and_reply_cross_both_ways(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        b, rb = await cluster.start(B, routes={A: url(a)})
        echo_calls(a, ra)
        ref = Ref(B, 1, 77)
        b.send(A, Call(pid(B), ProcessID("echo", A), ref, {"q": (1, 2)}))
        await rb.wait_for(lambda: len(rb.controls) == 1)
        assert rb.controls[0] == (A, Reply(pid(B), ref, True, ("echo", {"q": (1, 2)})))


async def test_sender_side_refusals(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, max_message_size=4096)
        with pytest.raises(MessageTooLarge) as info:
            a.send(B, Send(pid(A), pid(B), b"x" * 5000))
        assert info.value.limit == 4096 and info.value.size > 5000
        with pytest.raises(EncodeError):
            a.send(B, Send(pid(A), pid(B), object()))
        with pytest.raises(ValueError, match="not on the receiving node"):
            a.send(B, Send(pid(A), pid(C), 1))
        with pytest.raises(ValueError, match="not on the sending node"):
            a.send(B, Send(pid(C), pid(B), 1))
        with pytest.raises(ValueError):
            a.send(A, Send(pid(A), pid(A), 1))
        with pytest.raises(TypeError):
            a.send(B, "hello")  # type: ignore[arg-type]
        await trio.sleep(0.05)
        assert ra.downs == [] and a.statistics().queued_controls == 0  # nothing was queued or dialed
        await a.aclose()
        with pytest.raises(NoConnection):
            a.send(B, Send(pid(A), pid(B), 1))


async def test_unreachable_node_drops_queue_and_reports_link_down(cluster: Cluster) -> None:
    with trio.fail_after(10):
        probe, _ = await cluster.start(C)
        dead_port = probe.port
        await probe.aclose()
        a, ra = await cluster.start(A, routes={B: f"ws://127.0.0.1:{dead_port}"})
        a.send(B, Send(pid(A), pid(B), 1))
        a.send(B, Send(pid(A), pid(B), 2))
        await ra.wait_for(lambda: bool(ra.downs))
        assert ra.downs[0][0] == B and "cannot connect" in ra.downs[0][1]
        assert a.statistics().queued_controls == 0
        with pytest.raises(NoConnection):
            await a.connect(B)
        # No route at all is the same kind of failure.
        a.send(C, Send(pid(A), pid(C), 1))
        await ra.wait_for(lambda: any(node == C for node, _ in ra.downs))
        assert "no route" in next(r for node, r in ra.downs if node == C)


async def test_concurrent_connects_share_one_attempt(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, _ = await cluster.start(A)
        b, rb = await cluster.start(B, routes={A: url(a)})
        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(b.connect, A)
        assert rb.ups == [(A, 1)]


async def test_wrong_cookie_fails_both_ways_and_affects_nothing_else(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        intruder, ri = await cluster.start(B, cookie="not-the-cookie", routes={A: url(a)})
        with pytest.raises(HandshakeError) as info:
            await intruder.connect(A)
        assert info.value.reason == "cookie"
        assert ri.downs and "cookie" in ri.downs[0][1]
        assert ra.ups == [] and ra.downs == []
        refused = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and "refused a link from 127.0.0.1:" in r.getMessage()
        ]
        assert refused and "cookie" in refused[0].getMessage()
        # A good node still gets in.
        c, _ = await cluster.start(C, routes={A: url(a)})
        await c.connect(A)
        assert ra.ups == [(C, 1)]


async def test_dialing_the_wrong_name_is_a_name_error(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        b, _ = await cluster.start(B, routes={C: url(a)})  # the address actually hosts A
        with pytest.raises(HandshakeError) as info:
            await b.connect(C)
        assert info.value.reason == "name"
        assert ra.ups == []


async def test_handshake_timeout_on_the_dialing_side(cluster: Cluster, nursery: trio.Nursery) -> None:
    async def mute(request: trio_websocket.WebSocketRequest) -> None:
        await request.accept()
        await trio.sleep_forever()

    with trio.fail_after(10):
        server = await nursery.start(trio_websocket.serve_websocket, mute, "127.0.0.1", 0, None)
        b, rb = await cluster.start(B, routes={A: f"ws://127.0.0.1:{server.port}"}, handshake_timeout=0.3)
        with pytest.raises(HandshakeError) as info:
            await b.connect(A)
        assert info.value.reason == "timeout"
        assert rb.downs and "timeout" in rb.downs[0][1]


async def test_handshake_timeout_on_the_accepting_side(
    cluster: Cluster, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A, handshake_timeout=0.3)
        assert a.port is not None
        ws = await trio_websocket.connect_websocket(nursery, "127.0.0.1", a.port, "/", use_ssl=False)
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()  # the acceptor gives up and closes
        assert any("did not finish within" in r.getMessage() for r in caplog.records)
        assert ra.ups == []


async def test_oversized_frame_closes_that_link_only(
    cluster: Cluster, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A, max_message_size=4096)
        ws, _ = await raw_dial(a.port, nursery, local_name=C, peer_name=A)  # type: ignore[arg-type]
        await ra.wait_for(lambda: bool(ra.ups))
        big = build_frame([encode_control(Send(pid(C, creation=7), pid(A), b"x" * 10_000))])
        await ws.send_message(big)
        await ra.wait_for(lambda: bool(ra.downs))
        assert ra.downs[0][0] == C and "max_message_size" in ra.downs[0][1]
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason is not None and info.value.reason.code == 1009
        # The node still serves.
        b, _ = await cluster.start(B, routes={A: url(a)})
        b.send(A, Send(pid(B), pid(A), "still here"))
        await ra.wait_for(lambda: bool(ra.controls))
        assert ra.controls[-1][1].message == "still here"


async def test_controls_over_the_peers_smaller_limit_are_dropped_at_our_side(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A, max_message_size=4096)
        b, rb = await cluster.start(B, routes={A: url(a)})  # default, much larger limit
        await b.connect(A)
        b.send(A, Send(pid(B), pid(A), b"y" * 8000))  # fits b's limit, not a's
        b.send(A, Send(pid(B), pid(A), "small"))
        await ra.wait_for(lambda: bool(ra.controls))
        assert [c.message for _, c in ra.controls] == ["small"]
        assert b.statistics().controls_dropped == 1
        assert ra.downs == [] and rb.downs == []
        assert any("over the peer's max_message_size" in r.getMessage() for r in caplog.records)


async def test_undecodable_payloads_are_dropped_or_answered_and_the_link_survives(
    cluster: Cluster, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        ws, _ = await raw_dial(a.port, nursery, local_name=C, peer_name=A)  # type: ignore[arg-type]
        unknown = cbor2.dumps(cbor2.CBORTag(TAG_OBJECT, ["only.OnTheSender", 1]))
        caller, ref = pid(C, 9, 7), Ref(C, 7, 1)
        frame = build_frame(
            [
                encode_control(Send(caller, pid(A), "before")),
                cbor2.dumps([1, [C, 9, 7], [A, 1, 1], unknown]),  # Send
                cbor2.dumps([2, [C, 9, 7], ["kv", A], [C, 7, 1], unknown]),  # Call
                cbor2.dumps([1, [C, 9, 7], [A, 1, 1], b"\xff\xfe"]),  # malformed CBOR
                encode_control(Send(caller, pid(A), "after")),
            ]
        )
        await ws.send_message(frame)
        await ra.wait_for(lambda: len(ra.controls) >= 2)
        assert [c.message for _, c in ra.controls] == ["before", "after"]
        # The caller gets an error reply instead of waiting for its timeout.
        (reply,) = decode_frame(await ws.get_message(), sender_node=A, receiver_node=C)  # type: ignore[arg-type]
        assert isinstance(reply, Reply) and reply.to == caller and reply.ref == ref and not reply.ok
        assert isinstance(reply.value, DecodeError) and reply.value.type_name == "only.OnTheSender"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("only.OnTheSender" in e and C in e and "Send" in e for e in errors)
        assert any("only.OnTheSender" in e and C in e and "Call" in e for e in errors)
        assert ra.downs == [] and a.connected_nodes() == [C]


async def test_broken_frame_closes_the_link_with_a_protocol_error(
    cluster: Cluster, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        ws, _ = await raw_dial(a.port, nursery, local_name=C, peer_name=A)  # type: ignore[arg-type]
        await ws.send_message(cbor2.dumps([[42, "no such kind"]]))
        await ra.wait_for(lambda: bool(ra.downs))
        assert "protocol error" in ra.downs[0][1]
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason is not None and info.value.reason.code == 1002
        assert any("unknown control kind" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_link_loss_is_reported_and_a_later_send_reconnects(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        b1, _ = await cluster.start(B, 1)
        a.add_route(B, url(b1))
        await a.connect(B)
        await b1.aclose()
        await ra.wait_for(lambda: bool(ra.downs))
        assert ra.downs[0][0] == B and a.connected_nodes() == []
        b2, rb2 = await cluster.start(B, 2)  # B restarted elsewhere with a new creation
        a.add_route(B, url(b2))
        a.send(B, Send(pid(A), pid(B, creation=2), "again"))
        await rb2.wait_for(lambda: bool(rb2.controls))
        assert ra.ups == [(B, 1), (B, 2)] and ra.events == [("up", B), ("down", B), ("up", B)]


async def test_a_restarted_peer_replaces_its_stale_link(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        old, _ = await cluster.start(B, 1, routes={A: url(a)})
        await old.connect(A)
        new, _ = await cluster.start(B, 2, routes={A: url(a)})  # the old one has not noticed anything
        await new.connect(A)
        assert ra.events == [("up", B), ("down", B), ("up", B)]
        assert ra.ups[-1] == (B, 2) and "restarted" in ra.downs[0][1]
        new.send(A, Send(pid(B, creation=2), pid(A), "from new"))
        await ra.wait_for(lambda: bool(ra.controls))
        assert ra.controls == [(B, Send(pid(B, creation=2), pid(A), "from new"))]


@pytest.mark.parametrize("replace", [True, False])
async def test_reconnect_while_the_old_link_looks_alive(cluster: Cluster, nursery: trio.Nursery, replace: bool) -> None:
    """A dialer that lost its link without the acceptor noticing decides whether to replace it."""
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        old_ws, _ = await raw_dial(a.port, nursery, local_name=C, peer_name=A)  # type: ignore[arg-type]
        await ra.wait_for(lambda: len(ra.ups) == 1)
        from ergo_py.net._handshake import DialerHandshake, PeerHasLink

        ws = await trio_websocket.connect_websocket(nursery, "127.0.0.1", a.port, "/", use_ssl=False)  # type: ignore[arg-type]
        hs = DialerHandshake(local_name=C, creation=7, cookie=COOKIE, expected_peer=A, max_message_size=1 << 20)
        event = None
        while event is None:
            for m in hs.data_to_send():
                await ws.send_message(m)
            event = hs.receive(await ws.get_message())  # type: ignore[arg-type]
        assert isinstance(event, PeerHasLink)
        hs.confirm(replace)
        for m in hs.data_to_send():
            await ws.send_message(m)
        if replace:
            await ra.wait_for(lambda: len(ra.ups) == 2)
            assert ra.events == [("up", C), ("down", C), ("up", C)]
            with pytest.raises(trio_websocket.ConnectionClosed):
                await old_ws.get_message()
        else:
            with pytest.raises(trio_websocket.ConnectionClosed):
                await ws.get_message()
            assert ra.events == [("up", C)]


async def test_simultaneous_dial_ends_with_exactly_one_link(cluster: Cluster) -> None:
    with trio.fail_after(20):
        for round_ in range(6):
            a, ra = await cluster.start(A, round_ + 1)
            b, rb = await cluster.start(B, round_ + 1)
            a.add_route(B, url(b))
            b.add_route(A, url(a))
            async with trio.open_nursery() as n:
                n.start_soon(a.connect, B)
                n.start_soon(b.connect, A)
            a.send(B, Send(pid(A, creation=round_ + 1), pid(B, creation=round_ + 1), "a->b"))
            b.send(A, Send(pid(B, creation=round_ + 1), pid(A, creation=round_ + 1), "b->a"))
            for rec in (ra, rb):
                await rec.wait_for(partial(bool, rec.controls))
            await trio.sleep(0.05)
            assert ra.events == [("up", B)] and rb.events == [("up", A)], f"round {round_}"
            assert a.statistics().links == b.statistics().links == 1
            await a.aclose()
            await b.aclose()


async def test_disconnect_reports_at_once_and_the_peer_notices(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        b, rb = await cluster.start(B, routes={A: url(a)})
        await b.connect(A)
        await ra.wait_for(lambda: bool(ra.ups))
        b.disconnect(A)
        assert rb.downs == [(A, "disconnected by this node")]  # before disconnect returned
        await ra.wait_for(lambda: bool(ra.downs))
        assert "disconnected by this node" in ra.downs[0][1]
        await b.connect(A)
        assert rb.events == [("up", A), ("down", A), ("up", A)]


async def test_aclose_reports_every_link_down(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        b, rb = await cluster.start(B, routes={A: url(a)})
        c, rc = await cluster.start(C, routes={A: url(a)})
        await b.connect(A)
        await c.connect(A)
        await a.aclose()
        assert sorted(ra.downs) == [(B, "network closed"), (C, "network closed")]
        await rb.wait_for(lambda: bool(rb.downs))
        await rc.wait_for(lambda: bool(rc.downs))


async def test_heartbeat_detects_a_silent_peer(cluster: Cluster, nursery: trio.Nursery) -> None:
    """A partition (the proxy stops forwarding, sockets stay open) is noticed without any send."""
    with trio.fail_after(10):
        a, ra = await cluster.start(A, heartbeat_interval=0.1, heartbeat_timeout=0.4)
        frozen = trio.Event()

        async def relay(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
            while data := await src.receive_some(65536):
                if frozen.is_set():
                    await trio.sleep_forever()
                await dst.send_all(data)

        async def proxy(client: trio.SocketStream) -> None:
            upstream = await trio.open_tcp_stream("127.0.0.1", a.port)  # type: ignore[arg-type]
            async with trio.open_nursery() as n:
                n.start_soon(relay, client, upstream)
                n.start_soon(relay, upstream, client)

        (listener,) = await nursery.start(partial(trio.serve_tcp, proxy, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        b, rb = await cluster.start(
            B, routes={A: f"ws://127.0.0.1:{port}"}, heartbeat_interval=0.1, heartbeat_timeout=0.4
        )
        await b.connect(A)
        await ra.wait_for(lambda: bool(ra.ups))
        await trio.sleep(0.3)  # heartbeats flow through the proxy: nothing happens
        assert ra.downs == [] and rb.downs == []
        frozen.set()
        start = trio.current_time()
        await ra.wait_for(lambda: bool(ra.downs))
        await rb.wait_for(lambda: bool(rb.downs))
        assert "heartbeat" in ra.downs[0][1] and "heartbeat" in rb.downs[0][1]
        assert trio.current_time() - start < 2.0


async def test_a_raising_handler_is_a_bug_that_propagates() -> None:
    """Handlers must not raise; if one does, the node hears of it instead of losing it in a log."""

    def broken(peer: str, control: Any) -> None:
        raise RuntimeError("handler bug")

    with trio.fail_after(10):
        with pytest.raises(BaseExceptionGroup) as info:
            async with trio.open_nursery() as nursery:
                a = Network(
                    A,
                    1,
                    handlers=NetworkHandlers(broken, lambda *_: None, lambda *_: None),
                    cookie=COOKIE,
                    listen=("127.0.0.1", 0),
                )
                await a.start(nursery)
                b = Network(B, 1, handlers=Recorder().handlers(), cookie=COOKIE, routes={A: url(a)})
                await b.start(nursery)
                b.send(A, Send(pid(B), pid(A), "boom"))
                await trio.sleep_forever()
        assert info.group_contains(RuntimeError, match="handler bug", depth=None)


def test_cookie_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COOKIE_ENV, "from-env")
    assert resolve_cookie(None) == "from-env"
    assert resolve_cookie("explicit") == "explicit"
    monkeypatch.delenv(COOKIE_ENV)
    with pytest.raises(ValueError, match="ERGO_COOKIE"):
        Network(A, 1, handlers=Recorder().handlers())


async def test_flush_puts_queued_controls_on_the_wire_before_the_sender_task_runs(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, 11)
        b, _ = await cluster.start(B, 22, routes={A: url(a)})
        await b.connect(A)
        big = b"x" * (8 << 20)  # too much to frame in the caller's task: left to the sender
        for message in ("small", big, "after"):
            before = b.statistics().frames_sent
            b.send(A, Send(pid(B, creation=22), pid(A, 5, 11), message))
            done = b.flush()  # no await since the send: the link's sender has not run
            assert b.statistics().frames_sent == before + (message is not big)
            assert done == (message is not big)
            if message is big:
                # Later controls wait behind it for the sender (in order).
                b.send(A, Send(pid(B, creation=22), pid(A, 5, 11), "queued behind"))
                assert not b.flush()
                await ra.wait_for(lambda: len(ra.controls) == 3)
        assert b.flush()  # nothing sent since: nothing to do
        await ra.wait_for(lambda: len(ra.controls) == 4)
        assert [c.message for _, c in ra.controls] == ["small", big, "queued behind", "after"]
