"""ergo_py.net: nodes talk over authenticated websocket links, with CBOR on the wire.

The Node uses `Network` (send controls, get callbacks); applications use
`register_type` to let their own classes cross the wire. The cookie comes from
`cookie=` or the ERGO_COOKIE environment variable.
"""

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
