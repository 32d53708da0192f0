"""Agreement with every published verdict in tests/data/linearizability (one test per file)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from global_kv.checker import (
    check_operations,
    kv_model,
    parse_jepsen_log,
    parse_kv_edn,
    register_model,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "linearizability"


def _jepsen_cases() -> list[tuple[str, bool]]:
    with open(DATA / "jepsen" / "expected.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(row["file"], row["linearizable"] == "true") for row in rows]


JEPSEN = _jepsen_cases()
KV = sorted(p.name for p in (DATA / "kv").glob("c*-*.txt"))


def test_the_data_set_is_complete() -> None:
    # The README promises 102 Jepsen histories (23 linearizable) and 6 KV histories.
    assert len(JEPSEN) == 102
    assert sum(expected for _name, expected in JEPSEN) == 23
    assert len(KV) == 6


@pytest.mark.parametrize(("name", "expected"), JEPSEN, ids=[name for name, _ in JEPSEN])
def test_jepsen_etcd_verdict(name: str, expected: bool) -> None:
    ops = parse_jepsen_log(DATA / "jepsen" / name)
    result = check_operations(register_model(), ops, timeout=60)
    assert result.ok is expected, result.info
    if not expected:
        assert result.stuck_operation is not None
        assert "not linearizable" in result.info


@pytest.mark.parametrize("name", KV)
def test_kv_edn_verdict(name: str) -> None:
    ops = parse_kv_edn(DATA / "kv" / name)
    expected = name.endswith("-ok.txt")
    result = check_operations(kv_model(), ops, timeout=60)
    assert result.ok is expected, result.info
    keys = {o.input[1] for o in ops}
    assert result.partitions == len(keys)
    if expected:
        assert result.partitions_checked == len(keys)
    else:
        assert "key '" in result.info


def test_the_history_without_a_verdict_is_empty() -> None:
    # etcd_095: "etcd cluster failed to start up" (Porcupine), hence no verdict and no events.
    assert parse_jepsen_log(DATA / "jepsen" / "etcd_095.log") == []
    result = check_operations(register_model(), [])
    assert result.ok is True
    assert result.partitions == 0
