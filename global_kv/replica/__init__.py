"""The pure replica: everything a member decides, with no trio, no clock, no socket, no disk.

`RaftReplica` is one Raft member with its state machine (`Machine`: apply / snapshot /
restore); `GlobalReplica` adds the KV service and its locks. Both take inputs (Raft
messages, client requests, ticks, persisted Readies, owners' DOWNs, the lock check
period) and answer with effects (`Reply`, `Forward`, `Monitor`, ...) in order. The actor
shell (`global_kv.leader`, `global_kv.app`) and the simulator (`global_kv.sim`) drive
the same code; the first with real time, links and disks, the second with simulated
ones.
"""

from ._effects import AppliedEntries as AppliedEntries
from ._effects import Demonitor as Demonitor
from ._effects import Effect as Effect
from ._effects import Forward as Forward
from ._effects import MembershipChanged as MembershipChanged
from ._effects import Monitor as Monitor
from ._effects import Notify as Notify
from ._effects import Proposing as Proposing
from ._effects import Reply as Reply
from ._effects import RoleChanged as RoleChanged
from ._effects import UnwatchWatcher as UnwatchWatcher
from ._effects import WatchWatcher as WatchWatcher
from ._global_replica import MAX_HOPS as MAX_HOPS
from ._global_replica import GlobalReplica as GlobalReplica
from ._global_replica import ReplicaCounters as ReplicaCounters
from ._host import Host as Host
from ._machine import Machine as Machine
from ._machine import NullMachine as NullMachine
from ._options import ReplicaOptions as ReplicaOptions
from ._raft_replica import RaftReplica as RaftReplica
from ._raft_replica import needs_sync as needs_sync
from ._validate import MAX_LOCK_SECONDS as MAX_LOCK_SECONDS
from ._validate import READ_CONSISTENCIES as READ_CONSISTENCIES
from ._validate import Limits as Limits
from ._validate import check_forwarded as check_forwarded
from ._validate import check_request as check_request
