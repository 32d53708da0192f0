"""What crosses the wire between nodes, without the runtime: type registration and the codec.

A protocol package (a client's requests, a pure replica's messages) registers its
classes here and needs nothing else from ergo_py's network: this module and what it
imports (the registry, the CBOR codec, the error classes, `ergo_py.ids`) never import
trio, sockets or the node, so registering a type does not start a runtime.
`ergo_py.net` re-exports the same objects for code that also runs a node.
"""

from .net._codec import decode as decode
from .net._codec import encode as encode
from .net._errors import DecodeError as DecodeError
from .net._errors import EncodeError as EncodeError
from .net._errors import RegistrationError as RegistrationError
from .net._registry import register_type as register_type
