"""The client protocol: what a client sends a member, and the commands its writes become.

Plain wire records registered under `global_kv.<ClassName>`, the one `SessionTag` that
every write carries, the errors that cross to clients, and `command_for` /
`lock_command_for`, which turn a write request into a state-machine `Command`. It
imports no trio, no server (`global_kv.app`, `global_kv.leader`), no storage engine,
and from ergo_py only the trio-free `ergo_py.ids` and `ergo_py.wire`: a client or a
pure replica can import it without a runtime or a database.
"""

from ._commands import command_for as command_for
from ._commands import lock_command_for as lock_command_for
from ._commands import range_options as range_options
from ._commands import tagged_command as tagged_command
from ._commands import ttl_ms as ttl_ms
from ._commands import txn_op_for as txn_op_for
from ._envelopes import Forwarded as Forwarded
from ._envelopes import Relayed as Relayed
from ._operations import AddPeerRequest as AddPeerRequest
from ._operations import ListLocksRequest as ListLocksRequest
from ._operations import LockInfo as LockInfo
from ._operations import MetricsRequest as MetricsRequest
from ._operations import RemovePeerRequest as RemovePeerRequest
from ._operations import SnapshotRequest as SnapshotRequest
from ._operations import StatusRequest as StatusRequest
from ._operations import StatusResponse as StatusResponse
from ._outcomes import WIRE_ERRORS as WIRE_ERRORS
from ._requests import KV_WRITE_REQUESTS as KV_WRITE_REQUESTS
from ._requests import LOCK_REQUESTS as LOCK_REQUESTS
from ._requests import READ_REQUESTS as READ_REQUESTS
from ._requests import WATCH_FILTERS as WATCH_FILTERS
from ._requests import WRITE_REQUESTS as WRITE_REQUESTS
from ._requests import CompactRequest as CompactRequest
from ._requests import Compare as Compare
from ._requests import DeleteRequest as DeleteRequest
from ._requests import GetRequest as GetRequest
from ._requests import KVDeleteRangeRequest as KVDeleteRangeRequest
from ._requests import KVPutRequest as KVPutRequest
from ._requests import KVRangeRequest as KVRangeRequest
from ._requests import KVWriteRequest as KVWriteRequest
from ._requests import LeaseGrantRequest as LeaseGrantRequest
from ._requests import LeaseKeepAliveRequest as LeaseKeepAliveRequest
from ._requests import LeaseLeasesRequest as LeaseLeasesRequest
from ._requests import LeaseRevokeRequest as LeaseRevokeRequest
from ._requests import LeaseTimeToLiveRequest as LeaseTimeToLiveRequest
from ._requests import LockRequest as LockRequest
from ._requests import PrefixRequest as PrefixRequest
from ._requests import PutRequest as PutRequest
from ._requests import RangeRequest as RangeRequest
from ._requests import RefreshRequest as RefreshRequest
from ._requests import TxnRequest as TxnRequest
from ._requests import TxnRequestOp as TxnRequestOp
from ._requests import UnlockRequest as UnlockRequest
from ._requests import WatchAck as WatchAck
from ._requests import WatchCancelRequest as WatchCancelRequest
from ._requests import WatchCreateRequest as WatchCreateRequest
from ._requests import health_read as health_read
from ._requests import prefix_range_end as prefix_range_end
from ._responses import CompactResponse as CompactResponse
from ._responses import DeleteRangeResponse as DeleteRangeResponse
from ._responses import KeyValue as KeyValue
from ._responses import LeaseGrantResponse as LeaseGrantResponse
from ._responses import LeaseKeepAliveResponse as LeaseKeepAliveResponse
from ._responses import LeaseLeasesResponse as LeaseLeasesResponse
from ._responses import LeaseRevokeResponse as LeaseRevokeResponse
from ._responses import LeaseTimeToLiveResponse as LeaseTimeToLiveResponse
from ._responses import PutResponse as PutResponse
from ._responses import RangeResponse as RangeResponse
from ._responses import ResponseHeader as ResponseHeader
from ._responses import TxnResponse as TxnResponse
from ._responses import WatchCanceled as WatchCanceled
from ._responses import WatchCreateResponse as WatchCreateResponse
from ._responses import WatchEvent as WatchEvent
from ._responses import WatchEvents as WatchEvents
from ._session import NO_SESSION as NO_SESSION
from ._session import SessionTag as SessionTag
