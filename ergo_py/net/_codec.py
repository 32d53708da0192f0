"""CBOR encoding of message payloads: plain data plus registered types, never pickle.

Wire format (RFC 8949 with three private conventions):
- a registered class instance is tag 27 ("object with type name and constructor
  arguments") around `[name, field1, field2, ...]`;
- a tuple is tag 21589 around an array (so tuples come back as tuples);
- a frozenset is tag 18003 around an array (a set is the standard tag 258);
- an exception whose class is not registered travels as the registered
  `RemoteError(type_name, message)`.
Every other CBOR tag (dates, decimals, regexes, shared references, ...) is
refused in both directions, so what a peer can make this node build is exactly
plain data and registered classes.

This module must never let a peer's bytes raise anything but `DecodeError`, nor
let an unencodable value leave as anything but `EncodeError` at the sender. It
imports no trio: it is used by the sans-IO link protocol.
"""

from __future__ import annotations

import datetime
import decimal
import email.message
import fractions
import io
import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Any

import cbor2

import ergo_py._errors as _ergo_errors
from ergo_py._messages import MessageDownNode, MessageDownPID, MessageDownProcessID, MessageExitPID, Panic
from ergo_py.ids import PID, ProcessID, Ref

from ._errors import (
    DecodeError,
    EncodeError,
    FramingError,
    HandshakeError,
    MessageTooLarge,
    RemoteError,
)
from ._registry import REGISTRY, Registry, TypeEntry

__all__ = [
    "CODEC",
    "MAX_DEPTH",
    "TAG_FROZENSET",
    "TAG_OBJECT",
    "TAG_TUPLE",
    "Codec",
    "decode",
    "decode_plain",
    "encode",
]

TAG_OBJECT = 27
TAG_TUPLE = 21589  # "TU"
TAG_FROZENSET = 18003  # "FS"
TAG_SET = 258
# Tags cbor2 decodes natively that we refuse (only bignums 2/3 and sets 258 stay).
_REFUSED_NATIVE_TAGS = (
    0,
    1,
    4,
    5,
    25,
    28,
    29,
    30,
    35,
    36,
    37,
    52,
    54,
    100,
    256,
    260,
    261,
    1004,
    55799,
    43000,
)
# Deep enough for any sane message, shallow enough that nesting cannot exhaust the stack.
MAX_DEPTH = 200

_REFUSED_TYPES: tuple[type, ...] = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    re.Pattern,
    email.message.Message,
    uuid.UUID,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    complex,
    bytearray,
    memoryview,
    cbor2.CBORTag,
    cbor2.CBORSimpleValue,
    type(cbor2.undefined),
    cbor2.frozendict,
)


class _Failure(Exception):
    """Raised inside cbor2 hooks; unwrapped at the boundary into our public errors."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _find_failure(exc: BaseException) -> Exception | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, _Failure):
            return cur.error
        cur = cur.__cause__ or cur.__context__
    return None


class Codec:
    """Encoder/decoder bound to a registry; rebuilds its hook tables when the registry grows."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._version = -1
        self._encoders: dict[type, Callable[[Any, Any], None]] = {}
        self._decoders: dict[int, Callable[[Any, bool], Any]] = {}
        self._encoder: Any = None

    def _refresh(self) -> None:
        encoders: dict[type, Callable[[Any, Any], None]] = {t: self._refuse for t in _REFUSED_TYPES}
        encoders[tuple] = _encode_tuple
        encoders[frozenset] = _encode_frozenset
        for cls, entry in self._registry.by_type.items():
            encoders[cls] = self._make_encoder(entry)
        decoders: dict[int, Callable[[Any, bool], Any]] = {t: _refuse_tag(t) for t in _REFUSED_NATIVE_TAGS}
        decoders[TAG_OBJECT] = self._decode_object
        decoders[TAG_TUPLE] = _decode_tuple
        decoders[TAG_FROZENSET] = _decode_frozenset
        self._encoders = encoders
        self._decoders = decoders
        self._encoder = cbor2.CBOREncoder(io.BytesIO(), encoders=encoders, default=self._default)
        self._version = self._registry.version

    # -- encoding ------------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """The CBOR bytes of `value`; raises `EncodeError` naming the first type that cannot cross."""
        if self._version != self._registry.version:
            self._refresh()
        try:
            data: bytes = self._encoder.encode_to_bytes(value)
            return data
        except EncodeError:
            raise
        except Exception as exc:
            found = _find_failure(exc)
            if found is not None:
                raise found from None
            # cbor2's own refusals: cycles, ints too large for CBOR, ...
            raise EncodeError(_type_name(value), str(exc)) from exc

    def _make_encoder(self, entry: TypeEntry) -> Callable[[Any, Any], None]:
        cls = entry.cls
        take_apart = entry.take_apart

        def encode_registered(encoder: Any, obj: Any) -> None:
            if type(obj) is not cls:
                # An unregistered subclass must not silently arrive as its parent.
                self._default(encoder, obj)
                return
            encoder.encode_semantic(TAG_OBJECT, take_apart(obj))

        return encode_registered

    def _default(self, encoder: Any, obj: Any) -> None:
        entry = self._registry.by_type.get(type(obj))
        if entry is not None:
            encoder.encode_semantic(TAG_OBJECT, entry.take_apart(obj))
        elif isinstance(obj, BaseException):
            remote = RemoteError(_type_name(obj), str(obj))
            encoder.encode_semantic(TAG_OBJECT, ["ergo_py.RemoteError", remote.type_name, remote.message])
        else:
            raise _Failure(EncodeError(_type_name(obj), "its type is not registered (use ergo_py.net.register_type)"))

    def _refuse(self, encoder: Any, obj: Any) -> None:
        raise _Failure(EncodeError(_type_name(obj), "this type does not cross the wire; send plain data"))

    # -- decoding ------------------------------------------------------------------------
    def decode(self, data: bytes) -> Any:
        """The value encoded in `data`; raises `DecodeError` (never anything else) when it is not valid."""
        if self._version != self._registry.version:
            self._refresh()
        return _strict_loads(data, self._decoders)

    def _decode_object(self, value: Any, immutable: bool) -> Any:
        if not isinstance(value, (list, tuple)) or not value or not isinstance(value[0], str):
            raise _Failure(DecodeError(None, "tag 27 must hold [type name, fields...]"))
        name = value[0]
        entry = self._registry.by_name.get(name)
        if entry is None:
            raise _Failure(DecodeError(name, "this type is not registered on this node"))
        try:
            return entry.rebuild(list(value[1:]))
        except Exception as exc:  # noqa: BLE001 - a registered constructor may refuse the peer's fields in any way
            raise _Failure(DecodeError(name, f"rebuilding it failed: {type(exc).__name__}: {exc}")) from None


def _strict_loads(data: bytes, decoders: dict[int, Callable[[Any, bool], Any]]) -> Any:
    """Decode exactly one CBOR item filling all of `data`; only `DecodeError` escapes."""
    if not isinstance(data, bytes):
        raise DecodeError(None, f"expected bytes, got {type(data).__name__}")
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp, semantic_decoders=decoders, tag_hook=_unknown_tag, max_depth=MAX_DEPTH).decode()
    except Exception as exc:  # noqa: BLE001 - the boundary: whatever cbor2 raises on bad bytes becomes ours
        found = _find_failure(exc)
        if isinstance(found, DecodeError):
            raise found from None
        raise DecodeError(None, f"malformed CBOR ({exc})") from None
    if fp.tell() != len(data):
        raise DecodeError(None, f"{len(data) - fp.tell()} bytes of garbage after the CBOR item")
    return value


def _encode_tuple(encoder: Any, obj: tuple[Any, ...]) -> None:
    encoder.encode_semantic(TAG_TUPLE, list(obj))


def _encode_frozenset(encoder: Any, obj: frozenset[Any]) -> None:
    encoder.encode_semantic(TAG_FROZENSET, list(obj))


def _decode_tuple(value: Any, immutable: bool) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise _Failure(DecodeError(None, "a tuple tag must hold an array"))
    return tuple(value)


def _decode_frozenset(value: Any, immutable: bool) -> frozenset[Any]:
    if not isinstance(value, (list, tuple)):
        raise _Failure(DecodeError(None, "a frozenset tag must hold an array"))
    try:
        return frozenset(value)
    except TypeError as exc:
        raise _Failure(DecodeError(None, f"frozenset of unhashable items ({exc})")) from None


def _refuse_tag(tag: int) -> Callable[[Any, bool], Any]:
    def refuse(value: Any, immutable: bool) -> Any:
        raise _Failure(DecodeError(None, f"CBOR tag {tag} is not accepted on this link"))

    return refuse


def _unknown_tag(tag: Any, immutable: bool) -> Any:
    raise _Failure(DecodeError(None, f"unknown CBOR tag {tag.tag}"))


# Plain data only: used for link headers and handshake messages, where no tag is legitimate.
_PLAIN_DECODERS: dict[int, Callable[[Any, bool], Any]] = {
    t: _refuse_tag(t) for t in (*_REFUSED_NATIVE_TAGS, 2, 3, TAG_SET)
}


def decode_plain(data: bytes) -> Any:
    """Decode CBOR holding only untagged plain data (no registered types); raises `DecodeError`."""
    return _strict_loads(data, _PLAIN_DECODERS)


def _register_builtins(registry: Registry) -> None:
    """The types every node knows: identifiers, system messages and the errors calls return."""
    for cls, name in (
        (PID, "ergo_py.PID"),
        (ProcessID, "ergo_py.ProcessID"),
        (Ref, "ergo_py.Ref"),
        (Panic, "ergo_py.Panic"),
        (MessageDownPID, "ergo_py.MessageDownPID"),
        (MessageDownProcessID, "ergo_py.MessageDownProcessID"),
        (MessageDownNode, "ergo_py.MessageDownNode"),
        (MessageExitPID, "ergo_py.MessageExitPID"),
        (RemoteError, "ergo_py.RemoteError"),
        (MessageTooLarge, "ergo_py.MessageTooLarge"),
        (EncodeError, "ergo_py.EncodeError"),
        (DecodeError, "ergo_py.DecodeError"),
        (FramingError, "ergo_py.FramingError"),
    ):
        registry.register(cls, name=name)
    registry.register(HandshakeError, name="ergo_py.HandshakeError", fields=("reason", "detail", "peer"))
    # The runtime's errors keep their constructor arguments as attributes, not in args.
    runtime_errors: list[tuple[type[Exception], tuple[str, ...] | None]] = [
        (_ergo_errors.ErgoError, None),
        (_ergo_errors.CallError, None),
        (_ergo_errors.NodeNotRunning, None),
        (_ergo_errors.NoConnection, ("node", "detail")),
        (_ergo_errors.CallTimeout, ("to", "timeout")),
        (_ergo_errors.ProcessUnknown, ("target",)),
        (_ergo_errors.ProcessExited, ("target", "reason")),
        (_ergo_errors.NameTaken, ("name", "holder")),
    ]
    for error_cls, fields in runtime_errors:
        registry.register(error_cls, name=f"ergo_py.{error_cls.__name__}", fields=fields)


_register_builtins(REGISTRY)

CODEC = Codec(REGISTRY)


def encode(value: Any) -> bytes:
    """CBOR bytes of `value` with the process-wide registry (raises `EncodeError`)."""
    return CODEC.encode(value)


def decode(data: bytes) -> Any:
    """The value in `data` with the process-wide registry (raises `DecodeError` only)."""
    return CODEC.decode(data)
