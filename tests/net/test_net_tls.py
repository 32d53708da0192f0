"""wss:// links with certificates made by trustme: verified when good, refused when not."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme
from net_helpers import Cluster, url

from ergo_py.ids import PID
from ergo_py.net import NoConnection, Send

A, B = "a@host", "b@host"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *hosts: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(ctx)
    return ctx


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_tls_link_with_a_verified_certificate(cluster: Cluster, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, server_ssl=server_context(ca, "127.0.0.1"))
        b, rb = await cluster.start(B, client_ssl=client_context(ca), routes={A: url(a, "wss")})
        b.send(A, Send(PID(B, 1, 1), PID(A, 1, 1), "over tls"))
        await ra.wait_for(lambda: bool(ra.controls))
        assert ra.controls[0][1].message == "over tls"
        assert rb.ups == [(A, 1)]


async def test_certificate_from_an_untrusted_ca_is_refused(cluster: Cluster, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        other_ca = trustme.CA()
        a, ra = await cluster.start(A, server_ssl=server_context(other_ca, "127.0.0.1"))
        b, rb = await cluster.start(B, client_ssl=client_context(ca), routes={A: url(a, "wss")})
        with pytest.raises(NoConnection) as info:
            await b.connect(A)
        assert "certificate verify failed" in str(info.value).lower()
        assert rb.downs and "certificate" in rb.downs[0][1].lower()
        assert ra.ups == []
        # The listener survived the failed TLS handshake: a client trusting its CA gets in.
        c, _ = await cluster.start("c@host", client_ssl=client_context(other_ca), routes={A: url(a, "wss")})
        await c.connect(A)
        assert ra.ups == [("c@host", 1)]


async def test_certificate_for_another_host_is_refused(cluster: Cluster, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, server_ssl=server_context(ca, "elsewhere.example"))
        b, _ = await cluster.start(B, client_ssl=client_context(ca), routes={A: url(a, "wss")})
        with pytest.raises(NoConnection) as info:
            await b.connect(A)
        assert "certificate" in str(info.value).lower() or "hostname" in str(info.value).lower()
        assert ra.ups == []


async def test_plain_websocket_to_a_tls_listener_fails_cleanly(cluster: Cluster, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        a, ra = await cluster.start(A, server_ssl=server_context(ca, "127.0.0.1"))
        b, rb = await cluster.start(B, routes={A: url(a, "ws")}, connect_timeout=0.5)
        with pytest.raises(NoConnection):
            await b.connect(A)
        assert rb.downs and ra.ups == []
