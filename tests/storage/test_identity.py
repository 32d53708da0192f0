"""A data dir's identity file: written once, checked at every start, never guessed at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from global_kv import StorageCorrupted
from global_kv._errors import DataDirMismatch
from global_kv.storage import IDENTITY_FILE, DataDirIdentity, ensure_identity, read_identity

ME = DataDirIdentity("local", "n1@localhost", "global")


def test_the_first_start_records_the_identity_and_later_starts_only_check_it(tmp_path: Path) -> None:
    data = tmp_path / "data"  # not there yet: created
    assert read_identity(data) is None
    assert ensure_identity(data, ME) is True
    before = (data / IDENTITY_FILE).read_bytes()
    assert read_identity(data) == ME
    assert ensure_identity(data, ME) is False
    assert (data / IDENTITY_FILE).read_bytes() == before  # an existing file is never rewritten
    assert not [p for p in data.iterdir() if p.name.startswith(".tmp")]  # atomic: no temp file left


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (
            DataDirIdentity("global", "n1@localhost", "global"),
            ["cluster 'local'", "cluster 'global'", "CLUSTER_ID=local"],
        ),
        (DataDirIdentity("local", "n2@localhost", "global"), ["node n1@localhost", "node n2@localhost"]),
        (DataDirIdentity("local", "n1@localhost", "other"), ["replica 'global'", "replica 'other'"]),
    ],
    ids=["cluster-id", "node-name", "replica-name"],
)
def test_another_owner_is_refused_with_one_line_naming_both(
    tmp_path: Path, other: DataDirIdentity, words: list[str]
) -> None:
    ensure_identity(tmp_path, ME)
    with pytest.raises(DataDirMismatch) as caught:
        ensure_identity(tmp_path, other)
    err = caught.value
    assert (err.found, err.expected) == (ME.as_tuple(), other.as_tuple())
    text = str(err)
    assert "\n" not in text and str(tmp_path) in text and all(w in text for w in words), text
    assert read_identity(tmp_path) == ME  # unchanged


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # torn
        lambda raw: raw.replace(b"n1@localhost", b"n2@localhost"),  # edited: checksum no longer matches
        lambda raw: b"not json at all",
        lambda raw: json.dumps({**json.loads(raw), "format": 99}).encode(),
        lambda raw: b"[1, 2, 3]",
    ],
    ids=["torn", "edited", "garbage", "unknown-format", "not-an-object"],
)
def test_a_damaged_identity_file_is_corruption_not_a_first_start(tmp_path: Path, damage: object) -> None:
    ensure_identity(tmp_path, ME)
    path = tmp_path / IDENTITY_FILE
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(StorageCorrupted, match="identity file"):
        ensure_identity(tmp_path, ME)
