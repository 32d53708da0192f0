"""Leader election on Raft, as an actor to subclass: the project's one Raft shell.

`LeaderActor` gives a group of processes exactly one leader per term (PreVote,
CheckQuorum, persisted term and vote), callbacks on every transition, and a fencing
token per leadership. `GlobalActor` is built on it.
"""

from ._actor import LeaderActor as LeaderActor
from ._actor import leader_hint as leader_hint
from ._options import LeaderConfigError as LeaderConfigError
from ._options import LeaderOptions as LeaderOptions
from ._wire import RaftEnvelope as RaftEnvelope
from ._wire import peer_process as peer_process
