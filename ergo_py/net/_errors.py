"""The exceptions of the distribution layer, all under `ergo_py.ErgoError`.

Each carries the data a caller needs to decide what to do, and its constructor
arguments are exactly its `args`, so every one of them can itself cross the wire
(they are registered with the codec) and be rebuilt on the other side. This module
must never import trio or the codec: it is shared by the sans-IO modules.
"""

from __future__ import annotations

from ergo_py._errors import ErgoError, NoConnection

__all__ = [
    "DecodeError",
    "EncodeError",
    "FramingError",
    "HandshakeError",
    "MessageTooLarge",
    "NoConnection",
    "RegistrationError",
    "RemoteError",
]


class HandshakeError(ErgoError):
    """A link could not be set up: `reason` names the check that failed.

    Reasons: "cookie" (the two nodes do not share a cookie), "version" (no common
    protocol version), "name" (the peer is not the node we meant to reach, or
    claims our own name), "timeout" (the handshake did not finish in time),
    "duplicate" (a link between the two nodes already exists or is being made from
    the other side), "protocol" (the peer does not speak this handshake), "closed"
    (the connection ended during the handshake).
    """

    COOKIE = "cookie"
    VERSION = "version"
    NAME = "name"
    TIMEOUT = "timeout"
    DUPLICATE = "duplicate"
    PROTOCOL = "protocol"
    CLOSED = "closed"

    def __init__(self, reason: str, detail: str = "", peer: str = "") -> None:
        super().__init__(reason, detail, peer)
        self.reason = reason
        self.detail = detail
        self.peer = peer

    def __str__(self) -> str:
        where = f" with {self.peer}" if self.peer else ""
        text = f"handshake{where} failed ({self.reason})"
        return f"{text}: {self.detail}" if self.detail else text


class MessageTooLarge(ErgoError):
    """An encoded control is larger than the link's `max_message_size`; it was not sent.

    Send smaller messages (split the data) or raise `max_message_size` on every node.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return f"encoded message is {self.size} bytes, over the limit of {self.limit} bytes"


class EncodeError(ErgoError):
    """A value cannot cross the wire: its type is not registered or not encodable.

    Register the type with `ergo_py.net.register_type`, or send plain data.
    """

    def __init__(self, type_name: str, detail: str) -> None:
        super().__init__(type_name, detail)
        self.type_name = type_name
        self.detail = detail

    def __str__(self) -> str:
        return f"cannot encode a value of type {self.type_name}: {self.detail}"


class DecodeError(ErgoError):
    """Bytes from a peer could not be turned back into a value.

    `type_name` is the registered name the peer used when the failure is about one
    type (unknown to this node, or its constructor refused the fields), else None.
    """

    def __init__(self, type_name: str | None, detail: str) -> None:
        super().__init__(type_name, detail)
        self.type_name = type_name
        self.detail = detail

    def __str__(self) -> str:
        if self.type_name is None:
            return f"cannot decode: {self.detail}"
        return f"cannot decode type {self.type_name!r}: {self.detail}"


class RegistrationError(ErgoError, TypeError):
    """`register_type` refused a class: it could not be encoded faithfully."""

    def __init__(self, type_name: str, detail: str) -> None:
        super().__init__(type_name, detail)
        self.type_name = type_name
        self.detail = detail

    def __str__(self) -> str:
        return f"cannot register {self.type_name}: {self.detail}"


class RemoteError(ErgoError):
    """An exception raised on another node whose class is not registered here.

    It keeps the original class's qualified name and message; register the class
    on both nodes to get the exception itself instead.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


class FramingError(ErgoError):
    """A frame from a peer does not follow the link protocol; the link is closed."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"malformed frame: {self.detail}"
