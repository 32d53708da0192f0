"""A deterministic simulator for the Raft core: seeded faults, safety and linearizability checks."""

from ._kv import KVStateMachine as KVStateMachine
from ._network import SimNetwork as SimNetwork
from ._simulation import SimResult as SimResult
from ._simulation import Simulation as Simulation
from ._simulation import replay_command as replay_command
from ._simulation import run_seed as run_seed
