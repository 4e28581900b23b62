"""End to end in a real pseudo-terminal: the `dlq-tui` console script on a database with the hostile demo
rows. What the terminal receives must show the attackers' escapes as text and never carry them out.

Textual writes its own control sequences (alternate screen, cursor, SGR colours, mouse modes): the checks
name the payloads' sequences exactly (title "pwned", OSC 52 clipboard, OSC 8 to evil.example, the 8-bit
CSI, clear scrollback) rather than forbidding every escape. Also: `dlq-tui --dsn <bad>` (the app, no
command) refuses each connection fault with one line and exit 2 before it takes over the terminal.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from dlq_tui.cli import run
from dlq_tui.demo import hostile_ids
from tests.cli.test_connection_faults import (  # noqa: F401  (fixtures used by name)
    FAULTS,
    Fault,
    _assert_one_clean_line,
    _expected,
    fault_server,
    no_dsn_in_environment,
    silent_port,
)
from tests.support.console import console_script
from tests.support.faultservers import FaultServer
from tests.support.pg import TestServer
from tests.support.terminal import DSN_VARIABLES, Terminal
from tests.ui.conftest import DemoDb

# The payloads' own sequences, exactly as fill_demo stores them (see dlq_tui/demo.py).
FORBIDDEN: dict[str, bytes] = {
    "title change": b"\x1b]0;root@prod",
    "title change (OSC 2)": b"\x1b]2;owned",
    "clipboard write": b"\x1b]52;",
    "hyperlink to evil.example": b"\x1b]8;;https://evil.example",
    "8-bit CSI": "\x9b2J".encode(),
    "clear scrollback": b"\x1b[3J",
    "red text from the payload": b"\x1b[31mHACKED",
    "DCS": b"\x1bP",
}


@pytest.mark.slow
def test_hostile_rows_in_a_real_terminal_show_as_text(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        ids = hostile_ids(conn)
        pending = {
            i
            for (i,) in conn.execute(
                text("SELECT id FROM dead_letter_events WHERE NOT resolved AND id = ANY(:ids)"),
                {"ids": list(ids.values())},
            )
        }
    # Each row's escape as the detail pane spells it: seeing it means the cursor is on that row. (Textual
    # repaints only changed cells, so "event <id>" may never appear whole in the stream; these do.)
    spelled = {
        "clear_screen": "\\x1b[2J",
        "window_title": "\\x1b]0;root@prod",
        "osc52_clipboard": "\\x1b]52;c;",
        "osc8_link": "\\x1b]8;;https://evil.example",
    }
    visit = [name for name in spelled if ids[name] in pending]
    assert {"clear_screen", "window_title"} <= set(visit)

    term = Terminal([console_script(), "--dsn", demo_db.dsn, "--refresh", "60"])
    try:
        term.read_until(["Pending", "connected"], timeout=30)
        started_at = len(term.raw)  # Textual's own start-up output ends here
        term.send("e")
        term.read_until(["events", "in view"], timeout=15, since=started_at)
        for name in visit:
            mark = len(term.raw)
            term.send("g")
            term.read_until(["Jump to event id"], timeout=15, since=mark)
            term.send(f"{ids[name]}\r")
            term.read_until([spelled[name]], timeout=20, since=mark)
            # The hostile row may already be on the first page, so its text alone does not prove the jump is done:
            # wait until the app stops drawing (dialog closed, page and detail loaded) before the next `g`.
            term.read_quiet(idle=0.7, timeout=15)
        screen = term.text()
        assert all(spelled[name] in screen for name in visit)
        assert "Traceback" not in screen

        for what, sequence in FORBIDDEN.items():
            assert sequence not in term.raw, f"{what} reached the terminal"
        decoded = term.raw.decode("utf-8", "replace")  # 0x9b alone is also a UTF-8 continuation byte
        assert not any("\x80" <= ch <= "\x9f" for ch in decoded), "a C1 control reached the terminal"
        # Clear-screen: whatever Textual itself sends at start-up, nothing after it comes from the data.
        assert b"\x1b[2J" not in term.raw[started_at:], "a clear-screen sequence after start-up"
        # Every OSC Textual sent is its own (none carries payload text).
        for chunk in term.raw.split(b"\x1b]")[1:]:
            assert not chunk.startswith((b"0;", b"2;", b"8;;http", b"52;")), chunk[:40]

        term.send("q")
        assert term.wait_exit(timeout=15) == 0
    finally:
        term.close()


# --- `dlq-tui --dsn <bad>`: the app refuses before taking the terminal ---------------------------------------
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_app_start_refuses_each_connection_fault_in_one_line(
    fault: Fault,
    fault_server: FaultServer,  # noqa: F811
    tmp_path: Path,
    silent_port: int,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = fault.dsn(fault_server, tmp_path, silent_port)
    assert run(["--dsn", dsn]) == 2
    captured = capsys.readouterr()
    line = _assert_one_clean_line(captured.out, captured.err, fault)
    assert _expected(fault, tmp_path) in line


def test_console_script_app_missing_database_and_wrong_password(
    pg_server: TestServer,
    fault_server: FaultServer,  # noqa: F811
) -> None:
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(pg_server.admin_dsn)
    params["dbname"] = "no_such_db_for_dlq"
    wrong = fault_server.tcp_dsn(password="not-the-Secret-42")
    env = {k: v for k, v in os.environ.items() if k not in DSN_VARIABLES}
    for dsn, expected, secret in (
        (conninfo.make_conninfo("", **params), 'database "no_such_db_for_dlq" does not exist', None),
        (wrong, "password authentication failed", "not-the-Secret-42"),
    ):
        done = subprocess.run([console_script(), "--dsn", dsn], capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dlq-tui: ") and expected in lines[0], done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert "\x1b[?1049h" not in done.stdout + done.stderr  # never took over the terminal
        if secret:
            assert secret not in done.stderr + done.stdout
