"""End to end: the real `dlq-tui` console script in a pseudo-terminal shows the health screen and quits on q."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.console import console_script
from tests.support.terminal import Terminal
from tests.ui.conftest import DemoDb


@pytest.mark.slow
@pytest.mark.pg_versions  # the smoke test of every supported major (tests/conftest.py)
def test_dlq_tui_in_a_pseudo_terminal(demo_db: DemoDb) -> None:
    started = time.monotonic()
    with Terminal([console_script(), "--dsn", demo_db.dsn, "--refresh", "2"], rows=30, cols=100) as term:
        screen = term.read_until(["Pending", "Circuit", "breakers", "connected"], timeout=30)
        first_paint = time.monotonic() - started
        assert "Traceback" not in screen
        term.send("q")
        code = term.wait_exit(timeout=20)
        assert code == 0, term.text()[-2000:]
    print(f"first health paint after {first_paint:.2f} s")


def test_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    dsn = f"host={tmp_path} port=1 dbname=nope user=nobody password=hunter2-secret connect_timeout=2"
    result = subprocess.run(
        [console_script(), "--dsn", dsn], capture_output=True, text=True, timeout=60, env={**os.environ}
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlq-tui:"), result.stderr
    assert "hunter2-secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("key", ["e", "m"])
def test_quit_right_after_switching_screens_in_a_pseudo_terminal(demo_db: DemoDb, key: str) -> None:
    """e or m, then q at once, as a user types it: the app ends with exit code 0 and no traceback."""
    with Terminal([console_script(), "--dsn", demo_db.dsn], rows=30, cols=100) as term:
        term.read_until(["Pending", "breakers"], timeout=30)
        term.send(key + "q")
        code = term.wait_exit(timeout=20)
        screen = term.text()
        assert code == 0, screen[-2000:]
        assert "Traceback" not in screen and "NoMatches" not in screen
