"""The distribution handshake as a sans-IO protocol object (h11/wsproto style).

Feed each message the peer sent to `receive(data)`; it returns an event (or None
when it only has something to say back), and `data_to_send()` hands out the
messages to write. Any failure raises `HandshakeError` naming the check; a
rejection message for the peer, when there is one, is queued before the raise,
so the shell should flush `data_to_send()` before closing.

The exchange (each line one websocket message, CBOR maps):

    dialer   -> HELLO      protocol, versions, name, creation, nonce_d, the name it wants, max size
    acceptor -> CHALLENGE  version, name, creation, nonce_a, max size        (or REJECT version/name)
    dialer   -> PROOF      mac_d = HMAC(cookie, "dialer" + transcript)
    acceptor -> WELCOME    mac_a = HMAC(cookie, "acceptor" + transcript), alive (or REJECT cookie/duplicate)
    [dialer  -> CONFIRM    replace]     only when the acceptor said alive

The transcript binds both nonces, names, creations, sizes and the version, so a
proof cannot be replayed on another connection or reflected to the other role;
each side proves it knows the cookie and the cookie itself never crosses.

`alive` covers a peer that reconnects while the acceptor still holds a link to
the same incarnation: either the dialer lost that link without the acceptor
noticing (it answers replace=True and the old link is dropped), or the dialer
has meanwhile accepted the acceptor's own connection (a simultaneous dial: it
answers replace=False and this connection is dropped). Which simultaneous dial
wins while both are still handshaking is decided by the shell with
`dial_wins(...)`: the connection dialed by the node with the smaller name.

This module must never import trio, touch a socket or read a clock; timeouts
belong to the shell.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import cbor2

from ergo_py.ids import validate_node_name

from ._codec import decode_plain
from ._errors import DecodeError, HandshakeError

__all__ = [
    "PROTOCOL",
    "VERSIONS",
    "Abandoned",
    "AcceptorHandshake",
    "Authenticated",
    "DialerHandshake",
    "Established",
    "PeerHasLink",
    "dial_wins",
]

PROTOCOL = "ergo_py.dist"
VERSIONS: tuple[int, ...] = (1,)
NONCE_SIZE = 32
_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Acceptor: the dialer proved the cookie. Decide: `accept(...)` or `reject_duplicate()`."""

    peer_name: str
    peer_creation: int
    version: int
    peer_max_message_size: int


@dataclass(frozen=True, slots=True)
class PeerHasLink:
    """Dialer: the acceptor still holds a live link with our incarnation. Decide with `confirm`."""

    peer_name: str
    peer_creation: int
    version: int
    peer_max_message_size: int


@dataclass(frozen=True, slots=True)
class Established:
    """The link is authenticated both ways; control frames may flow.

    `replaced` is True when it takes the place of an older link between the same
    incarnations (the older one must be dropped first).
    """

    peer_name: str
    peer_creation: int
    version: int
    peer_max_message_size: int
    replaced: bool = False


@dataclass(frozen=True, slots=True)
class Abandoned:
    """Acceptor: the dialer already has a link with us; this connection is closed quietly."""

    peer_name: str


def dial_wins(dialer: str, acceptor: str) -> bool:
    """Of two connections dialed at once between two nodes, keep the one dialed by the smaller name."""
    return dialer < acceptor


def _mac(cookie: bytes, label: str, transcript: list[Any]) -> bytes:
    return hmac.new(cookie, cbor2.dumps([label, *transcript]), hashlib.sha256).digest()


def _cookie_bytes(cookie: str | bytes) -> bytes:
    key = cookie.encode("utf-8") if isinstance(cookie, str) else bytes(cookie)
    if not key:
        raise ValueError("the cookie must not be empty")
    return key


class _Base:
    role = ""

    def __init__(
        self,
        *,
        local_name: str,
        creation: int,
        cookie: str | bytes,
        max_message_size: int,
        nonce: bytes | None = None,
    ) -> None:
        self.local_name = validate_node_name(local_name)
        self.creation = creation
        self._cookie = _cookie_bytes(cookie)
        self.max_message_size = max_message_size
        self._nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        if len(self._nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
        self._out: list[bytes] = []
        self.state = "start"
        self.peer_name = ""

    def data_to_send(self) -> list[bytes]:
        """The messages to write to the peer, in order (each one websocket message)."""
        out, self._out = self._out, []
        return out

    def _send(self, msg: dict[str, Any]) -> None:
        self._out.append(cbor2.dumps(msg))

    def _fail(self, reason: str, detail: str, tell_peer: bool = True) -> HandshakeError:
        """Queue a REJECT for the peer (if asked) and return the error to raise."""
        if tell_peer:
            self._send({"t": "reject", "reason": reason, "detail": detail[:200]})
        self.state = "failed"
        return HandshakeError(reason, detail, self.peer_name)

    def _parse(self, data: bytes) -> dict[str, Any]:
        if self.state in ("failed", "closed", "established"):
            raise HandshakeError(HandshakeError.PROTOCOL, f"message after the handshake ended ({self.state})")
        try:
            msg = decode_plain(data)
        except DecodeError as exc:
            raise self._fail(HandshakeError.PROTOCOL, f"malformed handshake message: {exc.detail}") from None
        if type(msg) is not dict or type(msg.get("t")) is not str:
            raise self._fail(HandshakeError.PROTOCOL, "a handshake message must be a map with a type 't'")
        if msg["t"] == "reject":
            reason = msg.get("reason")
            detail = msg.get("detail")
            self.state = "failed"
            raise HandshakeError(
                reason if type(reason) is str else HandshakeError.PROTOCOL,
                f"rejected by the peer: {detail if type(detail) is str else ''}",
                self.peer_name,
            )
        return msg

    def _field(self, msg: dict[str, Any], key: str, typ: type) -> Any:
        value = msg.get(key)
        if type(value) is not typ:
            raise self._fail(HandshakeError.PROTOCOL, f"{msg['t']} needs {key!r} of type {typ.__name__}")
        return value

    def _peer_name_field(self, msg: dict[str, Any], key: str) -> str:
        name: str = self._field(msg, key, str)
        try:
            if len(name) > _MAX_NAME:
                raise ValueError("name too long")
            validate_node_name(name)
        except ValueError as exc:
            raise self._fail(HandshakeError.NAME, str(exc)) from None
        return name

    def _unexpected(self, msg: dict[str, Any]) -> HandshakeError:
        return self._fail(HandshakeError.PROTOCOL, f"unexpected {msg['t']!r} in state {self.state}")


class DialerHandshake(_Base):
    """The side that opened the connection and wants to reach `expected_peer`."""

    role = "dialer"

    def __init__(
        self,
        *,
        local_name: str,
        creation: int,
        cookie: str | bytes,
        expected_peer: str,
        max_message_size: int,
        versions: tuple[int, ...] = VERSIONS,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(
            local_name=local_name,
            creation=creation,
            cookie=cookie,
            max_message_size=max_message_size,
            nonce=nonce,
        )
        self.expected_peer = validate_node_name(expected_peer)
        self.peer_name = expected_peer
        self.versions = tuple(versions)
        self._transcript: list[Any] = []
        self._established: Established | None = None
        self._send(
            {
                "t": "hello",
                "protocol": PROTOCOL,
                "versions": list(self.versions),
                "name": self.local_name,
                "creation": creation,
                "nonce": self._nonce,
                "to": expected_peer,
                "max": max_message_size,
            }
        )
        self.state = "sent_hello"

    def receive(self, data: bytes) -> PeerHasLink | Established | None:
        msg = self._parse(data)
        kind = msg["t"]
        if kind == "challenge" and self.state == "sent_hello":
            version = self._field(msg, "version", int)
            name = self._peer_name_field(msg, "name")
            creation = self._field(msg, "creation", int)
            nonce = self._field(msg, "nonce", bytes)
            peer_max = self._field(msg, "max", int)
            if name != self.expected_peer:
                raise self._fail(
                    HandshakeError.NAME, f"wanted {self.expected_peer} but the node at that address is {name}"
                )
            if version not in self.versions:
                raise self._fail(
                    HandshakeError.VERSION, f"peer chose version {version}; we speak {list(self.versions)}"
                )
            if len(nonce) != NONCE_SIZE:
                raise self._fail(HandshakeError.PROTOCOL, "the challenge nonce has the wrong size")
            self._transcript = [
                PROTOCOL,
                version,
                self.local_name,
                self.creation,
                self._nonce,
                self.max_message_size,
                name,
                creation,
                nonce,
                peer_max,
            ]
            self._established = Established(name, creation, version, peer_max)
            self._send({"t": "proof", "mac": _mac(self._cookie, "dialer", self._transcript)})
            self.state = "sent_proof"
            return None
        if kind == "welcome" and self.state == "sent_proof":
            mac = self._field(msg, "mac", bytes)
            alive = self._field(msg, "alive", bool)
            if not hmac.compare_digest(mac, _mac(self._cookie, "acceptor", self._transcript)):
                raise self._fail(HandshakeError.COOKIE, "the peer could not prove it knows our cookie")
            est = self._established
            assert est is not None
            if alive:
                self.state = "peer_has_link"
                return PeerHasLink(est.peer_name, est.peer_creation, est.version, est.peer_max_message_size)
            self.state = "established"
            return est
        raise self._unexpected(msg)

    def confirm(self, replace: bool) -> Established | None:
        """Answer `PeerHasLink`: replace its old link with this one, or drop this connection."""
        if self.state != "peer_has_link":
            raise RuntimeError(f"confirm() in state {self.state}")
        self._send({"t": "confirm", "replace": bool(replace)})
        est = self._established
        assert est is not None
        if replace:
            self.state = "established"
            return Established(est.peer_name, est.peer_creation, est.version, est.peer_max_message_size, True)
        self.state = "closed"
        return None


class AcceptorHandshake(_Base):
    """The side that accepted the connection: it learns who is calling from HELLO."""

    role = "acceptor"

    def __init__(
        self,
        *,
        local_name: str,
        creation: int,
        cookie: str | bytes,
        max_message_size: int,
        versions: tuple[int, ...] = VERSIONS,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(
            local_name=local_name,
            creation=creation,
            cookie=cookie,
            max_message_size=max_message_size,
            nonce=nonce,
        )
        self.versions = tuple(versions)
        self._transcript: list[Any] = []
        self._auth: Authenticated | None = None

    def receive(self, data: bytes) -> Authenticated | Established | Abandoned | None:
        msg = self._parse(data)
        kind = msg["t"]
        if kind == "hello" and self.state == "start":
            if msg.get("protocol") != PROTOCOL:
                raise self._fail(HandshakeError.PROTOCOL, f"not an {PROTOCOL} handshake")
            versions = msg.get("versions")
            if type(versions) is not list or not all(type(v) is int for v in versions):
                raise self._fail(HandshakeError.PROTOCOL, "hello needs 'versions', a list of integers")
            name = self._peer_name_field(msg, "name")
            self.peer_name = name
            creation = self._field(msg, "creation", int)
            nonce = self._field(msg, "nonce", bytes)
            wanted = self._field(msg, "to", str)
            peer_max = self._field(msg, "max", int)
            common = sorted(set(versions) & set(self.versions))
            if not common:
                raise self._fail(
                    HandshakeError.VERSION,
                    f"peer speaks versions {versions[:8]}; we speak {list(self.versions)}",
                )
            if wanted != self.local_name:
                raise self._fail(HandshakeError.NAME, f"peer wanted {wanted!r:.80} but this node is {self.local_name}")
            if name == self.local_name:
                raise self._fail(HandshakeError.NAME, "peer claims this node's own name")
            if len(nonce) != NONCE_SIZE:
                raise self._fail(HandshakeError.PROTOCOL, "the hello nonce has the wrong size")
            version = common[-1]
            self._transcript = [
                PROTOCOL,
                version,
                name,
                creation,
                nonce,
                peer_max,
                self.local_name,
                self.creation,
                self._nonce,
                self.max_message_size,
            ]
            self._auth = Authenticated(name, creation, version, peer_max)
            self._send(
                {
                    "t": "challenge",
                    "version": version,
                    "name": self.local_name,
                    "creation": self.creation,
                    "nonce": self._nonce,
                    "max": self.max_message_size,
                }
            )
            self.state = "sent_challenge"
            return None
        if kind == "proof" and self.state == "sent_challenge":
            mac = self._field(msg, "mac", bytes)
            if not hmac.compare_digest(mac, _mac(self._cookie, "dialer", self._transcript)):
                raise self._fail(HandshakeError.COOKIE, "wrong cookie: the proofs of the two nodes differ")
            self.state = "authenticated"
            return self._auth
        if kind == "confirm" and self.state == "awaiting_confirm":
            replace = self._field(msg, "replace", bool)
            auth = self._auth
            assert auth is not None
            if replace:
                self.state = "established"
                return Established(auth.peer_name, auth.peer_creation, auth.version, auth.peer_max_message_size, True)
            self.state = "closed"
            return Abandoned(auth.peer_name)
        raise self._unexpected(msg)

    def accept(self, *, peer_has_link: bool = False) -> Established | None:
        """Welcome an authenticated dialer.

        With `peer_has_link` (this node holds a live link to the same incarnation)
        the dialer must confirm; the result then comes from `receive`.
        """
        if self.state != "authenticated":
            raise RuntimeError(f"accept() in state {self.state}")
        auth = self._auth
        assert auth is not None
        self._send({"t": "welcome", "mac": _mac(self._cookie, "acceptor", self._transcript), "alive": peer_has_link})
        if peer_has_link:
            self.state = "awaiting_confirm"
            return None
        self.state = "established"
        return Established(auth.peer_name, auth.peer_creation, auth.version, auth.peer_max_message_size)

    def reject_duplicate(self, detail: str) -> HandshakeError:
        """Refuse an authenticated dialer because our own connection to it wins; returns the error to log."""
        if self.state != "authenticated":
            raise RuntimeError(f"reject_duplicate() in state {self.state}")
        return self._fail(HandshakeError.DUPLICATE, detail)
