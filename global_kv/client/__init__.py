"""GlobalClient: the cluster as an application actor sees it; locks and fencing; `ops`,
the compares and operations of a transaction."""

from . import ops as ops
from ._bootstrap import DEFAULT_PORT as DEFAULT_PORT
from ._bootstrap import parse_bootstrap as parse_bootstrap
from ._client import GlobalClient as GlobalClient
from ._client import open_client as open_client
from ._locks import FencedResource as FencedResource
from ._locks import LockHandle as LockHandle
from ._recipes import Election as Election
from ._recipes import NotElected as NotElected
from ._recipes import Semaphore as Semaphore
from ._recipes import SemaphoreHandle as SemaphoreHandle
from ._watch import Watch as Watch
from ._watch import WatchBatch as WatchBatch
from ._watch import WatchProgress as WatchProgress
