"""A follower whose acknowledged log is gone (a lost disk) stops with `LogLost`, never silently.

Raft §5.3 / Figure 2: a leader's match index for a follower is what that follower
acknowledged as durable, and heartbeats carry the commit index capped at it. A follower
whose log ends before that commit index lost entries Raft counted on it (and the term and
vote that went with them), so it must not go on under its old identity (etcd panics here
too: "Was the raft log corrupted, truncated, or lost?").
"""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster, elect

from global_kv import RaftInvariantError
from global_kv._errors import LogLost
from global_kv.raft import Heartbeat, RaftNode
from global_kv.sim._replica import SimDisk

IDS = ["a", "b", "c"]


def _lose_disk(c: Cluster, node_id: str, *, bootstrapped: bool) -> RaftNode:
    """Restart `node_id` on an empty disk: as a first start named in BOOTSTRAP, or as a new node."""
    rng = random.Random(f"lost-{node_id}")
    node = RaftNode.bootstrap(node_id, IDS, c.cfg, rng) if bootstrapped else RaftNode(node_id, c.cfg, rng)
    c.nodes[node_id] = node
    c.stores[node_id] = SimDisk()
    c.applied[node_id] = []
    return node


@pytest.mark.parametrize("bootstrapped", [True, False], ids=["named-in-bootstrap", "not-in-bootstrap"])
def test_a_follower_restarted_on_an_empty_log_stops_with_log_lost(bootstrapped: bool) -> None:
    c = elect(IDS, "a")
    for i in range(5):
        c.propose("a", b"%d" % i)
    c.tick(n=2)
    commit = c.nodes["a"].status().commit
    assert commit >= 7 and c.nodes["c"].status().commit == commit
    _lose_disk(c, "c", bootstrapped=bootstrapped)
    with pytest.raises(LogLost) as caught:
        c.tick(["a"], n=2)
    err = caught.value
    assert isinstance(err, RaftInvariantError)  # a broken invariant: the replica must stop
    assert (err.replica, err.leader, err.commit) == ("c", "a", commit)
    assert err.last_index == (1 if bootstrapped else 0)
    text = str(err)
    assert "global-kv ctl remove-peer" in text and "global-kv ctl add-peer" in text and "\n" not in text


def test_a_lagging_follower_with_its_log_is_caught_up_not_stopped() -> None:
    """The contrast: a follower that missed entries (partitioned), but kept what it acknowledged."""
    c = elect(IDS, "a")
    c.isolate("c")
    for i in range(20):
        c.propose("a", b"%d" % i)
    c.heal()
    c.sent.clear()
    c.tick(n=5)
    beats = [m for m in c.sent if isinstance(m, Heartbeat) and m.dst == "c"]
    assert beats and beats[0].commit <= 2  # capped at what c holds, not at the leader's commit
    assert c.nodes["c"].status().commit == c.nodes["a"].status().commit
    assert c.data_applied("c") == [b"%d" % i for i in range(20)]
