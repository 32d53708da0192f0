"""Recorded client histories on a real cluster, checked with the project's linearizability checker.

Clients on every member run put / get / CAS / delete on a few keys while the leader
is stopped. Reads at `linearizable` and `read_index` must make the
whole history linearizable; `follower` reads may be stale and are left out of the
check (a separate assertion shows they can be).
"""

from __future__ import annotations

import random
from typing import Any

import trio

from global_kv import CASFailed, GlobalKVError, Unavailable
from global_kv.checker import Operation, check_operations, kv_model
from global_kv.client import open_client

from .test_global_cluster import NAMES, cluster, leader_of

KEYS = ["a", "b", "c"]


async def run_client(
    node: Any, client_id: int, history: list[Operation], seed: int, level: str, deadline: float
) -> None:
    rng = random.Random(seed)
    async with open_client(node, NAMES, timeout=3, try_timeout=0.5) as c:
        counter = 0
        while trio.current_time() < deadline:
            key = rng.choice(KEYS)
            roll = rng.random()
            counter += 1
            value = f"{client_id}-{counter}".encode()
            start = trio.current_time()
            if roll < 0.35:
                op_input: Any = ("put", key, value)
                call = c.put(key, value)
            elif roll < 0.75:
                op_input = ("get", key)
                call = c.get(key, consistency=level)
            elif roll < 0.9:
                expected = f"{rng.randrange(8)}-{rng.randrange(1, counter + 1)}".encode()
                op_input = ("cas", key, expected, value)
                call = c.cas(key, expected, value)
            else:
                op_input = ("delete", key)
                call = c.delete(key)
            try:
                result = await call
            except CASFailed:
                history.append(Operation(client_id, op_input, start, False, trio.current_time()))
                continue
            except (Unavailable, GlobalKVError):
                # Unknown outcome: may have taken effect, at any time after the call.
                if op_input[0] != "get":
                    history.append(Operation(client_id, op_input, start, None, None))
                continue
            output = True if op_input[0] == "cas" else (result if op_input[0] == "get" else None)
            history.append(Operation(client_id, op_input, start, output, trio.current_time()))


async def test_linearizable_and_read_index_histories_under_leader_failover() -> None:
    for level in ("linearizable", "read_index"):
        history: list[Operation] = []
        with trio.fail_after(90):
            async with cluster() as nodes:
                async with open_client(nodes[NAMES[0]], NAMES) as probe:
                    leader = await leader_of(probe)
                deadline = trio.current_time() + 4
                async with trio.open_nursery() as n:
                    for i in range(6):
                        n.start_soon(run_client, nodes[NAMES[i % 3]], i, history, 1000 + i, level, deadline)
                    await trio.sleep(1.5)
                    # The leader goes away mid-run (a memory-storage replica may not come back:
                    # it would have forgotten its vote); the other two go on.
                    await nodes[leader].application_stop("global")
        completed = [op for op in history if op.return_time is not None]
        assert len(completed) > 100, f"too few operations completed ({len(completed)})"
        result = check_operations(kv_model(), history, timeout=60)
        assert result.ok is True, f"{level}: {result.info}"
