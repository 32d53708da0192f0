"""etcd-shaped answers: a header naming the revision they were served at, and the keys.

A `RangeResponse` is what a `KVRangeRequest` is answered with: the member's applied
revision when it served the read (`header.revision`; a linearizable or read_index read
waited until it had applied everything committed before it), the Raft term and the
member, then the key-values with their revisions and versions, `more` if the range held
more than the limit, and `count`, how many keys the whole range held.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..state import KeyValue
from ._outcomes import WIRE_ERRORS as _REGISTERED  # KeyValue crosses the wire from here on
from ._wire import wire_type

__all__ = ["RangeResponse", "ResponseHeader"]

assert _REGISTERED


@wire_type
@dataclass(frozen=True, slots=True)
class ResponseHeader:
    revision: int
    raft_term: int
    member_id: str


@wire_type
@dataclass(frozen=True, slots=True)
class RangeResponse:
    header: ResponseHeader
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int
