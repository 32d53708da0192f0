"""The history parsers: Jepsen's completion rules and the EDN reader, on small temp files."""

from __future__ import annotations

from pathlib import Path

import pytest

from global_kv.checker import (
    UNKNOWN,
    HistoryParseError,
    Operation,
    check_operations,
    kv_model,
    parse_jepsen_log,
    parse_kv_edn,
    register_model,
)


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _j(process: int, kind: str, f: str, value: str) -> str:
    return f"INFO  jepsen.util - {process}\t:{kind}\t:{f}\t{value}"


def test_jepsen_completion_rules(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "h.log",
        [
            _j(0, "invoke", "write", "3"),  # 1
            _j(0, "ok", "write", "3"),  # 2
            _j(1, "invoke", "cas", "[3 4]"),  # 3
            _j(1, "fail", "cas", "[3 4]"),  # 4: did not happen -> dropped
            _j(2, "invoke", "cas", "[3 1]"),  # 5
            _j(2, "info", "cas", ":timed-out"),  # 6: unknown outcome
            "INFO  jepsen.core - some other logger line",
            _j(3, "invoke", "read", "nil"),  # 8
            _j(3, "fail", "read", ":timed-out"),  # 9: read, result unknown
            _j(4, "invoke", "read", "nil"),  # 10
            _j(4, "ok", "read", "nil"),  # 11
            _j(5, "invoke", "cas", "[1 2]"),  # 12
            _j(5, "ok", "cas", "[1 2]"),  # 13
            _j(6, "invoke", "write", "9"),  # 14: never completes -> unknown outcome
        ],
    )
    ops = parse_jepsen_log(path)
    assert ops == [
        Operation(0, ("write", 3), 1.0, None, 2.0),
        Operation(2, ("cas", 3, 1), 5.0, UNKNOWN, None),
        Operation(3, ("read",), 8.0, UNKNOWN, 9.0),
        Operation(4, ("read",), 10.0, None, 11.0),
        Operation(5, ("cas", 1, 2), 12.0, True, 13.0),
        Operation(6, ("write", 9), 14.0, UNKNOWN, None),
    ]
    # Only linearizable because the timed-out cas(3, 1) took effect after the read of nil
    # ... which is impossible: write(3) was acknowledged before that read began.
    assert check_operations(register_model(), ops).ok is False
    assert check_operations(register_model(), [o for o in ops if o.client_id != 4]).ok is True


@pytest.mark.parametrize(
    "lines",
    [
        [
            _j(0, "invoke", "read", "nil"),
            _j(0, "invoke", "read", "nil"),
        ],  # two open ops
        [_j(0, "ok", "read", "nil")],  # completes nothing
        [_j(0, "invoke", "read", "nil"), _j(0, "ok", "write", "1")],  # wrong function
        [_j(0, "invoke", "write", "x")],  # unreadable value
        ["INFO  jepsen.util - garbage"],
    ],
)
def test_jepsen_parse_errors_name_the_line(tmp_path: Path, lines: list[str]) -> None:
    path = _write(tmp_path, "bad.log", lines)
    with pytest.raises(HistoryParseError) as err:
        parse_jepsen_log(path)
    assert err.value.line_no == len(lines)
    assert "bad.log" in str(err.value)


def _e(process: object, kind: str, f: str, key: str, value: str) -> str:
    return f'{{:process {process}, :type :{kind}, :f :{f}, :key "{key}", :value {value}}}'


def test_edn_completion_rules_and_absent_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "h.txt",
        [
            _e(0, "invoke", "get", "a", "nil"),  # 1
            _e(0, "ok", "get", "a", '""'),  # 2: "" from a never-written key -> None
            _e(1, "invoke", "append", "a", '"x \\"1\\" y"'),  # 3
            _e(1, "ok", "append", "a", '"x \\"1\\" y"'),  # 4
            _e(2, "invoke", "put", "b", '"v"'),  # 5
            _e(2, "fail", "put", "b", '"v"'),  # 6: dropped
            _e(":nemesis", "info", "start", "n", "nil"),  # 7: skipped
            _e(3, "invoke", "put", "b", '"w"'),  # 8
            _e(3, "info", "put", "b", '"w"'),  # 9: unknown outcome
            "",
            _e(4, "invoke", "cas", "b", '["w" "z"]'),  # 11
            _e(4, "ok", "cas", "b", '["w" "z"]'),  # 12
            _e(5, "invoke", "delete", "a", "nil"),  # 13: never completes
        ],
    )
    ops = parse_kv_edn(path)
    assert ops == [
        Operation(0, ("get", "a"), 1.0, None, 2.0),
        Operation(1, ("append", "a", 'x "1" y'), 3.0, None, 4.0),
        Operation(3, ("put", "b", "w"), 8.0, UNKNOWN, None),
        Operation(4, ("cas", "b", "w", "z"), 11.0, True, 12.0),
        Operation(5, ("delete", "a"), 13.0, UNKNOWN, None),
    ]
    assert check_operations(kv_model(), ops).ok is True


def test_edn_uses_the_time_field_when_present(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "t.txt",
        [
            '{:process 0, :type :invoke, :f :put, :key "k", :value "v", :time 1000}',
            '{:process 0, :type :ok, :f :put, :key "k", :value "v", :time 2500}',
        ],
    )
    assert parse_kv_edn(path) == [Operation(0, ("put", "k", "v"), 1000.0, None, 2500.0)]


def test_edn_refuses_to_guess_between_absent_and_empty(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "amb.txt",
        [
            _e(0, "invoke", "put", "k", '""'),
            _e(0, "ok", "put", "k", '""'),
            _e(0, "invoke", "get", "k", "nil"),
            _e(0, "ok", "get", "k", '""'),
        ],
    )
    with pytest.raises(HistoryParseError) as err:
        parse_kv_edn(path)
    assert err.value.line_no == 4


@pytest.mark.parametrize(
    "line",
    [
        '{:process 0, :type :invoke, :f :get, :key "k"',  # unterminated
        '{:process 0, :type :invoke, :f :frobnicate, :key "k", :value nil}',
        '{:process 0, :type :ok, :f :get, :key "k", :value nil}',  # completes nothing
        "[1 2 3]",  # not a map
        "{:process 0 :type}",  # odd map
    ],
)
def test_edn_parse_errors(tmp_path: Path, line: str) -> None:
    with pytest.raises(HistoryParseError):
        parse_kv_edn(_write(tmp_path, "bad.txt", [line]))
