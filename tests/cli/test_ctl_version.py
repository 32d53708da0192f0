"""`global-kv --version` and `global-kv ctl --version` print the installed distribution's version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest


@pytest.mark.parametrize("argv", [["--version"], ["ctl", "--version"]])
def test_version_flag_prints_the_distribution_version(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "global_kv.cli", *argv], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    name = "global-kv ctl" if argv[0] == "ctl" else "global-kv"
    assert result.stdout == f"{name} {version('ergo-py-global-kv')}\n"
