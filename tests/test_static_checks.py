"""The static checks are part of the one test command, so `.ci/run` (and a developer's `pytest`) cannot pass on
code that lint, formatting, types or the import contracts reject."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.console import installed_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],  # files and strictness from [tool.mypy]
        ["lint-imports"],  # contracts from [tool.importlinter]
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-contracts"],
)
def test_static_check_passes(command: list[str]) -> None:
    done = subprocess.run(
        [installed_script(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
