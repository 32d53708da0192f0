"""Storage: key-value engines, the durable Raft log, and the snapshot store.

Engines (one interface, `StorageEngine`; pick with `open_engine(name, data_dir)`):

- "memory" (MemoryStorage): volatile and fastest; tests, simulation, caches.
- "leveldb" (LevelDBStorage): the default durable engine; an LSM tree, good at writes
  and at data larger than memory.
- "lmdb" (LMDBStorage): a B+tree (Bolt's ancestor); the fastest durable reads,
  fsync per write transaction by default, so batch writes.
- "hybrid" (HybridStorage): a WAL + in-memory table with checkpoints; the fastest
  durable writes when the whole state fits in memory.

The Raft side: `RaftLogStore` persists entries, hard state and snapshot metadata (one
fsync per `save`), `SnapshotStore` keeps state-machine snapshots atomically, and
`ensure_identity` records (and checks) which cluster, node and replica a data dir is for.
"""

from ._engine import MAX_KEY_SIZE as MAX_KEY_SIZE
from ._engine import KVIterator as KVIterator
from ._engine import SnapshotStream as SnapshotStream
from ._engine import StorageEngine as StorageEngine
from ._factory import DEFAULT_ENGINE as DEFAULT_ENGINE
from ._factory import ENGINE_NAMES as ENGINE_NAMES
from ._factory import engine_path as engine_path
from ._factory import open_engine as open_engine
from ._hybrid import HybridStorage as HybridStorage
from ._identity import IDENTITY_FILE as IDENTITY_FILE
from ._identity import DataDirIdentity as DataDirIdentity
from ._identity import ensure_identity as ensure_identity
from ._identity import read_identity as read_identity
from ._leveldb import LevelDBStorage as LevelDBStorage
from ._lmdb import LMDBStorage as LMDBStorage
from ._memory import MemoryStorage as MemoryStorage
from ._raft_log import LogState as LogState
from ._raft_log import LogStatistics as LogStatistics
from ._raft_log import RaftLogStore as RaftLogStore
from ._snapshot_store import SnapshotInfo as SnapshotInfo
from ._snapshot_store import SnapshotReader as SnapshotReader
from ._snapshot_store import SnapshotStore as SnapshotStore
from ._snapshot_store import SnapshotWriter as SnapshotWriter
