"""How `global-kv ctl` shows things: readable text for people, JSON for programs.

Values are bytes: shown as text when they are UTF-8, otherwise as a Python bytes
literal (text) or base64 (JSON, under `value_base64`), so nothing is lost or
mangled on the way out. Pure functions; nothing here talks to the cluster.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from ..app import LockInfo, StatusResponse

__all__ = ["bytes_fields", "human_size", "lock_json", "show_bytes", "status_json", "status_row", "table"]


def _text(value: bytes) -> str | None:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\n\t" for c in text) else None


def show_bytes(value: bytes) -> str:
    text = _text(value)
    return text if text is not None else repr(value)


def bytes_fields(name: str, value: bytes | None) -> dict[str, Any]:
    """{name: text} for UTF-8, {name_base64: ...} otherwise, {name: None} for None."""
    if value is None:
        return {name: None}
    text = _text(value)
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
