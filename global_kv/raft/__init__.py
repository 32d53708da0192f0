"""Sans-IO Raft: a pure state machine. No trio, no clock, no sockets, no disk."""

from ._log_types import ConfState as ConfState
from ._log_types import Entry as Entry
from ._log_types import EntryType as EntryType
from ._log_types import HardState as HardState
from ._log_types import SnapshotMeta as SnapshotMeta
