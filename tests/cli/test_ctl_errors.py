"""`global-kv ctl` turns the server's refusals into the right exit code and one line."""

from __future__ import annotations

import trio

from global_kv import InvalidRequest, RequestFailed, RequestTooLarge
from global_kv.cli import EXIT_OUTCOME, EXIT_USAGE, LocalCluster
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
