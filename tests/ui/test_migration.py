"""Migration panel on a real legacy (v6) database: status, plan, dry run, confirmed upgrade, live step log."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from dlq_tui.commands.check import report_lines
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate.runner import CURRENT_LINE, check
from dlq_tui.migrate.steps import STEP_NAMES
from dlq_tui.ui.app import DlqApp
from dlq_tui.ui.source import DataSource
from dlq_tui.ui.widgets.step_log import StepLog
from tests.support.dbstates import create_v7_from_metadata, insert_legacy_rows, make_legacy_v6
from tests.ui.conftest import LABEL, SIZE, make_app, picture_lines, screen_text, settle

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
        shown_status = {name: log.get_cell(name, "status").plain.split()[-1] for name in log.statuses}
        assert all(status in FINAL for status in shown_status.values()), shown_status  # what the lines say
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


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("d", ("ALTER TABLE", "nothing was changed")),  # the atomic plan
        ("D", ("Online dry run finished", "CONCURRENTLY")),  # the online plan
    ],
)
async def test_dry_runs_show_their_sql_and_change_nothing(empty_dsn: str, key: str, expected: tuple[str, ...]) -> None:
    legacy(empty_dsn, rows=10)
    app = make_app(empty_dsn)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot, timeout=60)
        assert app.screen.outcome == "dry-run"
        shown = screen_text(app)
        assert all(text_ in shown for text_ in expected), shown
    assert not app.schema_ready


async def test_read_only_session_cannot_upgrade(empty_dsn: str) -> None:
    legacy(empty_dsn, rows=0)
    app = make_app(empty_dsn, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        for key in ("u", "o"):
            await pilot.press(key)
            await settle(pilot)
            assert type(app.screen).__name__ == "MigrationScreen"  # no confirmation offered
        assert "Read-only session" in screen_text(app)


class SlowOnlineSource(DataSource):
    """Small batches at a capped rate, so a few thousand rows take long enough to show live progress."""

    online_batch_size = 200
    online_max_rate = 2500.0


async def test_online_upgrade_from_the_panel_streams_progress_in_place(empty_dsn: str) -> None:
    legacy(empty_dsn, rows=3000)
    app = make_app(empty_dsn, source_class=SlowOnlineSource)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        screen = app.screen
        assert "upgrades online" in screen_text(app)

        await pilot.press("o")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmModal"
        shown = screen_text(app)
        assert LABEL.split("@")[1] in shown and "NOT atomic" in shown and "resumes" in shown
        assert app.focused is not None and app.focused.id == "no"
        await pilot.press("n")
        await settle(pilot)
        assert screen.outcome is None

        log = screen.query_one(StepLog)
        first_start: list[str] = []  # steps in the order they really started
        progress: list[tuple[str, int]] = []  # the running backfill's detail cell as shown, and the line count
        original = log.report

        def spy(step):  # type: ignore[no-untyped-def]
            original(step)
            if step.status != "pending" and step.name not in first_start:
                first_start.append(step.name)
            if step.name == "backfill" and step.status == "running" and "rows/s" in step.detail:
                assert log.get_cell("backfill", "status").plain.endswith("running")
                progress.append((log.get_cell("backfill", "detail").plain, log.row_count))

        log.report = spy  # type: ignore[method-assign]
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, timeout=120)
        assert screen.outcome == "done", screen_text(app)
        assert "Online migration finished" in screen_text(app)

        # Every step reported once, on one line each, ending done or skipped.
        assert set(log.statuses) == set(STEP_NAMES)
        assert all(status in FINAL for status in log.statuses.values()), log.statuses
        assert log.row_count == len(STEP_NAMES)
        shown_status = {name: log.get_cell(name, "status").plain.split()[-1] for name in STEP_NAMES}
        assert all(status in FINAL for status in shown_status.values()), shown_status  # what the lines say
        # The backfill's progress (rows done / total, rate, ETA) was on screen while it ran, updating its
        # own line: the table never grew a line per progress event.
        assert progress, "no progress detail was shown while the backfill ran"
        assert all(" / 3,000 rows" in detail and "ETA" in detail for detail, _ in progress), progress
        assert all(rows == len(STEP_NAMES) for _, rows in progress)
        # Lines read in the order the steps ran, which is not number order (paging indexes run early).
        assert log.order()[: len(first_start)] == first_start
        assert first_start.index("paging_indexes") < first_start.index("add_constraints")

        with_engine = make_engine(empty_dsn)
        try:
            assert check(with_engine).current
        finally:
            with_engine.dispose()

        # The other screens work without a restart.
        await pilot.press("e")
        await settle(pilot)
        assert app.screen.table.row_count > 0
        await pilot.press("h")
        await settle(pilot)
        assert "Circuit breakers" in screen_text(app)


async def test_online_keys_are_in_help_footer_and_palette(empty_dsn: str) -> None:
    from dlq_tui.ui.palette import palette_commands

    legacy(empty_dsn, rows=0)
    app = make_app(empty_dsn)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert "Online upgrade" in screen_text(app)  # footer
        await pilot.press("question_mark")
        await settle(pilot)
        assert "Upgrade online: short locks" in screen_text(app)
    actions = {(c.mode, c.action) for c in palette_commands(DlqApp)}
    assert {("migration", "online"), ("migration", "online_dry_run")} <= actions


async def test_sqlite_explains_why_online_is_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(f"sqlite:///{tmp_path / 'dlq.db'}")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert "nothing to do online" in screen_text(app)
        await pilot.press("o")
        await settle(pilot)
        assert type(app.screen).__name__ == "MigrationScreen"  # no confirmation offered
        assert app.screen.outcome is None


async def test_header_reads_one_label_a_line_even_as_copied_text(empty_dsn: str) -> None:
    """The header ran its labels together ("schema_state says 7Catalog looks like v7Alembic v7_1") wherever
    the spacing at the end of a styled label was lost: each label now has its own line and its colon."""
    legacy(empty_dsn, rows=5)
    app = make_app(empty_dsn)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("m")
        await settle(pilot)
        header = app.screen.query_one("#migration-status").content.plain.splitlines()
        assert header[:4] == [
            f"Database: {LABEL}",
            "Marker:   schema_state says 6",
            "Catalog:  looks like v6",
            "Alembic:  not stamped",
        ]
        copied = picture_lines(app)
        assert "Marker:   schema_state says 6" in copied and "Catalog:  looks like v6" in copied
        assert not any("6Catalog" in line or "v6Alembic" in line for line in copied)


async def test_current_schema_with_rows_without_checksum_says_current_and_warns(empty_dsn: str) -> None:
    """The pipeline's v7 without pgcrypto (every checksum NULL): the panel gives `dlq-tui check`'s verdict and
    warning lines, word for word, and points at the backfill; it does not say "not current"."""
    engine = make_engine(empty_dsn)
    create_v7_from_metadata(engine)
    with engine.begin() as conn:
        insert_legacy_rows(conn, 30)
    status = check(engine)
    engine.dispose()
    app = make_app(empty_dsn)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("m")
        await settle(pilot)
        shown = [line.strip() for line in app.screen.query_one("#migration-status").content.plain.splitlines()]
        expected = [line.strip() for line in report_lines(status)]
        assert expected[0] == CURRENT_LINE and len(expected) == 2
        assert shown[4] == CURRENT_LINE
        assert shown[5] == expected[1] and "v7 migration run without pgcrypto" in shown[5]
        assert "u runs that backfill here (asks first), d shows its SQL." in shown
        assert "step(s) to run" not in screen_text(app)
