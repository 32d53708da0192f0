"""How `global-kv ctl` shows things: readable text for people, JSON for programs.

Values are bytes. For people: printable UTF-8 is shown as it is; anything else in
the escaped form of `escape` (byte-level `\\xNN`, plus `\\t \\n \\r \\\\`), which
`unescape` reverses exactly. For programs: JSON text under `value`, or base64 under
`value_base64` when the bytes are not printable UTF-8. Pure functions; nothing here
talks to the cluster.
"""

from __future__ import annotations

import ast
import base64
import re
from collections.abc import Sequence
from typing import Any

from ..protocol import LockInfo, StatusResponse

__all__ = [
    "bytes_fields",
    "escape",
    "human_size",
    "lock_json",
    "readable_message",
    "show_bytes",
    "status_json",
    "status_row",
    "table",
    "text_or_none",
    "tsv_row",
    "unescape",
]

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": b"\\", "t": b"\t", "n": b"\n", "r": b"\r"}


def text_or_none(value: bytes) -> str | None:
    """`value` as text when it is UTF-8 made of printable characters (tabs and newlines allowed)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\n\t" for c in text) else None


def escape(value: bytes) -> str:
    """One line of text for any bytes: printable UTF-8 as is, backslash, tab, newline and CR as
    `\\\\ \\t \\n \\r`, every other byte (invalid UTF-8, control or other non-printable
    characters) as `\\xNN`. Reversible with `unescape`."""
    parts: list[str] = []
    for ch in value.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, smuggled by surrogateescape
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        else:
            parts.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
    return "".join(parts)


def unescape(text: str) -> bytes:
    """The bytes `escape` was given."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
        elif text[i + 1] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += _UNESCAPES[text[i + 1]]
            i += 2
    return bytes(out)


def show_bytes(value: bytes) -> str:
    """A key or value inside a message or a table cell: always one line (see `escape`)."""
    return escape(value)


def tsv_row(key: bytes, value: bytes) -> str:
    """`range`/`prefix` output: one escaped key TAB escaped value per line."""
    return f"{escape(key)}\t{escape(value)}"


_BYTES_REPR = re.compile(r"\bb'(?:[^'\\\n]|\\.)*'" + r'|\bb"(?:[^"\\\n]|\\.)*"')
_LONG_FLOAT = re.compile(r"(?<![\w.])\d+\.\d{4,}(?![\w.])")


def _bytes_text(match: re.Match[str]) -> str:
    try:
        value = ast.literal_eval(match.group())
    except (ValueError, SyntaxError):
        return match.group()
    return escape(value) if isinstance(value, bytes) else match.group()


def readable_message(message: str) -> str:
    """An error message as one line for people: keys as text instead of `b'...'` reprs,
    durations rounded to milliseconds."""
    message = _BYTES_REPR.sub(_bytes_text, message)
    message = _LONG_FLOAT.sub(lambda m: f"{round(float(m.group()), 3):g}", message)
    return " ".join(message.splitlines())


def bytes_fields(name: str, value: bytes | None) -> dict[str, Any]:
    """{name: text} for UTF-8, {name_base64: ...} otherwise, {name: None} for None."""
    if value is None:
        return {name: None}
    text = text_or_none(value)
    if text is not None:
        return {name: text}
    return {f"{name}_base64": base64.b64encode(value).decode()}


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def status_row(name: str, st: StatusResponse) -> list[Any]:
    role = "leader" if st.is_leader else ("follower" if st.leader is not None else "no leader")
    return [
        name,
        role,
        st.term,
        st.commit_index,
        st.last_applied,
        st.commit_lag,
        st.lock_count,
        human_size(st.storage_size),
        "yes" if st.has_quorum else "NO",
        "ok" if st.storage_ok else "FAILED",
    ]


STATUS_HEADER = ("NODE", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "LOCKS", "SIZE", "QUORUM", "STORAGE")


def status_json(st: StatusResponse) -> dict[str, Any]:
    return {
        "node": st.node_id.node,
        "is_leader": st.is_leader,
        "leader": st.leader.node if st.leader is not None else None,
        "term": st.term,
        "commit_index": st.commit_index,
        "last_applied": st.last_applied,
        "commit_lag": st.commit_lag,
        "members": [p.node for p in st.peers],
        "lock_count": st.lock_count,
        "storage_size": st.storage_size,
        "has_quorum": st.has_quorum,
        "storage_ok": st.storage_ok,
    }


def lock_json(info: LockInfo) -> dict[str, Any]:
    return {
        **bytes_fields("key", info.key),
        "owner": repr(info.owner),
        "owner_node": info.owner.node,
        "token": info.token,
        "held_for": round(info.held_for, 3),
        "ttl": info.ttl,
        "waiters": info.waiters,
    }
