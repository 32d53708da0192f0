"""The replicated state machine: KV data, locks with fencing tokens, client sessions.

Pure and deterministic: every replica applies the same committed Raft entries with
`StateMachine.apply` and holds the same state, stored through one StorageEngine.
Proposers build a `Command`, encode values with `encode_value` and the command with
`encode_command`; each applied NORMAL entry yields an `Applied` with a `Result`.
"""

from ._commands import CAS as CAS
from ._commands import COMPARE_RESULTS as COMPARE_RESULTS
from ._commands import COMPARE_TARGETS as COMPARE_TARGETS
from ._commands import MAX_TXN_DEPTH as MAX_TXN_DEPTH
from ._commands import OP_TYPES as OP_TYPES
from ._commands import BatchDelete as BatchDelete
from ._commands import BatchPut as BatchPut
from ._commands import Command as Command
from ._commands import CompactHistory as CompactHistory
from ._commands import Compare as Compare
from ._commands import Delete as Delete
from ._commands import DeleteRange as DeleteRange
from ._commands import KVPut as KVPut
from ._commands import LeaseExpire as LeaseExpire
from ._commands import LeaseGrant as LeaseGrant
from ._commands import LeaseRefresh as LeaseRefresh
from ._commands import LeaseRevoke as LeaseRevoke
from ._commands import LockAcquire as LockAcquire
from ._commands import LockExpire as LockExpire
from ._commands import LockRefresh as LockRefresh
from ._commands import LockRelease as LockRelease
from ._commands import LockReleaseOwner as LockReleaseOwner
from ._commands import Op as Op
from ._commands import Put as Put
from ._commands import SessionClose as SessionClose
from ._commands import Txn as Txn
from ._commands import TxnOp as TxnOp
from ._commands import TxnRange as TxnRange
from ._commands import decode_command as decode_command
from ._commands import encode_command as encode_command
from ._keys import MAX_CLIENT_ID_BYTES as MAX_CLIENT_ID_BYTES
from ._keys import MAX_SEQ as MAX_SEQ
from ._keys import MAX_USER_KEY as MAX_USER_KEY
from ._leases import MAX_LEASE_ID as MAX_LEASE_ID
from ._leases import Lease as Lease
from ._lock_timers import LockTimers as LockTimers
from ._locks import Lock as Lock
from ._machine import MAX_RESULT_BYTES as MAX_RESULT_BYTES
from ._machine import StateMachine as StateMachine
from ._machine import StateStatistics as StateStatistics
from ._mvcc import KeyValue as KeyValue
from ._mvcc import RangeResult as RangeResult
from ._mvcc import WatchEvent as WatchEvent
from ._range import SORT_ORDERS as SORT_ORDERS
from ._range import SORT_TARGETS as SORT_TARGETS
from ._range import RangeOptions as RangeOptions
from ._results import RESULT_TYPES as RESULT_TYPES
from ._results import Applied as Applied
from ._results import CASFailedResult as CASFailedResult
from ._results import CompactedResult as CompactedResult
from ._results import DeleteResult as DeleteResult
from ._results import FutureRevisionResult as FutureRevisionResult
from ._results import Granted as Granted
from ._results import KeyNotFoundResult as KeyNotFoundResult
from ._results import LeaseExistsResult as LeaseExistsResult
from ._results import LeaseGrantedResult as LeaseGrantedResult
from ._results import LeaseNotFoundResult as LeaseNotFoundResult
from ._results import LeaseRevokedResult as LeaseRevokedResult
from ._results import LockHeldResult as LockHeldResult
from ._results import LockNotHeldResult as LockNotHeldResult
from ._results import Ok as Ok
from ._results import PutResult as PutResult
from ._results import Released as Released
from ._results import Result as Result
from ._results import SessionExpiredResult as SessionExpiredResult
from ._results import StaleTokenResult as StaleTokenResult
from ._results import TxnOpResult as TxnOpResult
from ._results import TxnRefusedResult as TxnRefusedResult
from ._results import TxnResult as TxnResult
from ._results import raise_for_result as raise_for_result
from ._sessions import SessionInfo as SessionInfo
from ._txn import covers as covers
from ._txn import txn_conflict as txn_conflict
from ._values import decode_value as decode_value
from ._values import encode_value as encode_value
