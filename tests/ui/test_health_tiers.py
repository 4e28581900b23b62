"""The health screen's two tiers, its trends and its pause key, on the demo data."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from dlq_tui.cli import build_parser
from dlq_tui.commands.health import thresholds_from_args
from dlq_tui.db.models import FastSnapshot, ViewReading
from dlq_tui.health_rules import Thresholds
from dlq_tui.ui.source import DataSource
from dlq_tui.ui.widgets.tile import Tile
from tests.ui.conftest import SIZE, DemoDb, demo_app, make_app, screen_text, settle


class Counting(DataSource):
    calls: dict[str, int]

    def health_fast(self) -> FastSnapshot:
        self.calls["fast"] += 1
        return super().health_fast()

    def health_view(self, trends_now: datetime | None = None) -> ViewReading:
        self.calls["view"] += 1
        return super().health_view(trends_now)


def counting() -> tuple[type[Counting], dict[str, int]]:
    calls = {"fast": 0, "view": 0}
    return type("C", (Counting,), {"calls": calls}), calls


async def test_fast_tier_every_refresh_the_view_only_on_its_cadence_and_on_r(demo_db: DemoDb) -> None:
    source, calls = counting()
    app = make_app(demo_db.dsn, source_class=source, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.pause(2.0)
        await settle(pilot)
        assert calls["fast"] >= 3 and calls["view"] == 1, calls
        processed = app.screen.query_one("#processed_events", Tile)
        with demo_db.engine.connect() as conn:
            resolved = conn.execute(text("SELECT processed_events FROM dlq_health")).scalar_one()
        assert processed.value is not None and processed.value.lstrip("~") == f"{resolved:,}"
        assert processed.value.startswith("~")  # read two seconds ago: an estimate of now
        assert processed.detail.startswith("view ") and processed.detail.endswith(" ago")
        await pilot.press("r")
        await settle(pilot)
        assert calls["view"] == 2, calls


async def test_space_pauses_every_refresh_and_says_so(demo_db: DemoDb) -> None:
    source, calls = counting()
    app = make_app(demo_db.dsn, source_class=source, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        frozen = dict(calls)
        await pilot.pause(1.6)
        shown = screen_text(app)
        assert calls == frozen, "a refresh ran while paused"
        assert "health · PAUSED" in shown.splitlines()[0]
        await pilot.press("space")
        await pilot.pause(1.2)
        await settle(pilot)
        assert calls["fast"] > frozen["fast"]
        assert "PAUSED" not in screen_text(app)


async def test_trends_draw_from_zero_with_their_peak_and_axis(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        shown = screen_text(app)
    last_hour = demo_db.filled_at.replace(minute=0)
    with demo_db.engine.connect() as conn:
        peak = conn.execute(
            text(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM dead_letter_events "
                "WHERE created_at >= :start AND created_at < :end GROUP BY date_trunc('hour', created_at)) c"
            ),
            {"start": last_hour - timedelta(hours=23), "end": last_hour + timedelta(hours=1)},
        ).scalar_one()
    assert peak > 0, "the demo has events in its last day"
    assert "per hour, last 24 h" in shown and "per day, last 30 days" in shown
    assert f"max {peak:,}/h" in shown
    first = f"{last_hour - timedelta(hours=23):%H:%M}"
    assert any(line.count(first) and f"{last_hour:%H:%M}" in line for line in shown.splitlines())


async def test_thresholds_from_settings_colour_the_tiles(demo_db: DemoDb) -> None:
    calm = Thresholds(pending_warn=None, pending_crit=None)
    strict = Thresholds(pending_warn=None, pending_crit=1)
    for thresholds, level in ((calm, "ok"), (strict, "critical")):
        app = demo_app(demo_db, thresholds=thresholds)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.screen.query_one("#pending_events", Tile).level == level


def test_app_threshold_flags_are_the_health_command_flags() -> None:
    args = build_parser().parse_args(["--crit-pending", "5", "--warn-locked", "off"])
    thresholds = thresholds_from_args(args)
    assert thresholds.pending_crit == 5 and thresholds.locked_warn is None
    assert thresholds.pending_warn == Thresholds().pending_warn
