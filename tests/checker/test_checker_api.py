"""The public surface other parts of global_kv code against."""

from __future__ import annotations

import inspect
import pickle

from global_kv import checker
from global_kv._errors import GlobalKVError
from global_kv.checker import UNKNOWN, CheckerError, Operation


def test_every_public_name_is_exported_and_importable() -> None:
    decided = {
        "Operation",
        "UNKNOWN",
        "Model",
        "CheckResult",
        "check_operations",
        "register_model",
        "kv_model",
        "parse_jepsen_log",
        "parse_kv_edn",
    }
    assert decided <= set(checker.__all__)
    for name in checker.__all__:
        assert getattr(checker, name) is not None
    public = {n for n in vars(checker) if not n.startswith("_")}
    assert public == set(checker.__all__)


def test_decided_signatures() -> None:
    assert list(inspect.signature(checker.check_operations).parameters) == [
        "model",
        "ops",
        "timeout",
    ]
    assert [f for f in Operation.__dataclass_fields__] == [
        "client_id",
        "input",
        "call",
        "output",
        "return_time",
    ]
    result = checker.check_operations(checker.register_model(), [])
    assert (result.ok, result.partitions_checked) == (True, 0)
    assert isinstance(result.info, str)


def test_errors_derive_from_the_package_root() -> None:
    for name in (
        "InvalidHistory",
        "HistoryParseError",
        "NotLinearizable",
        "LinearizabilityUnknown",
    ):
        assert issubclass(getattr(checker, name), CheckerError)
    assert issubclass(CheckerError, GlobalKVError)


def test_unknown_is_a_singleton_that_survives_pickling() -> None:
    # Histories may be recorded in one process and checked in another.
    op = Operation(1, ("get", "k"), 0.0, UNKNOWN, None)
    again = pickle.loads(pickle.dumps(op))
    assert again == op
    assert again.output is UNKNOWN
    assert again.unknown_outcome
    assert repr(UNKNOWN) == "UNKNOWN"
