"""Network partitions for the nemesis: which node pairs a partition kind cuts, and holding it.

Kinds (every one held longer than the election timeout; an isolated leader always
longer than the lock TTL, the others sometimes):
- `partition-leader`: the current leader cut from every other member;
- `partition-random`: one random member cut from the others (a minority of one);
- `partition-majority`: the members split in two, the smaller side (n // 2) cut from
  the larger; the target node is on the smaller side;
- `partition-bridge`: two sides that share one node, the target, which reaches
  everyone while the sides cannot reach each other (for 3 nodes: the bridge and two
  nodes cut from each other; for 5: {a, b, bridge} and {bridge, c, d}).
The mode, "drop" or "reset" (see `_proxy`), comes from the fault's seeded `pick`.

Cuts are made in the `ProxyMesh` between the nodes only: clients keep reaching the
node they talk to (a partition between servers, as in a data centre). At the end of a
cut, before healing, no node on a side too small for a majority may still say it
leads: CheckQuorum makes an isolated leader step down within two election timeouts,
and every cut lasts at least three. `plan_partition`
is pure, so it is tested without a cluster. Nothing here may leave a cut in place:
`hold_partition` heals in `finally`, and the nemesis's `heal` clears every cut.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import product
from typing import Any

import trio

from global_kv.cli import LocalCluster

from ._proxy import ProxyError, ProxyMesh, open_proxy_mesh

__all__ = [
    "PARTITION_KINDS",
    "PartitionPlan",
    "hold_partition",
    "open_cluster",
    "partition_duration",
    "plan_partition",
]

PARTITION_KINDS = ("partition-leader", "partition-random", "partition-majority", "partition-bridge")


def _short(name: str) -> str:
    return name.partition("@")[0]


@dataclass(frozen=True)
class PartitionPlan:
    """The node pairs to cut, the sides as the nodes see them (for the report), the mode."""

    kind: str
    sides: tuple[tuple[str, ...], ...]
    cuts: tuple[tuple[str, str], ...]
    mode: str

    def minority(self) -> tuple[str, ...]:
        """The nodes on a side without a majority of the members (none for a bridge)."""
        members = {n for side in self.sides for n in side}
        small = [side for side in self.sides if 2 * len(side) <= len(members)] if self.cuts else []
        return tuple(n for side in small for n in side)

    def __str__(self) -> str:
        if not self.cuts:
            return f"no cut: {len(self.sides[0]) if self.sides else 0} members are too few for {self.kind}"
        sides = " | ".join(" ".join(_short(n) for n in side) for side in self.sides)
        return f"{sides} ({self.mode})"


def partition_duration(kind: str, rng: random.Random, ttl: float, election_timeout: float) -> float:
    """How long a partition of `kind` lasts: past the election timeout, an isolated leader past the TTL."""
    if kind not in PARTITION_KINDS:
        raise ProxyError(f"not a partition kind: {kind!r}")
    if kind == "partition-leader":
        # The isolated leader's lock holders lose their lease while it cannot commit anything.
        return rng.uniform(ttl + 0.5, ttl + 2.0)
    return rng.uniform(3 * election_timeout, ttl + 1.5)


def partition_mode(pick: int) -> str:
    """Drop or reset, from bits of `pick` that the target choice (pick % members) hardly uses."""
    return "reset" if (pick >> 8) & 1 else "drop"


def plan_partition(kind: str, members: Sequence[str], target: str, pick: int) -> PartitionPlan:
    """The cut for `kind` among `members`, built around `target` (the leader, or a node picked)."""
    if kind not in PARTITION_KINDS:
        raise ProxyError(f"not a partition kind: {kind!r}")
    if target not in members:
        raise ProxyError(f"partition target {target} is not a member of {list(members)}")
    mode = partition_mode(pick)
    others = [m for m in members if m != target]
    random.Random(pick).shuffle(others)
    if kind == "partition-bridge":
        if len(others) < 2:
            return PartitionPlan(kind, (tuple(members),), (), mode)
        left, right = others[: len(others) // 2], others[len(others) // 2 :]
        cuts = tuple(product(left, right))
        return PartitionPlan(kind, ((*left, target), (target, *right)), cuts, mode)
    if not others:
        return PartitionPlan(kind, (tuple(members),), (), mode)
    if kind == "partition-majority":
        small = [target, *others[: len(members) // 2 - 1]]
    else:  # partition-leader, partition-random: a minority of one
        small = [target]
    large = [m for m in others if m not in small]
    return PartitionPlan(kind, (tuple(small), tuple(large)), tuple(product(small, large)), mode)


async def hold_partition(
    mesh: ProxyMesh | None,
    plan: PartitionPlan,
    duration: float,
    leaders: Callable[[], Awaitable[set[str]]] | None = None,
) -> list[str]:
    """Cut the plan's pairs for `duration` seconds, then heal them (also on cancellation).

    With `leaders` (the nodes that say they lead now), returns the nodes of the
    plan's minority that still said so at the end of the cut: stale leaders.
    """
    if mesh is None:
        raise ProxyError(f"{plan.kind} needs the proxy mesh, but this run has partitions turned off")
    stale: list[str] = []
    try:
        for a, b in plan.cuts:
            mesh.cut(a, b, plan.mode)
        await trio.sleep(duration)
        if leaders is not None and plan.minority():
            stale = sorted(set(plan.minority()) & await leaders())
    finally:
        for a, b in plan.cuts:
            mesh.heal(a, b)
    return stale


@asynccontextmanager
async def open_cluster(
    nodes: int, *, partitions: bool, **options: Any
) -> AsyncIterator[tuple[LocalCluster, ProxyMesh | None]]:
    """A LocalCluster whose nodes dial each other through a ProxyMesh (when `partitions`).

    The mesh outlives the cluster: the nodes are stopped before the proxy closes, so a
    node never sees its peers vanish because the harness was tearing down.
    """
    if not partitions:
        async with LocalCluster(nodes, **options) as plain:
            yield plain, None
        return
    host = str(options.get("host", "127.0.0.1"))
    cluster: LocalCluster

    def resolve(name: str) -> tuple[str, int]:
        node = cluster.nodes[cluster.index_of(name)]  # KeyError while the cluster lays out: a reset
        return node.host, node.port

    async with open_proxy_mesh(resolve, host=host) as mesh:

        def routes(i: int) -> dict[str, str]:
            return mesh.routes_for(cluster.nodes[i].name, [n.name for n in cluster.nodes])

        cluster = LocalCluster(nodes, node_routes=routes, **options)
        async with cluster:
            yield cluster, mesh
