"""Health screen on the demo data, and the promise that input never waits for a query."""

from __future__ import annotations

import time

from sqlalchemy import text

from dlq_tui.db.models import HealthSnapshot
from dlq_tui.ui.source import DataSource
from tests.ui.conftest import SIZE, DemoDb, demo_app, make_app, screen_text, settle


async def test_health_tiles_breakers_runs_and_analysis(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        with demo_db.engine.connect() as conn:
            pending = conn.execute(text("SELECT pending_events FROM dlq_health")).scalar_one()
        assert f"{pending:,}" in shown
        for heading in (
            "Pending",
            "Oldest",
            "Locked",
            "Circuit breakers",
            "Last processing runs",
            "Top failure reasons",
        ):
            assert heading in shown
        assert "dlq_main" in shown and "open" in shown  # the demo's tripped breaker
        assert "CRITICAL" in shown  # an open breaker is critical
        assert "figures from 0s ago" in shown  # frozen clock: the age of the figures is shown


class SlowHealth(DataSource):
    """The health query behind a 4 s pg_sleep on the real server (the ui itself never writes SQL)."""

    def health(self) -> HealthSnapshot:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(4)"))
        return super().health()


async def test_keys_answer_while_a_slow_health_query_runs(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn, source_class=SlowHealth)
    async with app.run_test(size=SIZE) as pilot:
        # Wait for the schema check so that the health poll is the one running.
        for _ in range(100):
            if app.schema_ready:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        health = app.screen
        assert health.busy()  # the slow poll is in flight
        started = time.monotonic()
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape", "m")
        await pilot.pause()
        assert app.current_mode == "migration"
        elapsed = time.monotonic() - started
        # Every key was handled while the 4 s query was still running: nothing waited for it.
        assert health.busy(), "the keys were only handled after the query finished"
        assert elapsed < 3.0, f"keys took {elapsed:.2f} s"
        await pilot.press("h")
        await settle(pilot)
        assert "Circuit breakers" in screen_text(app)


async def test_refresh_never_overlaps(demo_db: DemoDb) -> None:
    calls: list[tuple[float, float]] = []

    class Counting(DataSource):
        def health(self) -> HealthSnapshot:
            start = time.monotonic()
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.3)"))
            result = super().health()
            calls.append((start, time.monotonic()))
            return result

    app = make_app(demo_db.dsn, source_class=Counting, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(6):
            await pilot.press("r")  # impatient operator: presses r while a poll runs
            await pilot.pause(0.1)
        await pilot.pause(1.5)
        await settle(pilot)
    assert len(calls) >= 3
    ordered = sorted(calls)
    assert all(ordered[i][1] <= ordered[i + 1][0] for i in range(len(ordered) - 1)), "two polls overlapped"
