"""The Global application: GlobalActor (the replicated KV service), its config and protocol."""

from ._actor import GlobalActor as GlobalActor
from ._application import GLOBAL_NAME as GLOBAL_NAME
from ._application import Application as Application
from ._config import READ_CONSISTENCIES as READ_CONSISTENCIES
from ._config import GlobalConfig as GlobalConfig
from ._config import GlobalConfigError as GlobalConfigError
from ._protocol import CmdAddPeer as CmdAddPeer
from ._protocol import CmdListLocks as CmdListLocks
from ._protocol import CmdMetrics as CmdMetrics
from ._protocol import CmdRemovePeer as CmdRemovePeer
from ._protocol import CmdSnapshot as CmdSnapshot
from ._protocol import Forwarded as Forwarded
from ._protocol import LockInfo as LockInfo
from ._protocol import LockRequest as LockRequest
from ._protocol import RefreshRequest as RefreshRequest
from ._protocol import RequestBatchDelete as RequestBatchDelete
from ._protocol import RequestBatchPut as RequestBatchPut
from ._protocol import RequestCAS as RequestCAS
from ._protocol import RequestDelete as RequestDelete
from ._protocol import RequestGet as RequestGet
from ._protocol import RequestPrefix as RequestPrefix
from ._protocol import RequestPut as RequestPut
from ._protocol import RequestRange as RequestRange
from ._protocol import RequestStatus as RequestStatus
from ._protocol import StatusResponse as StatusResponse
from ._protocol import UnlockRequest as UnlockRequest
