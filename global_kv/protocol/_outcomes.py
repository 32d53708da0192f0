"""The failures and state-machine results that cross to clients as themselves.

A failed call arrives in the caller as the exception the replica raised (NotLeader,
CASFailed, LockHeld, ...) only if both ends registered it under the same name; an
unregistered one would arrive as a bare RemoteError. The errors keep their constructor
arguments as attributes, so `fields` lists them in constructor order. Importing the
protocol registers them: a client and a replica always agree.
"""

from __future__ import annotations

from ergo_py.wire import register_type

from .. import _errors
from ..state import RESULT_TYPES

__all__ = ["WIRE_ERRORS"]

# (class, fields): what a client can be answered with, beyond the values it asked for.
WIRE_ERRORS: tuple[tuple[type[Exception], tuple[str, ...]], ...] = (
    (_errors.NotLeader, ("leader_hint",)),
    (_errors.CASFailed, ("key", "current")),
    (_errors.LockHeld, ("key", "holder", "token")),
    (_errors.LockNotHeld, ("key",)),
    (_errors.StaleToken, ("key", "token", "current_token")),
    (_errors.SessionExpired, ("client_id", "seq")),
    (_errors.StorageFull, ("path", "detail")),
    (_errors.LockTimeout, ("key", "timeout")),
    (_errors.TooManyWaiters, ("key", "limit")),
    (_errors.ConfChangeRejected, ("change", "reason")),
    (_errors.TransferRejected, ("peer", "reason")),
    (_errors.InvalidRequest, ("field", "reason")),
    (_errors.RequestTooLarge, ("field", "reason")),
    (_errors.RequestFailed, ("detail",)),
    (_errors.Compacted, ("compact_revision",)),
    (_errors.FutureRevision, ("revision", "current_revision")),
    (_errors.KeyNotFound, ("key",)),
    (_errors.LeaseNotFound, ("lease_id",)),
    (_errors.LeaseExists, ("lease_id",)),
)

for _error, _fields in WIRE_ERRORS:
    register_type(_error, name=f"global_kv.{_error.__name__}", fields=_fields)
for _result in RESULT_TYPES:
    register_type(_result, name=f"global_kv.state.{_result.__name__}")
