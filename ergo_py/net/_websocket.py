"""RFC 6455 websockets for node links, driven by the task that reads: no reader task, no channel.

trio-websocket (which the links used before) runs a reader task per connection that
parses frames with wsproto and hands each message through a memory channel to the
task that wants it. At low load that is two task switches and two pure-Python frame
parsers per message, and it was most of a link's cost: between two processes on this
host a round trip took 420-525 µs through trio-websocket and 105 µs on the bare stream.
A link has exactly one reader (its receiver task), so here the frames are parsed by
whoever calls `get_message`, from one buffer, with an integer XOR for the mask.

It implements what a peer may send, not only what our nodes send: binary and text
messages, fragmentation, ping/pong, the close handshake, masking (a client must mask,
a server must not), and a size limit checked before a frame's body is read. No
extensions are negotiated. The opening handshake is HTTP/1.1 through h11, bounded by
h11's limit on a request head. Any violation closes the websocket with the RFC's code
and raises `ConnectionClosed`; nothing here raises anything a link does not expect
(`IO_ERRORS` in `_link`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import h11
import trio

__all__ = ["CloseReason", "ConnectionClosed", "UpgradeRefused", "WebSocket", "accept_websocket", "connect_websocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Reads per receive call: coalesced frames are often tens of KiB.
RECEIVE_BUFFER = 64 * 1024
# The longest HTTP head accepted in the opening handshake.
MAX_HEAD = 16 * 1024

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPCODES = (_CONTINUATION, _TEXT, _BINARY)
# Each fragment counts this much toward the size limit besides its payload (its header on
# the wire), so that empty fragments cannot grow a message without bound.
_FRAGMENT_COST = 16
# Masking and unmasking go this many bytes (a multiple of the 4-byte key) between yields.
_MASK_PIECE = 256 * 1024

# RFC 6455 §7.4.1 names, for logs.
_CODE_NAMES = {
    1000: "NORMAL_CLOSURE",
    1001: "GOING_AWAY",
    1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA",
    1005: "NO_STATUS_RCVD",
    1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_FRAME_PAYLOAD_DATA",
    1008: "POLICY_VIOLATION",
    1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXT",
    1011: "INTERNAL_ERROR",
}


@dataclass(frozen=True)
class CloseReason:
    """Why a websocket closed: the code and text of a Close frame (1006: no Close frame at all)."""

    code: int
    reason: str = ""

    @property
    def name(self) -> str:
        return _CODE_NAMES.get(self.code, "PRIVATE_CODE" if self.code >= 3000 else "UNKNOWN")


class ConnectionClosed(Exception):
    """The websocket is closed (`reason`); `by_peer` is False when this side closed it."""

    def __init__(self, reason: CloseReason, *, by_peer: bool = True) -> None:
        super().__init__(
            f"websocket closed ({reason.code} {reason.name}{': ' + reason.reason if reason.reason else ''})"
        )
        self.reason = reason
        self.by_peer = by_peer


class Stream(Protocol):
    """What a websocket needs of its byte stream (a trio stream, or a FastSocketStream)."""

    async def send_all(self, data: bytes | memoryview) -> None: ...

    async def receive_some(self, max_bytes: int) -> bytes | bytearray: ...

    async def aclose(self) -> None: ...


class UpgradeRefused(Exception):
    """The HTTP upgrade to a websocket did not happen (a refusal, or not HTTP at all)."""


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR `data` with the repeated 4-byte `key` (the same operation masks and unmasks)."""
    n = len(data)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def _truncate(text: str, limit: int) -> bytes:
    """`text` in UTF-8, cut to at most `limit` bytes on a character boundary."""
    return text.encode()[:limit].decode("utf-8", "ignore").encode()


def _head(opcode: int, n: int, masked: bool) -> bytes:
    mask_bit = 0x80 if masked else 0
    if n < 126:
        return bytes((0x80 | opcode, mask_bit | n))
    if n < 0x10000:
        return bytes((0x80 | opcode, mask_bit | 126)) + n.to_bytes(2, "big")
    return bytes((0x80 | opcode, mask_bit | 127)) + n.to_bytes(8, "big")


def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    head = _head(opcode, len(payload), masked)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


async def _frame_yielding(opcode: int, payload: bytes, masked: bool) -> bytes:
    """`_frame`, masking a large payload piece by piece with the scheduler run in between."""
    if not masked or len(payload) <= _MASK_PIECE:
        return _frame(opcode, payload, masked)
    key = os.urandom(4)
    return _head(opcode, len(payload), masked) + key + await _mask_yielding(payload, key)


async def _mask_yielding(data: bytes, key: bytes) -> bytes:
    """`_mask` in pieces of _MASK_PIECE bytes, yielding between them: masking 10 MiB at once
    holds the loop for about 75 ms here, half a Raft election timeout. Shielded yields: the
    frame is already out of the buffer, and a cancellation must not lose it."""
    if len(data) <= _MASK_PIECE:
        return _mask(data, key)
    pieces = []
    for start in range(0, len(data), _MASK_PIECE):
        pieces.append(_mask(data[start : start + _MASK_PIECE], key))
        await trio.lowlevel.cancel_shielded_checkpoint()
    return b"".join(pieces)


def _accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _header(headers: Any, name: bytes) -> bytes:
    """One header's value, comma-joined if repeated (h11 gives names in lower case)."""
    return b", ".join(value for key, value in headers if key == name)


def _has_token(value: bytes, token: bytes) -> bool:
    return token in (part.strip().lower() for part in value.split(b","))


class _Violation(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class WebSocket:
    """One open websocket on a trio stream.

    One task at a time may read (`get_message`, and `ping` needs a reader to see its
    pong); sends from several tasks are serialised by a lock. A received ping is
    answered by the reader.
    """

    def __init__(self, stream: Stream, *, client: bool, data: bytes, max_message_size: int) -> None:
        self.stream = stream
        self._client = client
        self._buf = bytearray(data)
        self._max = max_message_size
        self._send_lock = trio.Lock()
        self._pings: dict[bytes, trio.Event] = {}
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragment_opcode = 0
        self._sent_close: CloseReason | None = None
        self._reading = False
        self._by_peer = False
        self._tail: memoryview | None = None  # what send_nowait could not write yet
        self._broken = False  # a write was cut off (cancelled or failed): no frame may follow
        self.closed: CloseReason | None = None
        """Set once the websocket is closed: the peer's Close, or ours, or 1006 (connection lost)."""

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.closed or self._sent_close or CloseReason(1006), by_peer=self._by_peer)

    # -- sending --------------------------------------------------------------------------------
    async def send_message(self, data: bytes | str) -> None:
        """Send one message as one frame (text for a str, binary for bytes)."""
        if type(data) is str:
            await self._send_frame(_TEXT, data.encode())
        else:
            await self._send_frame(_BINARY, data)  # type: ignore[arg-type]

    def can_send_nowait(self) -> bool:
        """Whether `send_nowait` may be used: an open websocket on a stream that can write
        without waiting (not TLS), with no send in progress and nothing left unwritten."""
        return (
            self._tail is None
            and not self._broken
            and not self._send_lock.locked()
            and self._sent_close is None
            and self.closed is None
            and hasattr(self.stream, "write_nowait")
        )

    def send_nowait(self, data: bytes) -> bool:
        """Send a binary message from synchronous code, if `can_send_nowait()`; False if not.

        What the socket does not take at once is kept and written first by the next send
        (`flush` writes it alone): `has_tail` says so."""
        if not self.can_send_nowait():
            return False
        frame = _frame(_BINARY, data, self._client)
        written = self.stream.write_nowait(frame)  # type: ignore[attr-defined]
        if written < len(frame):
            self._tail = memoryview(frame)[written:]
        return True

    @property
    def has_tail(self) -> bool:
        return self._tail is not None

    async def flush(self) -> None:
        """Write what `send_nowait` left unwritten."""
        await self._send(b"")

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong (answered pongs also answer earlier pings)."""
        if payload is None:
            payload = os.urandom(8)
        if payload in self._pings:
            raise ValueError("a ping with this payload is already waiting")
        event = self._pings[payload] = trio.Event()
        try:
            await self._send_frame(_PING, payload)
            await event.wait()
        finally:
            self._pings.pop(payload, None)

    async def _send(self, frame: bytes) -> None:
        lock = self._send_lock
        if lock.locked():
            async with lock:
                await self._write(frame)
            return
        lock.acquire_nowait()  # not `async with`: its checkpoint would be a scheduler pass per frame
        try:
            await self._write(frame)
        finally:
            lock.release()

    async def _write(self, frame: bytes) -> None:
        if self._broken:
            raise ConnectionClosed(CloseReason(1006, "a write was interrupted"), by_peer=False)
        self._broken = True  # until the writes below complete: a frame cut off corrupts the stream
        if self._tail is not None:
            tail, self._tail = self._tail, None
            await self.stream.send_all(tail)
        if frame:
            await self.stream.send_all(frame)
        self._broken = False

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self._sent_close is not None or self.closed is not None:
            raise self._closed_error()
        await self._send(await _frame_yielding(opcode, payload, self._client))

    async def _send_close(self, code: int, reason: str) -> None:
        if self._sent_close is not None:
            return
        self._sent_close = CloseReason(code, reason)
        payload = b"" if code == 1005 else code.to_bytes(2, "big") + _truncate(reason, 123)
        await self._send(_frame(_CLOSE, payload, self._client))

    # -- receiving ------------------------------------------------------------------------------
    async def get_message(self) -> bytes | str:
        """The next message; raises ConnectionClosed when the websocket closes (either side)."""
        if self.closed is not None or self._sent_close is not None:
            raise self._closed_error()
        if self._reading:
            raise trio.BusyResourceError("another task is reading this websocket")
        self._reading = True
        try:
            while True:
                message = await self._next_message()
                if message is not None:
                    return message
        finally:
            self._reading = False

    async def _next_message(self) -> bytes | str | None:
        """One frame's worth of progress: a whole message, or None (a control frame, a fragment)."""
        try:
            frame = self._parse()
            while frame is None:
                await self._fill()
                frame = self._parse()
            fin, opcode, payload, key = frame
            if key is not None:
                payload = await _mask_yielding(payload, key)
            return await self._take(fin, opcode, payload)
        except _Violation as exc:
            await self._fail(exc.code, exc.detail)

    async def _take(self, fin: bool, opcode: int, payload: bytes) -> bytes | str | None:
        if opcode == _BINARY or opcode == _TEXT:
            if self._fragment_opcode:
                raise _Violation(1002, "a new message before the previous one was finished")
            if fin:
                return payload if opcode == _BINARY else self._text(payload)
            self._fragment_opcode = opcode
            self._fragments = [payload]
            self._fragments_size = len(payload) + _FRAGMENT_COST
            return None
        if opcode == _CONTINUATION:
            if not self._fragment_opcode:
                raise _Violation(1002, "a continuation frame with no message to continue")
            self._fragments.append(payload)
            self._fragments_size += len(payload) + _FRAGMENT_COST
            if self._fragments_size > self._max:
                raise _Violation(1009, f"a message over {self._max} bytes")
            if not fin:
                return None
            whole, kind = b"".join(self._fragments), self._fragment_opcode
            self._fragments, self._fragments_size, self._fragment_opcode = [], 0, 0
            return whole if kind == _BINARY else self._text(whole)
        if opcode == _PING:
            if self._sent_close is None:
                await self._send_frame(_PONG, payload)
            return None
        if opcode == _PONG:
            self._pong(payload)
            return None
        await self._peer_closed(payload)  # opcode is _CLOSE: raises

    def _text(self, payload: bytes) -> str:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise _Violation(1007, "a text message that is not UTF-8") from None

    def _pong(self, payload: bytes) -> None:
        if payload not in self._pings:
            return  # unsolicited: allowed (RFC 6455 §5.5.3), ignored
        for key in list(self._pings):
            self._pings.pop(key).set()
            if key == payload:
                break

    def _parse(self) -> tuple[bool, int, bytes, bytes | None] | None:
        """The next whole frame in the buffer (fin, opcode, payload still masked, masking key),
        or None; raises _Violation."""
        buf = self._buf
        have = len(buf)
        if have < 2:
            return None
        b0, b1 = buf[0], buf[1]
        opcode, n, pos = b0 & 0x0F, b1 & 0x7F, 2
        if b0 & 0x70:
            raise _Violation(1002, "reserved bits set (no extension was negotiated)")
        if opcode not in _DATA_OPCODES and opcode not in (_CLOSE, _PING, _PONG):
            raise _Violation(1002, f"unknown opcode {opcode:#x}")
        if opcode >= _CLOSE and (n > 125 or not b0 & 0x80):
            raise _Violation(1002, "a control frame that is fragmented or longer than 125 bytes")
        if bool(b1 & 0x80) == self._client:
            raise _Violation(
                1002, "a masked frame from a server" if self._client else "an unmasked frame from a client"
            )
        if n == 126:
            if have < 4:
                return None
            n, pos = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if have < 10:
                return None
            n, pos = int.from_bytes(buf[2:10], "big"), 10
        if n + (self._fragments_size if opcode == _CONTINUATION else 0) > self._max:
            raise _Violation(1009, f"a message over {self._max} bytes")
        masked = b1 & 0x80
        end = pos + (4 if masked else 0) + n
        if have < end:
            return None
        key = bytes(buf[pos : pos + 4]) if masked else None
        payload = bytes(buf[pos + 4 : end] if masked else buf[pos:end])
        del buf[:end]
        return bool(b0 & 0x80), opcode, payload, key

    async def _fill(self) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_BUFFER)
        except (trio.BrokenResourceError, OSError):
            data = b""
        if not data:
            self.closed, self._by_peer = CloseReason(1006, "the connection was lost"), True
            await trio.aclose_forcefully(self.stream)  # type: ignore[arg-type]
            raise ConnectionClosed(self.closed)
        self._buf += data

    async def _fail(self, code: int, detail: str) -> NoReturn:
        """Close because the peer broke the protocol; always raises ConnectionClosed."""
        reason = CloseReason(code, detail)
        try:
            await self._send_close(code, detail)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ConnectionClosed):
            pass
        self.closed = reason
        await trio.aclose_forcefully(self.stream)  # type: ignore[arg-type]
        raise ConnectionClosed(reason, by_peer=False)

    async def _peer_closed(self, payload: bytes) -> NoReturn:
        if len(payload) == 1:
            raise _Violation(1002, "a Close frame with a 1-byte payload")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code < 1000 or code in (1004, 1005, 1006, 1015) or 1016 <= code < 3000 or code >= 5000:
                raise _Violation(1002, f"a Close frame with code {code}, which may not be sent")
            try:
                text = payload[2:].decode()
            except UnicodeDecodeError:
                raise _Violation(1007, "a Close reason that is not UTF-8") from None
        else:
            code, text = 1005, ""
        reason, self._by_peer = CloseReason(code, text), True
        if self._sent_close is None:
            try:
                await self._send_close(1000 if code == 1005 else code, "")
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ConnectionClosed):
                pass
        self.closed = reason
        await trio.aclose_forcefully(self.stream)  # type: ignore[arg-type]
        raise ConnectionClosed(reason)

    # -- closing --------------------------------------------------------------------------------
    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Send a Close, wait for the peer's (the caller bounds the wait), and close the stream."""
        try:
            if self.closed is None:
                try:
                    await self._send_close(code, reason)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ConnectionClosed):
                    self.closed = CloseReason(1006, "the connection was lost")
                while self.closed is None and not self._reading:
                    self._reading = True
                    try:
                        await self._next_message()  # data after our Close is dropped
                    except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        break
                    finally:
                        self._reading = False
        finally:
            if self.closed is None:
                self.closed = self._sent_close or CloseReason(code, reason)
            await trio.aclose_forcefully(self.stream)  # type: ignore[arg-type]


# -- the opening handshake -------------------------------------------------------------------------
async def _next_event(conn: h11.Connection, stream: Stream) -> Any:
    while True:
        try:
            event = conn.next_event()
        except h11.ProtocolError as exc:
            raise UpgradeRefused(f"not a websocket upgrade: {exc}") from None
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(RECEIVE_BUFFER)))


async def connect_websocket(stream: Stream, host: str, path: str, *, max_message_size: int) -> WebSocket:
    """Upgrade a freshly opened stream (TLS already done, if any) to a client websocket."""
    key = base64.b64encode(os.urandom(16))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    request = h11.Request(
        method="GET",
        target=path,
        headers=[
            (b"Host", host.encode()),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", key),
            (b"Sec-WebSocket-Version", b"13"),
        ],
    )
    await stream.send_all(conn.send(request) or b"")
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
            continue  # 100 Continue and the like
        break
    if not isinstance(event, h11.InformationalResponse):
        status = getattr(event, "status_code", None)
        raise UpgradeRefused(f"HTTP {status}" if status is not None else f"no upgrade ({type(event).__name__})")
    headers = event.headers
    if not _has_token(_header(headers, b"upgrade"), b"websocket") or _header(
        headers, b"sec-websocket-accept"
    ) != _accept_key(key):
        raise UpgradeRefused("the server's 101 answer is not a websocket acceptance")
    trailing, _ = conn.trailing_data
    return WebSocket(stream, client=True, data=bytes(trailing), max_message_size=max_message_size)


async def accept_websocket(stream: Stream, *, max_message_size: int) -> WebSocket:
    """Read an HTTP upgrade request from a new connection and accept it as a websocket.

    Anything else is answered with an HTTP error and raises UpgradeRefused; the
    caller closes the stream and bounds the whole with its handshake timeout.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    event = await _next_event(conn, stream)
    if not isinstance(event, h11.Request):
        raise UpgradeRefused(f"no HTTP request ({type(event).__name__})")
    headers = event.headers
    key = _header(headers, b"sec-websocket-key")
    problem = None
    if event.method != b"GET":
        problem = "the method must be GET"
    elif not _has_token(_header(headers, b"upgrade"), b"websocket"):
        problem = "not a websocket upgrade"
    elif not _has_token(_header(headers, b"connection"), b"upgrade"):
        problem = "no Connection: Upgrade"
    elif _header(headers, b"sec-websocket-version") != b"13":
        problem = "unsupported Sec-WebSocket-Version (13 is)"
    elif not key:
        problem = "no Sec-WebSocket-Key"
    if problem is not None:
        body = problem.encode()
        response = h11.Response(
            status_code=400,
            headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")],
        )
        try:
            await stream.send_all(conn.send(response) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        raise UpgradeRefused(problem)
    answer = h11.InformationalResponse(
        status_code=101,
        headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", _accept_key(key))],
    )
    await stream.send_all(conn.send(answer) or b"")
    trailing, _ = conn.trailing_data
    return WebSocket(stream, client=False, data=bytes(trailing), max_message_size=max_message_size)
