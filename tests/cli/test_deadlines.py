"""Every one-shot command ends within its overall time limit, even against a server that lets us log in and
then never answers (tests/faultservers.py: a loopback server that completes the handshake and goes silent).

Each command runs as the real console script with a subprocess timeout far above its limit, so a
regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from dlq_tui.config import DEFAULT_MIGRATE_TIMEOUT_S, DEFAULT_TIMEOUT_S, SettingFault, resolve_timeout
from dlq_tui.db.deadline import Deadline
from tests.support import pg
from tests.support.console import console_script
from tests.support.faultservers import silent_postgres
from tests.support.terminal import Terminal

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DLQ_TUI", "DATABASE_URL"))}
LIMIT_S = 1
# Far above LIMIT_S (plus the cancel wait and the process start on a loaded machine): only a hang reaches it.
HANG_S = 40


@pytest.fixture(scope="module")
def silent() -> Iterator[tuple[str, str]]:
    """(DSN, the target as messages name it) of a server that answers the login and nothing after it."""
    with silent_postgres() as port:
        yield f"host=127.0.0.1 port={port} user=dlq dbname=dlq", f"dlq@127.0.0.1:{port}/dlq"


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *argv], capture_output=True, text=True, timeout=HANG_S, env={**ENV, **env})


def one_line(stream: str) -> str:
    lines = stream.strip().splitlines()
    assert len(lines) == 1, stream
    assert "Traceback" not in stream
    return lines[0]


@pytest.mark.parametrize("argv", [["check"], ["analyze"], ["analyze", "--json"]], ids=" ".join)
def test_read_commands_end_with_one_line_and_exit_2(silent: tuple[str, str], argv: list[str]) -> None:
    dsn, target = silent
    done = cli(*argv, "--dsn", dsn, "--timeout", str(LIMIT_S))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith(f"dlq-tui: no answer from {target} within {LIMIT_S} s (--timeout): ")
    assert "raise --timeout if the work needs longer" in line


def test_health_says_unknown_and_exits_3(silent: tuple[str, str]) -> None:
    dsn, target = silent
    done = cli("health", "--dsn", dsn, "--timeout", str(LIMIT_S))
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert one_line(done.stderr).startswith(f"dlq-tui: DLQ UNKNOWN - no answer from {target} within {LIMIT_S} s")


def test_health_json_is_an_unknown_object(silent: tuple[str, str]) -> None:
    """A script that reads only stdout still learns why: one JSON object with status UNKNOWN."""
    dsn, target = silent
    done = cli("health", "--json", "--dsn", dsn, "--timeout", str(LIMIT_S))
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "UNKNOWN" and doc["exit_code"] == 3
    assert doc["reason"].startswith(f"no answer from {target} within {LIMIT_S} s (--timeout)")
    assert one_line(done.stderr) == f"dlq-tui: DLQ UNKNOWN - {doc['reason']}"


def test_the_environment_sets_the_limit_and_the_flag_wins(silent: tuple[str, str]) -> None:
    dsn, target = silent
    from_env = cli("check", "--dsn", dsn, DLQ_TUI_TIMEOUT="1.5")
    assert from_env.returncode == 2
    assert f"no answer from {target} within 1.5 s (--timeout)" in one_line(from_env.stderr)
    flag_wins = cli("check", "--timeout", "1", "--dsn", dsn, DLQ_TUI_TIMEOUT="300")
    assert flag_wins.returncode == 2
    assert "within 1 s (--timeout)" in one_line(flag_wins.stderr)


@pytest.mark.parametrize(
    "argv",
    [["--migrate"], ["--migrate", "--online"], ["--migrate", "--dry-run"], ["--migrate", "--online", "--dry-run"]],
    ids=" ".join,
)
def test_migrations_end_with_exit_2(silent: tuple[str, str], argv: list[str]) -> None:
    dsn, target = silent
    done = cli(*argv, "--dsn", dsn, "--migrate-timeout", str(LIMIT_S))
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line.startswith(f"dlq-tui: no answer from {target} within {LIMIT_S} s (--migrate-timeout): ")


def test_migrations_take_their_limit_from_their_own_variable(silent: tuple[str, str]) -> None:
    """DLQ_TUI_TIMEOUT, set for monitoring, does not cut a migration run from the same shell."""
    dsn, _ = silent
    done = cli("--migrate", "--dsn", dsn, DLQ_TUI_MIGRATE_TIMEOUT="1.5", DLQ_TUI_TIMEOUT="0.5")
    assert done.returncode == 2
    assert "within 1.5 s (--migrate-timeout)" in one_line(done.stderr)


def test_the_app_start_ends_in_a_terminal(silent: tuple[str, str]) -> None:
    """In a real pseudo-terminal: the app says why it cannot start and exits 2 instead of a blank screen."""
    dsn, target = silent
    with Terminal([console_script(), "--dsn", dsn, "--timeout", str(LIMIT_S)], rows=30, cols=100, env=ENV) as term:
        screen = term.read_until(["raise --timeout"], timeout=HANG_S)
        assert f"dlq-tui: no answer from {target} within {LIMIT_S} s (--timeout)" in screen, screen[-2000:]
        assert term.wait_exit(timeout=10) == 2
        assert "Traceback" not in screen


def test_a_live_server_stops_the_work_too(v7_dsn: str, pg_server: pg.TestServer) -> None:
    """A real server blocked by a lock: health is UNKNOWN in time, and no query of ours is left running or
    waiting on the server afterwards (statement_timeout and the cancel stop it there, too)."""
    blocker = psycopg.connect(v7_dsn)
    try:
        blocker.execute("LOCK TABLE dead_letter_events IN ACCESS EXCLUSIVE MODE")
        done = cli("health", "--dsn", v7_dsn, "--timeout", str(LIMIT_S))
        assert done.returncode == 3, done.stderr
        assert one_line(done.stderr).startswith("dlq-tui: DLQ UNKNOWN - ")
        assert _our_sessions_end(pg_server, v7_dsn)
    finally:
        blocker.close()


def _our_sessions_end(server: pg.TestServer, dsn: str, within_s: float = 5.0) -> bool:
    """True once no dlq-tui session is left on the database (a backend takes a moment to exit after its client)."""
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    ends_at = time.monotonic() + within_s
    with server.admin() as admin:
        while time.monotonic() < ends_at:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dlq-tui' AND datname = %s",
                (database,),
            ).fetchone()
            if row == (0,):
                return True
            time.sleep(0.1)
    return False


# ------------------------------------------------------------------------------------- the settings


def test_timeout_settings_resolve_flag_then_environment_then_default() -> None:
    assert resolve_timeout(None, "DLQ_TUI_TIMEOUT", DEFAULT_TIMEOUT_S, env={}) == DEFAULT_TIMEOUT_S == 30
    assert resolve_timeout(None, "DLQ_TUI_TIMEOUT", 30, env={"DLQ_TUI_TIMEOUT": " "}) == 30  # empty: unset
    assert resolve_timeout(None, "DLQ_TUI_TIMEOUT", 30, env={"DLQ_TUI_TIMEOUT": "12.5"}) == 12.5
    assert resolve_timeout(5, "DLQ_TUI_TIMEOUT", 30, env={"DLQ_TUI_TIMEOUT": "12.5"}) == 5
    assert resolve_timeout(0, "DLQ_TUI_TIMEOUT", 30, env={}) is None  # 0: no limit
    assert resolve_timeout(None, "DLQ_TUI_MIGRATE_TIMEOUT", DEFAULT_MIGRATE_TIMEOUT_S, env={}) == 3600
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(SettingFault, match="DLQ_TUI_TIMEOUT: expected a number of seconds"):
            resolve_timeout(None, "DLQ_TUI_TIMEOUT", 30, env={"DLQ_TUI_TIMEOUT": bad})


def test_bad_settings_are_one_line() -> None:
    for argv, code in ((["check"], 2), (["health"], 3)):
        done = cli(*argv, "--dsn", "host=127.0.0.1 port=1", DLQ_TUI_TIMEOUT="soon")
        assert done.returncode == code
        assert one_line(done.stderr) == "dlq-tui: DLQ_TUI_TIMEOUT: expected a number of seconds, got 'soon'"
    for argv, message in (
        (["check", "--timeout", "-3"], "expected a number of seconds from 0 (no limit) up, got '-3'"),
        (["--migrate", "--timeout", "5"], "--timeout does not apply to --migrate: use --migrate-timeout"),
        (["--migrate-timeout", "5", "check"], "--migrate-timeout goes with --migrate"),
    ):
        done = cli(*argv, "--dsn", "host=127.0.0.1 port=1")
        assert done.returncode == 2 and message in done.stderr, done.stderr


# ------------------------------------------------------------------------------------- the watchdog


def test_a_command_stuck_outside_any_socket_is_ended_by_on_stuck() -> None:
    """The last resort: nothing to cut (the command waits on something else) and it does not end."""
    stuck = threading.Event()
    deadline = Deadline(0.2, "--timeout", on_stuck=stuck.set).start()
    started = time.monotonic()
    try:
        assert stuck.wait(timeout=15)
        assert deadline.expired
        assert time.monotonic() - started >= 0.2
    finally:
        deadline.stop()


def test_a_command_that_ends_in_time_is_left_alone() -> None:
    stuck = threading.Event()
    deadline = Deadline(0.3, "--timeout", on_stuck=stuck.set).start()
    deadline.stop()
    assert not stuck.wait(timeout=1.0)
    assert not deadline.expired
    unlimited = Deadline(0, "--timeout").start()
    assert unlimited.remaining() is None and unlimited.statement_timeout_ms() is None
