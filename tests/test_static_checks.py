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


def test_the_ui_import_graph_has_no_cycle() -> None:
    """Inside dlq_tui.ui modules import one way (app -> screens -> widgets -> source); only `if TYPE_CHECKING:`
    imports (e.g. of DlqApp for a type) may point back. A cycle makes the import order matter again."""
    import grimp

    graph = grimp.build_graph("dlq_tui", exclude_type_checking_imports=True)
    ui = {module for module in graph.modules if module.startswith("dlq_tui.ui")}
    cycles = []
    for importer in sorted(ui):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & ui):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, cycles
