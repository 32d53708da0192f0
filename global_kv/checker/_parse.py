"""Read recorded histories from files: Jepsen etcd logs and Jepsen-style EDN KV histories.

Each line is an event (`:invoke`, then `:ok`, `:fail` or `:info`, per process); we pair
them into `Operation`s with the line number as the time (only order matters; an EDN
event's `:time` is used when present). Jepsen's meaning of a completion is kept:
`:ok` took effect with that result, `:fail` certainly did not take effect (dropped),
`:info` may or may not have (unknown outcome), and an invoke with no completion is an
unknown outcome too. This module must never judge a history; it only translates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from ._errors import HistoryParseError
from ._history import UNKNOWN, Operation

__all__ = ["parse_jepsen_log", "parse_kv_edn"]

_JEPSEN_LINE = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$")
_INT = re.compile(r"^-?\d+$")
_PAIR = re.compile(r"^\[\s*(-?\d+)\s+(-?\d+)\s*\]$")


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        yield from enumerate(f, start=1)


def _jepsen_value(text: str) -> Any:
    if text == "nil":
        return None
    if _INT.match(text):
        return int(text)
    m = _PAIR.match(text)
    if m:
        return (int(m.group(1)), int(m.group(2)))
    if text.startswith(":"):
        return text  # a keyword such as :timed-out
    raise ValueError(f"unreadable value {text!r}")


def parse_jepsen_log(path: str | os.PathLike[str]) -> list[Operation]:
    """Parse a Jepsen etcd register log into operations for `register_model()`.

    Inputs: ("read",), ("write", v), ("cas", expected, new). `:fail :read :timed-out`
    is a read with an UNKNOWN output returning at that line (a read has no effect, so
    when it ended is all we know); `:info` (timed-out write or cas) and an invoke never
    completed are unknown outcomes (`return_time=None`); `:fail` on a write or cas did
    not happen and is dropped. Lines of other loggers are ignored.
    """
    spath = os.fspath(path)
    pending: dict[int, tuple[Any, float, int]] = {}
    ops: list[Operation] = []
    for no, line in _lines(spath):
        if "jepsen.util" not in line:
            continue
        m = _JEPSEN_LINE.match(line)
        if m is None:
            raise HistoryParseError(spath, no, line, "not a Jepsen register event")
        process = int(m.group(1))
        kind, f, raw = m.group(2), m.group(3), m.group(4)
        try:
            value = _jepsen_value(raw)
        except ValueError as exc:
            raise HistoryParseError(spath, no, line, str(exc)) from exc
        t = float(no)
        if kind == "invoke":
            if process in pending:
                raise HistoryParseError(
                    spath,
                    no,
                    line,
                    f"process {process} invokes while its line {pending[process][2]} operation is still open",
                )
            if f == "read":
                inp: Any = ("read",)
            elif f == "write":
                if not isinstance(value, int):
                    raise HistoryParseError(spath, no, line, "a write needs an integer")
                inp = ("write", value)
            else:
                if not isinstance(value, tuple):
                    raise HistoryParseError(spath, no, line, "a cas needs [expected new]")
                inp = ("cas", value[0], value[1])
            pending[process] = (inp, t, no)
            continue
        if process not in pending:
            raise HistoryParseError(spath, no, line, f"process {process} completes nothing")
        inp, call, _call_no = pending.pop(process)
        if inp[0] != f:
            raise HistoryParseError(spath, no, line, f"completes a {inp[0]} invoked as {f}")
        if kind == "ok":
            if f == "read":
                if value is not None and not isinstance(value, int):
                    raise HistoryParseError(spath, no, line, "a read returns nil or an integer")
                ops.append(Operation(process, inp, call, value, t))
            elif f == "write":
                ops.append(Operation(process, inp, call, None, t))
            else:
                ops.append(Operation(process, inp, call, True, t))
        elif kind == "fail":
            if f == "read":
                ops.append(Operation(process, inp, call, UNKNOWN, t))
            # A failed write or cas certainly did not take effect: drop it.
        else:  # info
            ops.append(Operation(process, inp, call, UNKNOWN, None))
    for process, (inp, call, _no) in pending.items():
        ops.append(Operation(process, inp, call, UNKNOWN, None))
    return ops


# --- EDN ------------------------------------------------------------------------------

_EDN_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>[{\[(])
      | (?P<close>[}\])])
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<kw>:[^\s,{}\[\]()"]+)
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![^\s,{}\[\]()"])
      | (?P<sym>[^\s,{}\[\]()"]+)
    )[\s,]*""",
    re.VERBOSE,
)
_EDN_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_CLOSERS = {"{": "}", "[": "]", "(": ")"}


class _Keyword(str):
    """An EDN keyword (`:ok`), kept apart from strings so `:ok` never equals "ok"."""


def _edn_string(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_EDN_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _edn_read(text: str) -> Any:
    """Read one EDN value (maps, vectors, lists, strings, keywords, numbers, nil, booleans)."""
    pos = 0
    stack: list[tuple[str, list[Any]]] = []
    result: list[Any] = []
    while pos < len(text):
        m = _EDN_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unreadable EDN at column {pos + 1}")
        pos = m.end()
        value: Any
        if m.group("open"):
            stack.append((m.group("open"), []))
            continue
        if m.group("close"):
            if not stack or _CLOSERS[stack[-1][0]] != m.group("close"):
                raise ValueError(f"unbalanced {m.group('close')!r}")
            opener, items = stack.pop()
            if opener == "{":
                if len(items) % 2:
                    raise ValueError("a map needs an even number of forms")
                value = dict(zip(items[::2], items[1::2], strict=True))
            else:
                value = tuple(items)
        elif m.group("str") is not None:
            value = _edn_string(m.group("str")[1:-1])
        elif m.group("kw"):
            value = _Keyword(m.group("kw"))
        elif m.group("num"):
            num = m.group("num")
            value = float(num) if any(c in num for c in ".eE") else int(num)
        else:
            sym = m.group("sym")
            if sym not in ("nil", "true", "false"):
                raise ValueError(f"unsupported EDN symbol {sym!r}")
            value = {"nil": None, "true": True, "false": False}[sym]
        if stack:
            stack[-1][1].append(value)
        else:
            result.append(value)
    if stack:
        raise ValueError("unterminated collection")
    if len(result) != 1:
        raise ValueError(f"expected one EDN value per line, found {len(result)}")
    return result[0]


def parse_kv_edn(path: str | os.PathLike[str]) -> list[Operation]:
    """Parse a Jepsen-style EDN KV history into operations for `kv_model()`.

    One map a line: `{:process P, :type :invoke|:ok|:fail|:info, :f F, :key K, :value V}`
    with F in :get, :put, :append, :delete, :cas (value `[expected new]`). Events of a
    non-integer process (the nemesis) are skipped.

    These histories (Porcupine's) read a never-written key as "", where our model
    answers None. A get returning "" is read as "absent" when nothing in the history
    writes an empty value to that key; otherwise "" would be ambiguous and the parser
    raises `HistoryParseError` rather than guess.
    """
    spath = os.fspath(path)
    pending: dict[int, tuple[Any, float, int]] = {}
    raw_ops: list[tuple[Operation, int, str]] = []
    empty_writes: set[Any] = set()
    for no, line in _lines(spath):
        if not line.strip():
            continue
        try:
            event = _edn_read(line)
        except (ValueError, KeyError, IndexError) as exc:
            raise HistoryParseError(spath, no, line, str(exc)) from exc
        if not isinstance(event, dict):
            raise HistoryParseError(spath, no, line, "an event must be an EDN map")
        process = event.get(_Keyword(":process"))
        if not isinstance(process, int) or isinstance(process, bool):
            continue
        kind = event.get(_Keyword(":type"))
        f = event.get(_Keyword(":f"))
        key = event.get(_Keyword(":key"))
        value = event.get(_Keyword(":value"))
        when = event.get(_Keyword(":time"))
        t = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else float(no)
        if not isinstance(f, _Keyword):
            raise HistoryParseError(spath, no, line, "an event needs an :f keyword")
        if kind == ":invoke":
            if process in pending:
                raise HistoryParseError(
                    spath,
                    no,
                    line,
                    f"process {process} invokes while its line {pending[process][2]} operation is still open",
                )
            if f == ":get":
                inp: Any = ("get", key)
            elif f in (":put", ":append"):
                inp = (f[1:], key, value)
                if value == "" or value == b"":
                    empty_writes.add(key)
            elif f == ":delete":
                inp = ("delete", key)
            elif f == ":cas":
                if not (isinstance(value, tuple) and len(value) == 2):
                    raise HistoryParseError(spath, no, line, "a cas value is [expected new]")
                inp = ("cas", key, value[0], value[1])
                if value[1] == "":
                    empty_writes.add(key)
            else:
                raise HistoryParseError(spath, no, line, f"unknown operation {f!r}")
            pending[process] = (inp, t, no)
            continue
        if kind not in (":ok", ":fail", ":info"):
            raise HistoryParseError(spath, no, line, f"unknown event type {kind!r}")
        if process not in pending:
            raise HistoryParseError(spath, no, line, f"process {process} completes nothing")
        inp, call, _call_no = pending.pop(process)
        if inp[0] != f[1:] or inp[1] != key:
            raise HistoryParseError(spath, no, line, f"does not complete its invoke {inp!r}")
        if kind == ":fail":
            continue  # certainly did not take effect
        if kind == ":info":
            raw_ops.append((Operation(process, inp, call, UNKNOWN, None), no, line))
            continue
        output: Any = None
        if inp[0] == "get":
            output = value
        elif inp[0] == "cas":
            output = True
        raw_ops.append((Operation(process, inp, call, output, t), no, line))
    ops: list[Operation] = []
    for op, no, line in raw_ops:
        if op.input[0] == "get" and op.output == "":
            if op.input[1] in empty_writes:
                raise HistoryParseError(
                    spath,
                    no,
                    line,
                    'a get returned "" on a key the history also writes "" to: absent and empty cannot be told apart',
                )
            op = Operation(op.client_id, op.input, op.call, None, op.return_time)
        ops.append(op)
    for process, (inp, call, _no) in pending.items():
        ops.append(Operation(process, inp, call, UNKNOWN, None))
    return ops
