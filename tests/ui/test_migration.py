"""Migration panel on a real legacy (v6) database: status, plan, dry run, confirmed upgrade, live step log."""

from __future__ import annotations

from sqlalchemy import text

from dlq_tui.db.connect import make_engine
from tests.dbstates import make_legacy_v6
from tests.ui.conftest import SIZE, make_app, screen_text, settle

FINAL = {"done", "skipped"}


def legacy(dsn: str, rows: int = 120) -> None:
    engine = make_engine(dsn)
    make_legacy_v6(engine, rows=rows)
    engine.dispose()


async def test_upgrade_a_legacy_database_from_the_panel(empty_dsn: str) -> None:
    legacy(empty_dsn)
    app = make_app(empty_dsn)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "needs v7" in screen_text(app)
        assert "migration panel" in screen_text(app)  # health explains instead of crashing
        await pilot.press("m")
        await settle(pilot)
        screen = app.screen
        planned = list(screen.steps)
        assert planned, "a v6 database has steps to run"
        assert "step(s) to run" in screen_text(app)

        await pilot.press("u")
        await pilot.pause()
        modal = app.screen
        assert type(modal).__name__ == "ConfirmModal"
        assert "dlq" in screen_text(app) and "Upgrade" in screen_text(app)
        assert app.focused is not None and app.focused.id == "no"  # the safe choice has the focus
        await pilot.press("n")
        await settle(pilot)
        assert screen.outcome is None  # "no" changed nothing

        reported: list[tuple[str, str]] = []
        app_hook_target = screen.query_one("StepLog")
        original = app_hook_target.report

        def spy(step):  # type: ignore[no-untyped-def]
            reported.append((step.name, step.status))
            original(step)

        app_hook_target.report = spy  # type: ignore[method-assign]
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, timeout=60)
        assert screen.outcome == "done", screen_text(app)
        # Every planned step was reported live, and every step ended done or skipped.
        names = [name for name, _ in reported]
        assert set(planned) <= set(names)
        log = screen.query_one("StepLog")
        assert log.statuses and all(status in FINAL for status in log.statuses.values()), log.statuses
        assert any(status == "running" for _, status in reported)  # streamed as they ran, not at the end
        shown = screen_text(app)
        assert "Migration finished" in shown and "schema v7" in shown

        # The other screens work without a restart.
        await pilot.press("e")
        await settle(pilot)
        engine = make_engine(empty_dsn)
        with engine.connect() as conn:
            pending = conn.execute(text("SELECT count(*) FROM dead_letter_events WHERE NOT resolved")).scalar_one()
        engine.dispose()
        assert 0 < app.screen.table.row_count == pending
        await pilot.press("h")
        await settle(pilot)
        assert "Circuit breakers" in screen_text(app)

    engine = make_engine(empty_dsn)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM schema_state WHERE key = 'schema_version'")).scalar_one() == "7"
    engine.dispose()


async def test_dry_run_shows_sql_and_changes_nothing(empty_dsn: str) -> None:
    legacy(empty_dsn, rows=10)
    app = make_app(empty_dsn)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot, timeout=60)
        assert app.screen.outcome == "dry-run"
        shown = screen_text(app)
        assert "ALTER TABLE" in shown or "alter table" in shown.lower()
        assert "nothing was changed" in shown
    assert not app.schema_ready


async def test_read_only_session_cannot_upgrade(empty_dsn: str) -> None:
    legacy(empty_dsn, rows=0)
    app = make_app(empty_dsn, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert type(app.screen).__name__ == "MigrationScreen"  # no confirmation offered
        assert "Read-only session" in screen_text(app)
