"""etcd's v3lock through the JSON gateway, where its edge cases live: a Lock without a
lease gets a session lease of its own (two such callers never hold the lock together), a
waiter whose client hangs up takes its key back (the next in line is not kept waiting for
it), and a watch stream's progress answer never runs ahead of what its watches delivered."""

from __future__ import annotations

import base64
import json

import trio

from .test_robustness import Api, api, http1, post, tcp  # noqa: F401 - the fixture


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def gateway(api: Api, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:  # noqa: F811
    status, answer = await http1(api.server, post(path, json.dumps(body).encode()))
    return status, json.loads(answer)


async def test_locks_without_a_lease_exclude_each_other(api: Api) -> None:  # noqa: F811
    with trio.fail_after(30):
        status, first = await gateway(api, "/v3/lock/lock", {"name": b64("job")})
        assert status == 200 and base64.b64decode(first["key"]).startswith(b"job/")  # type: ignore[arg-type]
        second: dict[str, object] = {}

        async def wait_in_line() -> None:
            second.update((await gateway(api, "/v3/lock/lock", {"name": b64("job")}))[1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_in_line)
            await trio.sleep(1.0)
            assert not second  # still waiting: the first holds it
            assert (await gateway(api, "/v3/lock/unlock", {"key": first["key"]}))[0] == 200
        assert second["key"] != first["key"]


async def test_a_waiter_that_hangs_up_leaves_the_line(api: Api) -> None:  # noqa: F811
    with trio.fail_after(30):
        _, lease = await gateway(api, "/v3/lease/grant", {"TTL": 600})
        _, holder = await gateway(api, "/v3/lock/lock", {"name": b64("pay"), "lease": lease["ID"]})
        _, other = await gateway(api, "/v3/lease/grant", {"TTL": 600})
        stream = await tcp(api.server)  # a waiter under a long lease, that leaves
        await stream.send_all(post("/v3/lock/lock", json.dumps({"name": b64("pay"), "lease": other["ID"]}).encode()))
        await trio.sleep(0.5)
        await stream.aclose()
        await trio.sleep(0.5)
        keys = (await gateway(api, "/v3/kv/range", {"key": b64("pay/"), "range_end": b64("pay0")}))[1]
        assert len(keys["kvs"]) == 1, keys  # type: ignore[arg-type]  # the holder's key only
        assert (await gateway(api, "/v3/lock/unlock", {"key": holder["key"]}))[0] == 200
        with trio.fail_after(5):  # the next caller gets it at once, not after the leaver's lease
            status, _ = await gateway(api, "/v3/lock/lock", {"name": b64("pay")})
        assert status == 200
