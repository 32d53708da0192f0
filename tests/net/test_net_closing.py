"""A link that is closing must not raise out of the network because of what the peer sends meanwhile.

The peer here is driven by hand (wsproto over a TCP stream) so that its ping arrives exactly while
our close handshake is in progress: RFC 6455 §5.5.2 has us answer a ping with a pong, which is
no longer allowed once our Close frame is sent (wsproto's LOCAL_CLOSING state).
"""

from __future__ import annotations

import trio
from net_helpers import Cluster, HandPeer
from wsproto.events import CloseConnection, Ping

A, B, C = "a@host", "b@host", "c@host"


async def test_a_ping_during_our_close_handshake_does_not_raise(cluster: Cluster) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A)
        peer = HandPeer(await trio.open_tcp_stream("127.0.0.1", a.port))
        await peer.establish(a.port, local_name=B, peer_name=A)
        await ra.wait_for(lambda: bool(ra.ups))
        ping = peer.ws.send(Ping(b"are you there"))  # framed now, while sending is still allowed

        a.disconnect(B)  # our side sends its Close frame and waits for the peer's
        while not isinstance(event := await peer.next_event(), CloseConnection):
            pass
        await peer.stream.send_all(ping)  # arrives in LOCAL_CLOSING: no pong can be sent
        await trio.sleep(0.2)
        await peer.send(event.response())
        await peer.stream.aclose()
        assert [peer for peer, _ in ra.downs] == [B]

        # The network still serves: another node links up and exchanges controls.
        c, rc = await cluster.start(C, routes={A: f"ws://127.0.0.1:{a.port}"})
        await c.connect(A)
        await ra.wait_for(lambda: (C, 1) in ra.ups)
        await trio.sleep(1.5)  # past our close timeout: whatever the closing link raised has surfaced
        assert not a._closed
