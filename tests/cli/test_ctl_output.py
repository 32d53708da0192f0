"""`global-kv ctl` output of bytes: exact with --raw / -o, unambiguous when readable, escaped TSV for scans."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from global_kv.cli import EXIT_OUTCOME, LocalCluster
from global_kv.cli._format import escape, readable_message, tsv_row, unescape
from tests.cli.test_ctl import ctl, one_line

BINARY = b"\x00b'abc'\xff\n"


def test_escape_is_one_line_and_reversible() -> None:
    for value in (b"plain", "h\u00e9llo".encode(), b"a\tb\nc\\d\r", b"\xff\x00", "zw\u200b".encode(), BINARY):
        text = escape(value)
        assert "\n" not in text and "\t" not in text and unescape(text) == value
    assert escape(b"b'abc'") == "b'abc'" and escape(b"\xffabc") == "\\xffabc"
    assert tsv_row(b"k\tx", b"v\n") == "k\\tx\tv\\n"


def test_error_messages_show_keys_as_text_and_round_durations() -> None:
    message = "lock b'job\\xff' was not acquired within 0.8383051339769736 s; see 127.0.0.1"
    assert readable_message(message) == "lock job\\xff was not acquired within 0.838 s; see 127.0.0.1"


async def run(cluster: LocalCluster, *argv: bytes, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    env = {"BOOTSTRAP": cluster.bootstrap, "COOKIE": cluster.cookie, "PATH": "/usr/bin:/bin"}
    result = await trio.run_process(
        [sys.executable.encode(), b"-m", b"global_kv.cli", b"ctl", *argv],
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return result.returncode, result.stdout, result.stderr


async def test_get_raw_output_file_and_readable_forms(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False) as cluster:
            await cluster.wait_for_leader()
            key = b"bin\xfekey"  # not UTF-8: taken as raw argv bytes
            assert (await run(cluster, b"put", key, b"-", stdin=BINARY))[0] == 0  # NUL cannot be in argv
            assert await run(cluster, b"get", key, b"--raw") == (0, BINARY, b"")
            target = tmp_path / "value"
            assert await run(cluster, b"get", key, b"-o", os.fsencode(target)) == (0, b"", b"")
            assert target.read_bytes() == BINARY
            code, out, err = await run(cluster, b"get", key)  # readable: escaped, and stderr says so
            assert code == 0 and out == b"\\x00b'abc'\\xff\\n\n" and b"escaped" in err
            assert await ctl(cluster, "put", "text", "b'abc'") == (0, "OK\n", "")
            assert await ctl(cluster, "get", "text") == (0, "b'abc'\n", "")  # text as is, no note
            assert (await ctl(cluster, "put", "tab\tkey", "line1\nline2\\"))[0] == 0
            code, out, _ = await ctl(cluster, "range", "", "")
            assert out.splitlines() == [
                "bin\\xfekey\t\\x00b'abc'\\xff\\n",
                "tab\\tkey\tline1\\nline2\\\\",
                "text\tb'abc'",
            ]
            code, out, err = await run(cluster, b"get", b"missing\xff", b"-o", os.fsencode(tmp_path / "none"))
            assert (code, out) == (EXIT_OUTCOME, b"") and not (tmp_path / "none").exists()
            assert one_line(err.decode()) == "global-kv ctl: key missing\\xff not found"
            code, _, err = await run(cluster, b"get", key, b"-o", os.fsencode(tmp_path / "no" / "dir"))
            assert code == EXIT_OUTCOME and "cannot write" in one_line(err.decode())
