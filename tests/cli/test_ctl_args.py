"""`global-kv ctl` refuses malformed numeric flags before connecting: exit 2, one line naming the flag."""

from __future__ import annotations

import io
import os

import pytest

from global_kv.cli import EXIT_USAGE
from global_kv.cli import ctl as run_ctl
from global_kv.cli._main import build_parser

# Nothing listens there: a flag that passed validation would fail later with another exit code.
ENV = {"BOOTSTRAP": "n1@localhost=ws://127.0.0.1:9", "COOKIE": "c"}

BAD = [
    (["lock", "k", "--ttl", "-5"], "--ttl"),
    (["lock", "k", "--ttl", "nan"], "--ttl"),
    (["lock", "k", "--ttl", "inf"], "--ttl"),
    (["lock", "k", "--wait", "-1"], "--wait"),
    (["lock", "k", "--wait", "soon"], "--wait"),
    (["lock", "k", "--duration", "0"], "--duration"),
    (["lock", "k", "--duration", "-1"], "--duration"),
    (["lock", "k", "--duration", "-inf"], "--duration"),
    (["range", "a", "b", "--limit", "-1"], "--limit"),
    (["prefix", "a", "--limit", "1.5"], "--limit"),
    (["get", "k", "--timeout", "0"], "--timeout"),
    (["get", "k", "--timeout", "-2"], "--timeout"),
    (["--timeout", "NaN", "get", "k"], "--timeout"),
    (["unlock", "k", "x"], "TOKEN"),
    (["unlock", "k", "0"], "TOKEN"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD)
async def test_bad_numeric_flag_exits_2_naming_it(argv: list[str], flag: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert await run_ctl(argv, env=ENV, out=out, err=err) == EXIT_USAGE
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in lines[0], err.getvalue()
    assert out.getvalue() == ""


def test_good_values_parse_and_zero_has_its_documented_meaning() -> None:
    args = build_parser().parse_args(["ctl", "lock", "k", "--ttl", "0", "--wait", "0", "--duration", "0.5"])
    assert (args.ttl, args.wait, args.duration) == (0.0, 0.0, 0.5)
    assert build_parser().parse_args(["ctl", "lock", "k"]).duration is None  # held until Ctrl-C
    assert build_parser().parse_args(["ctl", "prefix", "p", "--limit", "0"]).limit == 0


def test_keys_and_values_that_are_not_utf8_are_taken_as_their_raw_bytes() -> None:
    key, value = os.fsdecode(b"k\xff"), os.fsdecode(b"\x80v")  # as Python hands such argv over
    args = build_parser().parse_args(["ctl", "put", key, value])
    assert (args.key, args.value) == (b"k\xff", b"\x80v")
    args = build_parser().parse_args(["ctl", "range", os.fsdecode(b"\xfe"), ""])
    assert (args.start, args.end) == (b"\xfe", b"")
