"""`global-kv ctl` turns the server's refusals into the right exit code and one line."""

from __future__ import annotations

import io

import pytest
import trio

from global_kv import InvalidRequest, RequestFailed, RequestTooLarge
from global_kv.cli import EXIT_OUTCOME, EXIT_USAGE, LocalCluster
from global_kv.cli import _main as cli_main
from global_kv.cli._ctl import map_error
from tests.cli.test_ctl import ctl, one_line


def test_typed_refusals_map_to_usage_and_failures_to_outcome() -> None:
    assert map_error(InvalidRequest("key", "is empty")).exit_code == EXIT_USAGE  # type: ignore[union-attr]
    assert map_error(RequestTooLarge("value", "is too big")).exit_code == EXIT_USAGE  # type: ignore[union-attr]
    assert map_error(RequestFailed("KeyError: 'x'")).exit_code == EXIT_OUTCOME  # type: ignore[union-attr]


async def test_invalid_requests_exit_2_with_one_line_naming_the_field() -> None:
    with trio.fail_after(60):
        async with LocalCluster(3, metrics=False, config={"max_request_bytes": 2048}) as cluster:
            await cluster.wait_for_leader()
            code, out, err = await ctl(cluster, "get", "")
            assert (code, out) == (EXIT_USAGE, "") and "key" in one_line(err), err
            code, out, err = await ctl(cluster, "get", "k" * 511)
            assert (code, out) == (EXIT_USAGE, "") and "key" in one_line(err) and "511" in err, err
            code, out, err = await ctl(cluster, "put", "k", "v" * 4096)
            assert (code, out) == (EXIT_USAGE, ""), err
            one_line(err)
            assert (await ctl(cluster, "put", "k", "v"))[0] == 0


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("boom"), ExceptionGroup("unhandled errors in a TaskGroup", [KeyError("x"), ValueError("y")])],
)
def test_an_unexpected_exception_is_one_line_and_exit_1(
    exc: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise exc

    monkeypatch.setattr(cli_main, "run_ctl", broken)
    env = {"BOOTSTRAP": "n1@localhost=ws://127.0.0.1:9", "COOKIE": "c"}
    assert cli_main.main(["ctl", "get", "k"], env=env) == EXIT_OUTCOME
    captured = capsys.readouterr()
    assert captured.out == "" and "unexpected error" in one_line(captured.err)

    async def in_process() -> int:
        return await cli_main.ctl(["get", "k"], env=env, out=io.StringIO(), err=err)

    err = io.StringIO()
    assert trio.run(in_process) == EXIT_OUTCOME and "unexpected error" in one_line(err.getvalue())
