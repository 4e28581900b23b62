"""The app shell: opens on health, single-key screens, help, palette, read-only badge, quitting."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from dlq_tui.ui.palette import palette_commands
from dlq_tui.ui.source import DataSource
from tests.ui.conftest import LABEL, SIZE, DemoDb, demo_app, make_app, screen_text, settle


async def test_opens_on_health_and_switches_screens(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.current_mode == "health"
        shown = screen_text(app)
        assert LABEL in shown and "schema v7" in shown
        for key, mode, marker in (
            ("e", "events", "priority"),
            ("m", "migration", "Marker"),
            ("h", "health", "Pending"),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert app.current_mode == mode
            assert marker in screen_text(app)
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_help_lists_every_key(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=(100, 140)) as pilot:  # tall enough for the whole list (search language too)
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        shown = screen_text(app)
        for words in ("Health", "Events", "Migration", "Filter", "Jump to id", "Dry run", "Upgrade", "Mark", "Quit"):
            assert words in shown, words
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "HealthScreen"


async def test_palette_offers_every_action_and_runs_it(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"jump to event")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "events"
        assert type(app.screen).__name__ == "JumpModal"
    # Every palette entry names an action that exists on its screen.
    from dlq_tui.ui.app import DlqApp

    owners = {None: DlqApp, **DlqApp.MODES}
    for command in palette_commands(DlqApp):
        name = command.action.split("(")[0]
        assert hasattr(owners[command.mode], f"action_{name}"), command


async def test_read_only_badge(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn, clock=demo_db.clock, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "READ-ONLY" in screen_text(app)


async def test_empty_database_points_to_the_migration_panel(empty_dsn: str) -> None:
    app = make_app(empty_dsn)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        assert "no dead-letter tables" in shown
        assert "migration panel" in shown
        await pilot.press("e")
        await settle(pilot)
        assert "migration panel" in screen_text(app)


async def test_password_never_shown(pg_server, v7_dsn: str) -> None:  # type: ignore[no-untyped-def]
    from dlq_tui.config import Settings
    from dlq_tui.ui.app import DlqApp

    dsn = v7_dsn + " password=s3cr3t-pw"
    app = DlqApp(Settings(dsn=dsn))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "s3cr3t-pw" not in screen_text(app)


class SlowMigrationCheck(DataSource):
    """The migration panel's plan and schema check behind a real 0.3 s pg_sleep: they are still running,
    and report while the app goes down, when q comes right after m."""

    def _sleep(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(0.3)"))

    def plan(self) -> list[str]:
        self._sleep()
        return super().plan()

    def schema_status(self) -> Any:
        self._sleep()
        return super().schema_status()


@pytest.mark.parametrize("key", ["e", "m"])
@pytest.mark.parametrize("slow", [False, True])
async def test_quit_right_after_switching_screens_exits_cleanly(demo_db: DemoDb, key: str, slow: bool) -> None:
    """q typed while the events or migration screen mounts: exit code 0, no exception."""
    app = demo_app(demo_db, source_class=SlowMigrationCheck) if slow else demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key, "q")
        await pilot.pause(0.8)  # the slow workers finish while (or after) the app goes down
    assert app.return_code == 0
    assert app._exception is None
    assert app.exiting
