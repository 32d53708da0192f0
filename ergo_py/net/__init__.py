"""ergo_py.net: nodes talk over authenticated websocket links, with CBOR on the wire.

The Node uses `Network` (send controls, get callbacks); applications use
`register_type` to let their own classes cross the wire. The cookie comes from
`cookie=` or the ERGO_COOKIE environment variable.

Importing the package loads no module (each name is imported on first use, PEP 562):
the sans-IO modules under it (`_registry`, `_codec`, `_protocol`, `_handshake`) and
`ergo_py.wire` import without trio; only `Network` and its companions load the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ergo_py.lazy import lazy_namespace

if TYPE_CHECKING:
    from ._codec import decode as decode
    from ._codec import encode as encode
    from ._errors import DecodeError as DecodeError
    from ._errors import EncodeError as EncodeError
    from ._errors import FramingError as FramingError
    from ._errors import HandshakeError as HandshakeError
    from ._errors import MessageTooLarge as MessageTooLarge
    from ._errors import NoConnection as NoConnection
    from ._errors import RegistrationError as RegistrationError
    from ._errors import RemoteError as RemoteError
    from ._fast_stream import FastSocketStream as FastSocketStream
    from ._network import COOKIE_ENV as COOKIE_ENV
    from ._network import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
    from ._network import Network as Network
    from ._network import NetworkHandlers as NetworkHandlers
    from ._network import NetworkStatistics as NetworkStatistics
    from ._network import resolve_cookie as resolve_cookie
    from ._protocol import Call as Call
    from ._protocol import Control as Control
    from ._protocol import Demonitor as Demonitor
    from ._protocol import Down as Down
    from ._protocol import Exit as Exit
    from ._protocol import Link as Link
    from ._protocol import Monitor as Monitor
    from ._protocol import Reply as Reply
    from ._protocol import Send as Send
    from ._protocol import Unlink as Unlink
    from ._registry import register_type as register_type

# Each public name, by the module it lives in: imported on first use.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._codec": ("decode", "encode"),
    "._errors": (
        "DecodeError",
        "EncodeError",
        "FramingError",
        "HandshakeError",
        "MessageTooLarge",
        "NoConnection",
        "RegistrationError",
        "RemoteError",
    ),
    "._fast_stream": ("FastSocketStream",),
    "._network": (
        "COOKIE_ENV",
        "DEFAULT_MAX_MESSAGE_SIZE",
        "Network",
        "NetworkHandlers",
        "NetworkStatistics",
        "resolve_cookie",
    ),
    "._protocol": ("Call", "Control", "Demonitor", "Down", "Exit", "Link", "Monitor", "Reply", "Send", "Unlink"),
    "._registry": ("register_type",),
}
_SUBMODULES: tuple[str, ...] = ()

__all__, __getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS, _SUBMODULES)
