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
    """A key-value store, checked one key at a time (operations touch exactly one key).

    The state of a partition is the key's value, None when absent. Inputs:
    ("get", k) -> value or None; ("put", k, v) -> None; ("delete", k) -> None;
    ("cas", k, expected, new) -> bool (expected None: k must be absent; new None: delete);
    ("append", k, v) -> None (concatenation; an absent key counts as empty).
    """

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        by_key: dict[Any, list[Operation]] = {}
        for op in ops:
            try:
                key = op.input[1]
                by_key.setdefault(key, []).append(op)
            except (IndexError, TypeError) as exc:
                raise InvalidHistory("a kv operation input is (name, key, ...)", op) from exc
        return list(by_key.values())

    def init(self) -> Hashable:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "get":
            return (output is UNKNOWN or output == state), state
        if kind == "put":
            return True, input[2]
        if kind == "append":
            value = input[2]
            if state is None:
                return True, value
            try:
                return True, state + value
            except TypeError as exc:
                raise InvalidHistory(
                    f"cannot append {value!r} to the value {state!r} (mixed str and bytes?)",
                    input,
                ) from exc
        if kind == "delete":
            return True, None
        if kind == "cas":
            matches = state == input[2]
            return _cas_output_ok(output, matches, input), (input[3] if matches else state)
        raise InvalidHistory(f"unknown kv operation {input!r}", input)

    def is_read_only(self, input: Any) -> bool:
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
        return super().describe_operation(input, output)

    def describe_partition(self, ops: Sequence[Operation]) -> str:
        return f"key {ops[0].input[1]!r}" if ops else ""


def register_model() -> Model:
    """The single-register model (read / write / cas) of the Jepsen etcd histories."""
    return RegisterModel()


def kv_model() -> Model:
    """global_kv's key-value model (get / put / delete / cas / append), partitioned per key."""
    return KVModel()
