"""How the state machine lays its tables out in one storage engine.

Three key spaces share the engine, each under a one-byte prefix, so that a scan for
user keys never meets a lock or a session record and a snapshot of the engine is a
snapshot of the whole state machine:

- b"k" + user key                      -> stored value (see `_values`)
- b"e" + lease id (8 bytes, big-endian) -> lease record (see `_leases`)
- b"l" + lock key                      -> lock record (see `_locks`)
- b"s" + len(id) + client id + b"m"     -> session meta record (see `_sessions`)
- b"s" + len(id) + client id + b"r" + seq (8 bytes, big-endian) -> cached result

The length byte before the client id keeps one client's records from ever being a
prefix-match of another's. This module must never touch the engine itself.
"""

from __future__ import annotations

__all__ = [
    "LEASE_PREFIX",
    "LOCK_PREFIX",
    "MAX_CLIENT_ID_BYTES",
    "MAX_SEQ",
    "MAX_USER_KEY",
    "SESSION_PREFIX",
    "USER_END",
    "USER_PREFIX",
    "check_client_id",
    "check_user_key",
    "lock_key",
    "parse_session_key",
    "prefix_end",
    "session_meta_key",
    "session_prefix",
    "session_result_key",
    "user_key",
]

USER_PREFIX = b"k"
USER_END = b"l"  # the first key after every user key
LOCK_PREFIX = b"l"
LEASE_PREFIX = b"e"
SESSION_PREFIX = b"s"

# The engines accept keys up to 511 bytes (storage.MAX_KEY_SIZE); one byte goes to the
# prefix. Kept as a literal so this pure package need not import the engines; a test
# ties the two together.
MAX_USER_KEY = 510
MAX_CLIENT_ID_BYTES = 200
MAX_SEQ = (1 << 64) - 1

_META = b"m"
_RESULT = b"r"


def check_user_key(key: object, what: str = "key") -> bytes:
    """`key` if it is bytes of 1..MAX_USER_KEY bytes; TypeError / ValueError say why not."""
    if type(key) is not bytes:
        raise TypeError(f"{what} must be bytes, got {type(key).__name__}; encode str keys first")
    if not 0 < len(key) <= MAX_USER_KEY:
        raise ValueError(f"{what} length {len(key)} is outside 1..{MAX_USER_KEY} bytes")
    return key


def check_client_id(client_id: object) -> str:
    """`client_id` if it is a str of 1..MAX_CLIENT_ID_BYTES UTF-8 bytes."""
    if type(client_id) is not str:
        raise TypeError(f"client_id must be str or None, got {type(client_id).__name__}")
    size = len(client_id.encode("utf-8", "surrogatepass"))
    if not 0 < size <= MAX_CLIENT_ID_BYTES:
        raise ValueError(f"client_id is {size} bytes in UTF-8; it must be 1..{MAX_CLIENT_ID_BYTES}")
    return client_id


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`. Every prefix here starts
    with a table's prefix byte (never 0xff), so stripping 0xff bytes never empties it."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def user_key(key: bytes) -> bytes:
    return USER_PREFIX + key


def lock_key(key: bytes) -> bytes:
    return LOCK_PREFIX + key


def session_prefix(client_id: str) -> bytes:
    raw = client_id.encode("utf-8", "surrogatepass")
    return SESSION_PREFIX + bytes((len(raw),)) + raw


def session_meta_key(prefix: bytes) -> bytes:
    return prefix + _META


def session_result_key(prefix: bytes, seq: int) -> bytes:
    return prefix + _RESULT + seq.to_bytes(8, "big")


def parse_session_key(key: bytes) -> tuple[str, int | None]:
    """(client id, seq) of a session record key; seq is None for the meta record.

    Raises ValueError for a key that is not laid out as above.
    """
    if len(key) < 3 or key[:1] != SESSION_PREFIX:
        raise ValueError(f"not a session key: {key!r}")
    size = key[1]
    raw, rest = key[2 : 2 + size], key[2 + size :]
    if len(raw) != size or size == 0:
        raise ValueError(f"session key {key!r} has a truncated client id")
    client_id = raw.decode("utf-8", "surrogatepass")
    if rest == _META:
        return client_id, None
    if len(rest) == 9 and rest[:1] == _RESULT:
        return client_id, int.from_bytes(rest[1:], "big")
    raise ValueError(f"session key {key!r} has an unknown record suffix {rest!r}")
