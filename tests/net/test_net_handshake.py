"""The handshake protocol objects, paired with no sockets in between."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from ergo_py.net import HandshakeError
from ergo_py.net._handshake import (
    Abandoned,
    AcceptorHandshake,
    Authenticated,
    DialerHandshake,
    Established,
    PeerHasLink,
    dial_wins,
)

A, B = "a@host", "b@host"
SIZE = 1 << 20


def dialer(**kw: Any) -> DialerHandshake:
    args: dict[str, Any] = {
        "local_name": A,
        "creation": 11,
        "cookie": "secret",
        "expected_peer": B,
        "max_message_size": SIZE,
    }
    args.update(kw)
    return DialerHandshake(**args)


def acceptor(**kw: Any) -> AcceptorHandshake:
    args: dict[str, Any] = {
        "local_name": B,
        "creation": 22,
        "cookie": "secret",
        "max_message_size": SIZE // 2,
    }
    args.update(kw)
    return AcceptorHandshake(**args)


def pump(src: DialerHandshake | AcceptorHandshake, dst: DialerHandshake | AcceptorHandshake) -> Any:
    """Deliver everything `src` has to say to `dst`; returns dst's last event."""
    event = None
    for msg in src.data_to_send():
        event = dst.receive(msg)
    return event


def run_to_authenticated(d: DialerHandshake, a: AcceptorHandshake) -> Authenticated:
    assert pump(d, a) is None  # HELLO -> CHALLENGE queued
    assert pump(a, d) is None  # CHALLENGE -> PROOF queued
    auth = pump(d, a)
    assert isinstance(auth, Authenticated)
    return auth


def test_successful_handshake_exchanges_names_creations_sizes() -> None:
    d, a = dialer(), acceptor()
    auth = run_to_authenticated(d, a)
    assert (auth.peer_name, auth.peer_creation, auth.version, auth.peer_max_message_size) == (A, 11, 1, SIZE)
    est_a = a.accept()
    est_d = pump(a, d)
    assert est_a == Established(A, 11, 1, SIZE)
    assert est_d == Established(B, 22, 1, SIZE // 2)
    assert d.state == a.state == "established"


def test_the_cookie_never_crosses_the_wire() -> None:
    d, a = dialer(cookie="very-secret-cookie"), acceptor(cookie="very-secret-cookie")
    wire: list[bytes] = []
    pairs: list[tuple[Any, Any]] = [(d, a), (a, d), (d, a)]
    for src, dst in pairs:
        for msg in src.data_to_send():
            wire.append(msg)
            dst.receive(msg)
    a.accept()
    wire.extend(a.data_to_send())
    assert all(b"very-secret-cookie" not in m for m in wire)


def test_wrong_cookie_is_refused_by_the_acceptor_and_reported_to_the_dialer() -> None:
    d, a = dialer(cookie="one"), acceptor(cookie="two")
    pump(d, a)
    pump(a, d)
    with pytest.raises(HandshakeError) as acc_err:
        pump(d, a)
    assert acc_err.value.reason == "cookie" and acc_err.value.peer == A
    with pytest.raises(HandshakeError) as dial_err:
        pump(a, d)  # the REJECT the acceptor queued before raising
    assert dial_err.value.reason == "cookie" and dial_err.value.peer == B


def test_dialer_refuses_an_acceptor_that_cannot_prove_the_cookie() -> None:
    d = dialer(cookie="one")
    impostor = acceptor(cookie="two")
    pump(d, impostor)
    pump(impostor, d)
    # The impostor skips checking the proof and welcomes with its own (wrong) MAC.
    d.data_to_send()
    impostor.state = "authenticated"
    impostor.accept()
    with pytest.raises(HandshakeError) as err:
        pump(impostor, d)
    assert err.value.reason == "cookie"


def test_unknown_version_is_refused() -> None:
    d, a = dialer(versions=(7, 8)), acceptor()
    with pytest.raises(HandshakeError) as acc_err:
        pump(d, a)
    assert acc_err.value.reason == "version"
    with pytest.raises(HandshakeError) as dial_err:
        pump(a, d)
    assert dial_err.value.reason == "version" and "7" in dial_err.value.detail


def test_highest_common_version_is_chosen() -> None:
    d, a = dialer(versions=(1, 2, 3)), acceptor(versions=(1, 2))
    auth = run_to_authenticated(d, a)
    assert auth.version == 2


def test_dialing_the_wrong_node_is_refused() -> None:
    d, a = dialer(expected_peer="c@host"), acceptor()
    with pytest.raises(HandshakeError) as acc_err:
        pump(d, a)
    assert acc_err.value.reason == "name"
    with pytest.raises(HandshakeError) as dial_err:
        pump(a, d)
    assert dial_err.value.reason == "name"


def test_dialer_checks_the_name_the_acceptor_gives() -> None:
    # A misconfigured acceptor that accepts any "to" but is really c@host.
    d, a = dialer(), acceptor(local_name="c@host")
    hello = cbor2.loads(d.data_to_send()[0])
    hello["to"] = "c@host"
    a.receive(cbor2.dumps(hello))
    with pytest.raises(HandshakeError) as err:
        pump(a, d)
    assert err.value.reason == "name" and "c@host" in err.value.detail


def test_a_peer_claiming_our_own_name_is_refused() -> None:
    d, a = dialer(local_name=B), acceptor()
    with pytest.raises(HandshakeError) as err:
        pump(d, a)
    assert err.value.reason == "name"


def test_replayed_proof_from_another_session_fails() -> None:
    # Session 2 is waiting for a proof; a proof recorded from session 3 (other nonces) is replayed.
    d2, a2 = dialer(), acceptor()
    pump(d2, a2)
    pump(a2, d2)
    d2.data_to_send()
    d3, a3 = dialer(nonce=b"\x01" * 32), acceptor(nonce=b"\x02" * 32)
    pump(d3, a3)
    pump(a3, d3)
    proof_from_3 = d3.data_to_send()[0]
    with pytest.raises(HandshakeError) as err:
        a2.receive(proof_from_3)
    assert err.value.reason == "cookie"


def test_peer_has_link_and_dialer_replaces_it() -> None:
    d, a = dialer(), acceptor()
    run_to_authenticated(d, a)
    assert a.accept(peer_has_link=True) is None
    event = pump(a, d)
    assert isinstance(event, PeerHasLink)
    est_d = d.confirm(replace=True)
    assert est_d is not None and est_d.replaced
    est_a = pump(d, a)
    assert isinstance(est_a, Established) and est_a.replaced


def test_peer_has_link_and_dialer_keeps_the_old_one() -> None:
    d, a = dialer(), acceptor()
    run_to_authenticated(d, a)
    a.accept(peer_has_link=True)
    pump(a, d)
    assert d.confirm(replace=False) is None
    assert pump(d, a) == Abandoned(A)
    assert d.state == a.state == "closed"


def test_duplicate_is_rejected_with_its_own_reason() -> None:
    d, a = dialer(), acceptor()
    run_to_authenticated(d, a)
    error = a.reject_duplicate("b@host is dialing a@host too")
    assert error.reason == "duplicate"
    with pytest.raises(HandshakeError) as err:
        pump(a, d)
    assert err.value.reason == "duplicate"


@pytest.mark.parametrize(
    "message",
    [
        b"\xff",
        cbor2.dumps([1, 2]),
        cbor2.dumps({"t": "proof", "mac": b"x"}),  # out of order
        cbor2.dumps({"t": "hello"}),  # fields missing
        cbor2.dumps({"t": "hello", "protocol": "http"}),
        cbor2.dumps({"t": 5}),
    ],
)
def test_garbage_is_a_protocol_error_not_a_crash(message: bytes) -> None:
    a = acceptor()
    with pytest.raises(HandshakeError) as err:
        a.receive(message)
    assert err.value.reason == "protocol"
    assert a.state == "failed"


def test_messages_after_failure_are_refused() -> None:
    d, a = dialer(cookie="x"), acceptor()
    pump(d, a)
    pump(a, d)
    with pytest.raises(HandshakeError):
        pump(d, a)
    with pytest.raises(HandshakeError):
        a.receive(cbor2.dumps({"t": "proof", "mac": b"0" * 32}))


def test_tie_break_is_deterministic_and_antisymmetric() -> None:
    assert dial_wins(A, B) is True
    assert dial_wins(B, A) is False


def test_api_misuse_raises() -> None:
    a = acceptor()
    with pytest.raises(RuntimeError):
        a.accept()
    with pytest.raises(RuntimeError):
        dialer().confirm(True)
    with pytest.raises(ValueError):
        acceptor(cookie="")
