"""Wing & Gong's linearizability search with Lowe's memoisation, on one partition.

The history becomes a doubly linked list of call and return entries in time order. The
search walks it from the front: at a call it tries to linearize that operation next
(the model must accept its output); if it can, and the resulting configuration was not
seen before, it removes the operation's entries from the list ("lift") and starts
again from the front. Reaching a return entry means that operation was due and nothing
linearized it: backtrack (pop the last choice, put its entries back, try the next
call). Backtracking past the first choice proves there is no linearization. The cache
(Lowe) is what makes this practical: two paths that linearized the same operations
and ended in the same state have the same future, so only the first is explored.

Unknown outcomes (`return_time=None`) are where histories get expensive, so they get
more care than in Porcupine (every rule below keeps the search sound and complete):

- They have no return entry (it would sit at +infinity, never reached), and a search
  succeeds as soon as every operation *with* a return time is linearized: an unknown
  operation left over simply never took effect.
- A configuration is (completed ops linearized, unknown ops linearized, state). One
  with the same completed ops and state and a subset of the unknown ops dominates: it
  can do everything the other can, the extra unknown operations being optional. A
  dominated configuration is pruned: by the cache (lazy search, below), and on the
  spot in two cases that cost one model step to see: an unknown operation that would
  leave the state unchanged (not applying it dominates), and unknown operation j
  applied right after unknown operation i when j alone, from the state before i,
  reaches the same state (a lost write overwritten by another: dropping i dominates,
  and that configuration is a candidate of an earlier one, so it is searched).
  Completeness: take an explored configuration that can still be completed, with the
  shortest completion; its first step leads to a configuration that is explored, or
  pruned in favour of one that is explored (or, by induction on the unknown
  operations applied, dominated by one that is) and inherits the same completion; so
  a shorter one exists, and the search reaches a complete one.
- Where to try unknown operations matters by orders of magnitude, and no order wins
  everywhere: an unknown write that was lost (Jepsen's etcd logs are full of them)
  wants them tried last, an unknown append that did happen, first. So two searches
  run interleaved, in slices of steps: "eager" (calls in time order, as Porcupine;
  exact cache) and "lazy" (completed operations first, unknown ones only when the
  next return is due; dominance cache). The first verdict wins; both are exact, so
  they never disagree. A partition without unknown operations runs one search.

Performance notes (this loop runs millions of times in CPython): the list is Python
lists of ints with head and tail sentinels, the operation sets are Python ints used as
bitsets, the choice stack is a list of tuples, all lookups are local variables, and
there is no recursion, so deep histories cannot overflow the interpreter stack.

This module must never format reports or interpret inputs: it only calls
`model.step`. It reads the clock only to honour the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from ._history import Operation
from ._model import Model

__all__ = ["SearchOutcome", "search_partition"]

# Model steps per slice: the searches yield this often, and the clock is read then.
# A clock read costs about as much as a few steps; 4096 steps take a few milliseconds.
_SLICE = 0xFFF

# Node kinds.
_RETURN = 0
_CALL = 1  # a call whose operation returned (it must be linearized before its return)
_CALL_UNKNOWN = 2  # a call with return_time=None (may be linearized later, or never)


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """The verdict on one partition, with what a failure report needs.

    `ok` is True (a linearization exists; `longest_prefix` is one, without the unknown
    operations that never took effect), False (none exists; `longest_prefix` is the
    longest linearizable prefix the search reached and `stuck_op` the operation whose
    return it could not get past), or None (deadline). Operation numbers index the
    `ops` sequence given to `search_partition`.
    """

    ok: bool | None
    states_explored: int
    longest_prefix: tuple[int, ...]
    state_after_prefix: Any
    stuck_op: int | None


def search_partition(model: Model, ops: Sequence[Operation], deadline: float | None = None) -> SearchOutcome:
    """Decide whether `ops` (one partition) is linearizable with respect to `model`.

    `deadline` is a `time.monotonic()` value after which the search gives up with
    `ok=None`; a verdict of True or False is only ever returned when proven.
    """
    if all(op.return_time is None for op in ops):
        # Nothing returned, so nothing had to take effect: the empty linearization.
        return SearchOutcome(True, 0, (), model.init(), None)
    searches = [_search(model, ops, lazy=False)]
    if any(op.return_time is None for op in ops):
        searches.append(_search(model, ops, lazy=True))
    explored = [0] * len(searches)
    while True:
        for i, search in enumerate(searches):
            try:
                explored[i] = next(search)
            except StopIteration as stop:
                outcome: SearchOutcome = stop.value
                others = sum(explored) - explored[i]
                return SearchOutcome(
                    outcome.ok,
                    outcome.states_explored + others,
                    outcome.longest_prefix,
                    outcome.state_after_prefix,
                    outcome.stuck_op,
                )
        if deadline is not None and time.monotonic() > deadline:
            for search in searches:
                search.close()
            return SearchOutcome(None, sum(explored), (), None, None)


def _search(model: Model, ops: Sequence[Operation], lazy: bool) -> Generator[int, None, SearchOutcome]:
    """One search; yields the number of configurations explored every `_SLICE` steps."""
    remaining_known = sum(1 for op in ops if op.return_time is not None)
    remaining_unknown = len(ops) - remaining_known

    # Entries sorted by time; on equal times calls come before returns, so operations
    # that touch at an instant count as concurrent (the permissive reading, as Porcupine).
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        if op.return_time is not None:
            events.append((op.return_time, 1, i))
    events.sort()

    # Node 0 is the head sentinel, nodes 1..m the entries, node m+1 the tail sentinel.
    m = len(events)
    tail = m + 1
    nxt = list(range(1, tail + 1)) + [tail]
    prv = [0, *range(tail)]
    kind = [_RETURN] * (tail + 1)
    ret_of = [0] * (tail + 1)  # a completed call's return node
    op_of = [-1] * (tail + 1)
    inputs: list[Any] = [None] * (tail + 1)
    outputs: list[Any] = [None] * (tail + 1)
    call_node = [0] * len(ops)
    for node, (_t, is_return, i) in enumerate(events, start=1):
        op_of[node] = i
        if is_return:
            ret_of[call_node[i]] = node
        else:
            call_node[i] = node
            kind[node] = _CALL if ops[i].return_time is not None else _CALL_UNKNOWN
            inputs[node] = ops[i].input
            outputs[node] = ops[i].output

    step = model.step
    # Eager: exact cache of (completed, unknown, state). Lazy: (completed, state) ->
    # the unknown-op sets applied on explored paths, for the dominance test.
    exact: set[tuple[int, int, Any]] = set()
    exact_add = exact.add
    dominance: dict[tuple[int, Any], list[int]] = {}
    dominance_get = dominance.get
    explored = 0
    # (call node, state, completed set, unknown set, phase) before each choice
    calls: list[tuple[int, Any, int, int, int]] = []
    push = calls.append
    pop = calls.pop

    init_state = model.init()
    state: Any = init_state
    done = 0  # bitset of completed operations linearized
    maybe = 0  # bitset of unknown operations linearized
    best_depth = (-1, 0)
    best_prefix: tuple[int, ...] = ()
    best_state: Any = init_state
    best_stuck: int | None = None
    steps = 0

    # Lazy phases: 0 tries completed operations' calls; 1, entered when phase 0 reaches
    # the first return entry, tries the unknown operations called before it. Eager
    # searches try every call in list order; `phase` then records the call's kind.
    phase = 0
    entry = nxt[0]
    while True:
        k = kind[entry]
        if k:
            if lazy:
                if k - 1 != phase:
                    entry = nxt[entry]
                    continue
            else:
                phase = k - 1
            steps += 1
            if not (steps & _SLICE):
                yield explored
            ok, new_state = step(state, inputs[entry], outputs[entry])
            if ok and phase:
                # Dominance shortcuts for an unknown operation (module docstring):
                # a no-op is dominated by not applying it; applied right after another
                # unknown operation that it makes irrelevant (it reaches the same
                # state from the state before that one), it is dominated by applying
                # it alone, which the search tries from the earlier configuration.
                if new_state == state:
                    ok = False
                elif calls and calls[-1][4]:
                    before = calls[-1][1]
                    alone_ok, alone = step(before, inputs[entry], outputs[entry])
                    if alone_ok and alone == new_state:
                        ok = False
            if ok:
                bit = 1 << op_of[entry]
                if phase:
                    new_done = done
                    new_maybe = maybe | bit
                else:
                    new_done = done | bit
                    new_maybe = maybe
                fresh = True
                if lazy:
                    key = (new_done, new_state)
                    seen = dominance_get(key)
                    if seen is None:
                        dominance[key] = [new_maybe]
                    else:
                        for applied in seen:
                            if applied & new_maybe == applied:
                                fresh = False
                                break
                        else:
                            seen.append(new_maybe)
                else:
                    exact_key = (new_done, new_maybe, new_state)
                    if exact_key in exact:
                        fresh = False
                    else:
                        exact_add(exact_key)
                if fresh:
                    explored += 1
                    push((entry, state, done, maybe, phase))
                    state = new_state
                    done = new_done
                    maybe = new_maybe
                    # Lift the call, then the return (possibly its neighbour).
                    p = prv[entry]
                    q = nxt[entry]
                    nxt[p] = q
                    prv[q] = p
                    if phase:
                        remaining_unknown -= 1
                    else:
                        remaining_known -= 1
                        if remaining_known == 0:
                            prefix = tuple(op_of[c[0]] for c in calls)
                            return SearchOutcome(True, explored, prefix, state, None)
                        r = ret_of[entry]
                        p = prv[r]
                        q = nxt[r]
                        nxt[p] = q
                        prv[q] = p
                    phase = 0
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:
            # A return entry: its operation is due and was not linearized. (The walk
            # never reaches the tail: a completed operation is always left, and its
            # return follows its call.)
            if lazy and phase == 0 and remaining_unknown:
                phase = 1
                entry = nxt[0]
                continue
            # The most informative dead end for a report: the most completed operations
            # linearized, with the fewest unknown ones padding the prefix.
            depth = (done.bit_count(), -maybe.bit_count())
            if depth > best_depth:
                best_depth = depth
                best_prefix = tuple(op_of[c[0]] for c in calls)
                best_state = state
                best_stuck = op_of[entry]
            if not calls:
                return SearchOutcome(False, explored, best_prefix, best_state, best_stuck)
            entry, state, done, maybe, phase = pop()
            # Unlift in reverse order: the return, then the call.
            if phase:
                remaining_unknown += 1
            else:
                remaining_known += 1
                r = ret_of[entry]
                nxt[prv[r]] = r
                prv[nxt[r]] = r
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            entry = nxt[entry]
