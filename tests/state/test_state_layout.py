"""The package's shape: pure imports, public names, and results that can cross the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import cbor2
import pytest

from ergo_py.ids import PID
from global_kv import state
from global_kv._errors import (
    CASFailed,
    GlobalKVError,
    LockHeld,
    LockNotHeld,
    SessionExpired,
    StaleToken,
)
from global_kv.state import (
    RESULT_TYPES,
    Applied,
    CASFailedResult,
    Granted,
    LockHeldResult,
    LockNotHeldResult,
    Ok,
    Released,
    SessionExpiredResult,
    StaleTokenResult,
    raise_for_result,
)
from global_kv.state._results import decode_result, encode_result
from tests.state.state_support import A

PACKAGE = Path(state.__file__).resolve().parent
ROOT = PACKAGE.parent.parent
FORBIDDEN = {"trio", "trio_websocket", "time", "socket", "random", "asyncio", "ssl", "select", "datetime", "os"}


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of what `path` imports at run time (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
            else:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def test_the_state_machine_imports_nothing_impure_even_indirectly() -> None:
    todo = ["global_kv.state"] + [f"global_kv.state.{p.stem}" for p in PACKAGE.glob("_*.py")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        package = name.rpartition(".")[0]
        if not path.exists():
            path, package = ROOT.joinpath(*name.split("."), "__init__.py"), name
        assert path.exists(), name
        for imported in imported_modules(path, package):
            assert imported.split(".")[0] not in FORBIDDEN, f"{name} imports {imported}"
            if imported.startswith(("global_kv.", "ergo_py.")):
                # Only pure modules of the other layers: records, ids, errors.
                assert imported.startswith("global_kv.state") or imported in {
                    "global_kv._errors",
                    "global_kv.raft._log_types",
                    "ergo_py.ids",
                }, f"{name} imports {imported}"
                todo.append(imported)
    assert {"global_kv.state._machine", "global_kv.raft._log_types", "ergo_py.ids"} <= seen


def test_public_api_is_reexported_from_private_modules() -> None:
    expected = {
        "StateMachine", "StateStatistics", "Command", "Op", "OP_TYPES", "Put", "Delete", "CAS",
        "BatchPut", "BatchDelete", "LockAcquire", "LockRelease", "LockRefresh", "LockReleaseOwner",
        "LockExpire", "SessionClose", "encode_command", "decode_command", "encode_value",
        "decode_value", "Applied", "Result", "RESULT_TYPES", "Ok", "Granted", "Released",
        "CASFailedResult", "LockHeldResult", "LockNotHeldResult", "StaleTokenResult",
        "SessionExpiredResult", "raise_for_result", "Lock", "LockTimers", "SessionInfo", "MAX_USER_KEY", "MAX_SEQ",
        "MAX_CLIENT_ID_BYTES", "KeyValue", "RangeResult", "CompactHistory", "CompactedResult",
        "FutureRevisionResult", "KVPut", "DeleteRange", "PutResult", "DeleteResult", "KeyNotFoundResult",
        "RangeOptions", "SORT_ORDERS", "SORT_TARGETS", "Compare", "COMPARE_RESULTS", "COMPARE_TARGETS",
        "MAX_TXN_DEPTH", "MAX_RESULT_BYTES", "Txn", "TxnOp", "TxnRange", "TxnRefusedResult", "TxnOpResult",
        "TxnResult", "txn_conflict", "Lease", "LeaseGrant", "LeaseRevoke", "LeaseRefresh", "LeaseExpire",
        "LeaseGrantedResult", "LeaseRevokedResult", "LeaseNotFoundResult", "LeaseExistsResult", "MAX_LEASE_ID",
        "WatchEvent", "covers",
    }  # fmt: skip
    assert {n for n in vars(state) if not n.startswith("_")} == expected
    for path in PACKAGE.glob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), path.name
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in init.body:
        if isinstance(node, ast.ImportFrom):
            assert all(alias.asname == alias.name for alias in node.names)


FAILURES = [
    (CASFailedResult(b"k", b"cur"), CASFailed, {"key": b"k", "current": b"cur"}, "compare-and-swap"),
    (CASFailedResult(b"k", None), CASFailed, {"current": None}, "absent"),
    (LockHeldResult(b"k", A, 7), LockHeld, {"holder": A, "token": 7}, "held by"),
    (LockNotHeldResult(b"k"), LockNotHeld, {"key": b"k"}, "acquire the lock again"),
    (StaleTokenResult(b"k", 3, 9), StaleToken, {"token": 3, "current_token": 9}, "stale"),
    (SessionExpiredResult("c", 4), SessionExpired, {"client_id": "c", "seq": 4}, "new client id"),
]


@pytest.mark.parametrize(("result", "error", "fields", "says"), FAILURES)
def test_failures_become_named_exceptions_with_their_data(
    result: object, error: type[GlobalKVError], fields: dict[str, object], says: str
) -> None:
    assert result.ok is False  # type: ignore[attr-defined]
    with pytest.raises(error, match=says) as info:
        raise_for_result(result)  # type: ignore[arg-type]
    assert isinstance(info.value, GlobalKVError)
    for name, value in fields.items():
        assert getattr(info.value, name) == value


@pytest.mark.parametrize("result", [Ok(), Granted(b"k", 3, 0), Released(((b"a", 1), (b"b", 2))), Released(())])
def test_successes_pass_through(result: object) -> None:
    assert raise_for_result(result) is result  # type: ignore[arg-type]


ALL_RESULTS = [Ok(), Granted(b"k", 2**40, 30_000), Released(((b"a", 1), (b"b", 2))), Released(())] + [
    f[0] for f in FAILURES
]


@pytest.mark.parametrize("result", ALL_RESULTS, ids=lambda r: type(r).__name__)
def test_results_round_trip_through_storage_and_plain_cbor(result: object) -> None:
    assert decode_result(encode_result(result)) == result  # type: ignore[arg-type]
    # Plain fields only: cbor2 alone can carry them once a PID is a triple.
    fields = [
        [f.node, f.id, f.creation] if isinstance(f, PID) else f
        for f in (getattr(result, name) for name in type(result).__dataclass_fields__)
    ]
    assert cbor2.loads(cbor2.dumps(fields)) is not None


def test_results_register_with_the_network_codec() -> None:
    from ergo_py.net._codec import Codec
    from ergo_py.net._registry import Registry

    registry = Registry()
    registry.register(PID, name="ergo_py.PID")
    for cls in RESULT_TYPES:
        registry.register(cls, name=f"global_kv.state.{cls.__name__}")
    codec = Codec(registry)
    for result in ALL_RESULTS:
        applied = Applied(12, "client", 3, result)  # type: ignore[arg-type]
        assert codec.decode(codec.encode(applied)) == applied
