"""A deterministic simulator of global_kv: the Raft core under seeded faults, replicas on
the production replica and real state machine, KV clients checked for linearizability, lock clients checked
for mutual exclusion with fencing, TTLs on skewed clocks and owner death."""

from ._network import SimNetwork as SimNetwork
from ._resource import FencedStore as FencedStore
from ._resource import TokenFence as TokenFence
from ._simulation import SimResult as SimResult
from ._simulation import Simulation as Simulation
from ._simulation import replay_command as replay_command
from ._simulation import run_seed as run_seed
