"""A linearizability checker for recorded client histories (Wing & Gong search, Lowe's cache).

Used by global_kv's tests and simulator to decide whether what clients observed could
have come from one atomic object:

    result = check_operations(kv_model(), history, timeout=30)
    assert result.ok is True, result.info   # None = gave up: never a pass

Record one `Operation` per client call; a call whose outcome the client never learned
(timeout, crash) has `return_time=None` and `output=UNKNOWN`. Histories are checked
per partition (per key for `kv_model()`), so an operation touches one key: record a
batch write as one operation per key, all with the batch's interval. That is sound
(never a false alarm) but blind to a batch applied non-atomically across keys.

Cost: the problem is NP-complete; the search is fast when operations overlap little.
It is exponential in unknown-outcome operations that never commute and are never
overwritten (appends): proving a violation among many of those on one key can hit the
timeout (`ok is None`). Lost writes, deletes and failed CAS are cheap (see `_search`).
"""

from ._check import CheckResult as CheckResult
from ._check import assert_linearizable as assert_linearizable
from ._check import check_operations as check_operations
from ._errors import CheckerError as CheckerError
from ._errors import HistoryParseError as HistoryParseError
from ._errors import InvalidHistory as InvalidHistory
from ._errors import LinearizabilityUnknown as LinearizabilityUnknown
from ._errors import NotLinearizable as NotLinearizable
from ._history import UNKNOWN as UNKNOWN
from ._history import Operation as Operation
from ._model import Model as Model
from ._models import KVModel as KVModel
from ._models import RegisterModel as RegisterModel
from ._models import kv_model as kv_model
from ._models import register_model as register_model
from ._parse import parse_jepsen_log as parse_jepsen_log
from ._parse import parse_kv_edn as parse_kv_edn

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "CheckerError",
    "HistoryParseError",
    "InvalidHistory",
    "KVModel",
    "LinearizabilityUnknown",
    "Model",
    "NotLinearizable",
    "Operation",
    "RegisterModel",
    "assert_linearizable",
    "check_operations",
    "kv_model",
    "parse_jepsen_log",
    "parse_kv_edn",
    "register_model",
]
