"""Dry runs print SQL that can be read and pasted (bound values as literals) and never claim a step is done."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine

from dlq_tui.cli import run
from dlq_tui.db.connect import make_engine
from tests.support import dbstates
from tests.ui.conftest import make_app, settle

PLACEHOLDER = re.compile(r"(?<![:\w]):[A-Za-z_]\w*")  # :v, :k (not ::text casts, not 12:30 times)
MARKER_SQL = {
    "empty": "INSERT INTO schema_state (key, value) VALUES ('schema_version', '7');",
    "legacy": "UPDATE schema_state SET value = '7' WHERE key = 'schema_version';",
}


def _make(state: str, engine: Engine) -> None:
    if state == "legacy":
        dbstates.make_legacy_v6(engine, 20)


@pytest.mark.parametrize("online", [False, True], ids=["atomic", "online"])
@pytest.mark.parametrize("state", ["empty", "legacy"])
def test_cli_dry_run_binds_its_values_and_says_planned(
    state: str, online: bool, empty_engine: Engine, empty_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _make(state, empty_engine)
    assert run(["--dsn", empty_dsn, "--migrate", "--dry-run", *(["--online"] if online else [])]) == 0
    out = capsys.readouterr().out
    if not online:  # (the online plan's batch statements repeat with new bounds: they keep :lo / :hi)
        statements = "\n".join(line for line in out.splitlines() if not line.startswith("--"))
        assert PLACEHOLDER.findall(statements) == [], PLACEHOLDER.findall(statements)
        assert MARKER_SQL[state] in out
    steps = re.findall(r"^-- step \d+ (\w+): (\w+)\.", out, flags=re.MULTILINE)
    assert steps and "done" not in {status for _, status in steps}, steps
    assert any(status == "planned" for _, status in steps)


async def test_panel_dry_run_lists_planned_steps_and_bound_sql(empty_dsn: str) -> None:
    from tests.ui.conftest import screen_text

    engine = make_engine(empty_dsn)
    dbstates.make_legacy_v6(engine, 20)
    engine.dispose()
    app = make_app(empty_dsn)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot, timeout=60)
        log = app.screen.query_one("StepLog")
        shown = {name: log.get_cell(name, "status").plain.split()[-1] for name in log.statuses}
        assert shown["add_columns"] == "planned" and "done" not in shown.values(), shown
        sql = "\n".join(str(block) for block in app.screen.sql)
        assert MARKER_SQL["legacy"].rstrip(";") in sql and not PLACEHOLDER.findall(sql)
        assert "nothing was changed" in screen_text(app)
