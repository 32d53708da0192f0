"""The two sequential specifications we check histories against: a register and a KV store.

`register_model()` is the single register of the Jepsen etcd histories; `kv_model()` is
global_kv's key-value interface, partitioned per key. They must never depend on how a
history was recorded or parsed; parsers translate into these inputs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ._errors import InvalidHistory
from ._history import UNKNOWN, Operation
from ._model import Model

__all__ = ["KVModel", "RegisterModel", "kv_model", "register_model"]


def _cas_output_ok(output: Any, matches: bool, input: Any) -> bool:
    if output is UNKNOWN:
        return True
    if output is True:
        return matches
    if output is False:
        return not matches
    raise InvalidHistory(f"a cas output must be True, False or UNKNOWN, got {output!r}", input)


def _fmt_out(output: Any) -> str:
    return "?" if output is UNKNOWN else repr(output)


class RegisterModel(Model):
    """One register, initially None (absent).

    Inputs: ("read",) -> value or None; ("write", v) -> None;
    ("cas", expected, new) -> bool (succeeds iff the value equals `expected`).
    """

    def init(self) -> Hashable:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "read":
            return (output is UNKNOWN or output == state), state
        if kind == "write":
            return True, input[1]
        if kind == "cas":
            matches = state == input[1]
            return _cas_output_ok(output, matches, input), (input[2] if matches else state)
        raise InvalidHistory(f"unknown register operation {input!r}", input)

    def is_read_only(self, input: Any) -> bool:
        return bool(input[0] == "read")

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        if kind == "read":
            return f"read() -> {_fmt_out(output)}"
        if kind == "write":
            return f"write({input[1]!r})" + (" -> ?" if output is UNKNOWN else "")
        if kind == "cas":
            return f"cas({input[1]!r}, {input[2]!r}) -> {_fmt_out(output)}"
        return super().describe_operation(input, output)


class KVModel(Model):
    """A key-value store, checked one group of keys at a time: the keys that transactions
    touch together form one partition (union of their key sets), every other key its own.

    The state of a partition is its keys' values, as a sorted tuple of (key, value) with
    absent keys left out. Inputs: ("get", k) -> value or None; ("put", k, v) -> None;
    ("delete", k) -> None; ("cas", k, expected, new) -> bool (expected None: k must be
    absent; new None: delete); ("append", k, v) -> None (concatenation; an absent key
    counts as empty); and ("txn", keys, compares, success, failure) -> (succeeded, reads):
    `keys` all the keys it names, `compares` a tuple of (k, expected) (expected None: k
    must be absent), each branch a tuple of ("put", k, v) / ("delete", k) / ("get", k),
    applied in order, `reads` the values the taken branch's gets saw (in etcd, a get
    inside a transaction sees the writes before it).
    """

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        parent: dict[Any, Any] = {}

        def find(key: Any) -> Any:
            while parent.setdefault(key, key) != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        keyed: list[tuple[Any, Operation]] = []
        for op in ops:
            try:
                keys = op.input[1] if op.input[0] == "txn" else (op.input[1],)
                first = find(keys[0])
                for other in keys[1:]:
                    parent[find(other)] = first
                keyed.append((keys[0], op))
            except (IndexError, TypeError) as exc:
                raise InvalidHistory("a kv operation input is (name, key, ...) or ('txn', keys, ...)", op) from exc
        groups: dict[Any, list[Operation]] = {}
        for key, op in keyed:
            groups.setdefault(find(key), []).append(op)
        return list(groups.values())

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "txn":
            return self._txn(state, input, output)
        key = input[1]
        current = _value_in(state, key)
        if kind == "get":
            return (output is UNKNOWN or output == current), state
        if kind == "put":
            return True, _with(state, key, input[2])
        if kind == "append":
            value = input[2]
            if current is None:
                return True, _with(state, key, value)
            try:
                return True, _with(state, key, current + value)
            except TypeError as exc:
                raise InvalidHistory(
                    f"cannot append {value!r} to the value {current!r} (mixed str and bytes?)",
                    input,
                ) from exc
        if kind == "delete":
            return True, _with(state, key, None)
        if kind == "cas":
            matches = current == input[2]
            return _cas_output_ok(output, matches, input), (_with(state, key, input[3]) if matches else state)
        raise InvalidHistory(f"unknown kv operation {input!r}", input)

    def _txn(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        _, _, compares, success, failure = input
        succeeded = all(_value_in(state, key) == expected for key, expected in compares)
        reads = []
        for op in success if succeeded else failure:
            if op[0] == "get":
                reads.append(_value_in(state, op[1]))
            elif op[0] == "put":
                state = _with(state, op[1], op[2])
            elif op[0] == "delete":
                state = _with(state, op[1], None)
            else:
                raise InvalidHistory(f"unknown operation {op!r} in a transaction", input)
        return (output is UNKNOWN or output == (succeeded, tuple(reads))), state

    def is_read_only(self, input: Any) -> bool:
        if input[0] == "txn":
            return all(op[0] == "get" for op in input[3] + input[4])
        return bool(input[0] == "get")

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        key = input[1]
        unk = " -> ?" if output is UNKNOWN else ""
        if kind == "get":
            return f"get({key!r}) -> {_fmt_out(output)}"
        if kind in ("put", "append"):
            return f"{kind}({key!r}, {input[2]!r}){unk}"
        if kind == "delete":
            return f"delete({key!r}){unk}"
        if kind == "cas":
            return f"cas({key!r}, {input[2]!r}, {input[3]!r}) -> {_fmt_out(output)}"
        if kind == "txn":
            return f"txn(if {list(input[2])!r} then {list(input[3])!r} else {list(input[4])!r}) -> {_fmt_out(output)}"
        return super().describe_operation(input, output)

    def describe_partition(self, ops: Sequence[Operation]) -> str:
        keys = sorted({k for op in ops for k in (op.input[1] if op.input[0] == "txn" else (op.input[1],))}, key=repr)
        return f"key {keys[0]!r}" if len(keys) == 1 else f"keys {', '.join(repr(k) for k in keys)}"


def _value_in(state: tuple[tuple[Any, Any], ...], key: Any) -> Any:
    for k, v in state:
        if k == key:
            return v
    return None


def _with(state: tuple[tuple[Any, Any], ...], key: Any, value: Any) -> tuple[tuple[Any, Any], ...]:
    """`state` with `key` set to `value` (None: absent), kept sorted so equal states are equal."""
    items = [(k, v) for k, v in state if k != key]
    if value is not None:
        items.append((key, value))
    return tuple(sorted(items, key=lambda kv: repr(kv[0])))


def register_model() -> Model:
    """The single-register model (read / write / cas) of the Jepsen etcd histories."""
    return RegisterModel()


def kv_model() -> Model:
    """global_kv's key-value model (get / put / delete / cas / append / txn), partitioned
    per key, or per group of keys that transactions touch together."""
    return KVModel()
