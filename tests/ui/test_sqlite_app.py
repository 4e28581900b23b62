"""The app on a SQLite DLQ (the processor's default database): health, browse, resolve, export, v7-only keys."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import Input

from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.source import DataSource
from tests.support import hostile_corpus as hostile
from tests.support.sqlite_dlq import create_dlq, dsn_of, event, insert, read_row
from tests.ui.conftest import SIZE, make_app, notes, open_events, press, screen_text, settle

NOW = datetime.now(UTC)
V7_ONLY = "v7 is PostgreSQL-only"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = create_dlq(tmp_path / "cowrieprocessor.sqlite")
    rows = [event(created_at=NOW - timedelta(minutes=500 - i), source_offset=i) for i in range(450)]
    rows.append(
        event(
            reason="payload_not_dict",
            payload=json.dumps({"cmd": hostile.MARKUP_CLICK + hostile.OSC52_CLIPBOARD + hostile.WINDOW_TITLE}),
            metadata_json=None,
            created_at=NOW - timedelta(minutes=600),
        )
    )
    rows.append(event(created_at="garbage"))
    insert(path, rows)
    return path


async def test_health_shows_the_legacy_figures_and_v7_ones_as_unavailable(db: Path) -> None:
    app = make_app(dsn_of(db))
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HealthScreen)
        shown = screen_text(app)
        assert "452" in shown  # every pending event, the undated one too
        assert "n/a" in shown and "v7 only" in shown  # retries, locks, classes, priority: no such column
        assert "sqlite legacy, marker 7" in shown
        await press(pilot, "S")  # the per-source view needs v7: it says so instead of loading
        assert f"the per-source view unavailable: {V7_ONLY}" in screen_text(app)
        assert not any("Traceback" in n for n in notes(app))


async def test_browse_resolve_export_and_a_v7_only_key_refused(db: Path, tmp_path: Path) -> None:
    app = make_app(dsn_of(db))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert isinstance(screen, EventsScreen)
        first = screen.table.highlighted
        assert first is not None and first.reason == "payload_not_dict"  # the oldest first: created order
        shown = screen_text(app)
        assert "\x1b" not in shown and "payload_not_dict" in shown
        # Page down past the first page (200 rows) and back: the keyset pages load without a fault.
        for _ in range(3):
            await press(pilot, "end")
        assert screen.table.highlighted is not None and screen.table.highlighted.reason == "json_parsing_failed"
        await press(pilot, "home")
        assert screen.table.highlighted is not None and screen.table.highlighted.id == first.id

        # A v7-only key answers with the one reason, and changes nothing.
        await press(pilot, "c")
        assert f"claim unavailable: {V7_ONLY}" in notes(app)
        assert isinstance(app.screen, EventsScreen)
        # The payload search is PostgreSQL's; the box does not open, and the text filter is named instead.
        await press(pilot, "slash")
        assert f"search (\\ filters by payload text) unavailable: {V7_ONLY}" in notes(app)
        assert isinstance(app.screen, EventsScreen)

        # Resolve the highlighted event: it leaves the pending view; the audit goes into metadata_json.
        await press(pilot, "x", "1", "enter")
        assert isinstance(app.screen, ConfirmModal)
        await press(pilot, "y")
        assert "resolve: 1 done" in notes(app)
        row = read_row(db, first.id)
        assert row["resolved"] == 1 and row["resolved_at"] is not None
        assert json.loads(row["metadata_json"])["operator_audit"][0]["operator"] == "tester"
        assert first.id not in {r.id for r in screen.table.window_rows}

        # Export the highlighted one.
        target = tmp_path / "one.jsonl"
        await press(pilot, "E")
        app.screen.query_one(Input).value = str(target)
        await press(pilot, "enter")
        await settle(pilot)
        (line,) = target.read_text().splitlines()
        assert json.loads(line)["id"] == screen.table.highlighted.id


class QuickBusy(DataSource):
    sqlite_busy_timeout_s = 0.3


async def test_hostile_payload_shows_as_text_in_the_detail_pane(db: Path) -> None:
    app = make_app(dsn_of(db))
    async with app.run_test(size=(160, 60)) as pilot:
        await open_events(pilot)
        shown = screen_text(app)
        assert hostile.MARKUP_CLICK in shown  # the oldest event's payload: literally, never as markup
        assert "\x1b" not in shown and "\x07" not in shown


async def test_a_locked_database_makes_resolve_say_so_in_one_line(db: Path) -> None:
    app = make_app(dsn_of(db), source_class=QuickBusy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        target = screen.table.highlighted
        assert target is not None
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the processor mid-batch
        try:
            await press(pilot, "x", "1", "enter", "y")
            await settle(pilot, timeout=60)
        finally:
            other.rollback()
            other.close()
        assert "database is locked, retrying" in notes(app)
        assert any(n.startswith("busy, try again: the SQLite database is locked") for n in notes(app))
        assert read_row(db, target.id)["resolved"] == 0
