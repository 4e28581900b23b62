"""Health screen on the demo data, and the promise that input never waits for a query."""

from __future__ import annotations

import re
import time
from datetime import datetime

from sqlalchemy import text

from dlq_tui.db.models import FastSnapshot, ViewReading
from dlq_tui.ui.source import DataSource
from tests.ui.conftest import SIZE, DemoDb, demo_app, make_app, picture_lines, screen_text, settle


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
    """Both health tiers behind a 4 s pg_sleep on the real server (the ui itself never writes SQL)."""

    def health_fast(self) -> FastSnapshot:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(4)"))
        return super().health_fast()

    def health_view(self, trends_now: datetime | None = None) -> ViewReading:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(4)"))
        return super().health_view(trends_now)


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
        print(
            "DBG",
            health._loading,
            health._view_loading,
            health._read_at,
            health._view_read_at,
            elapsed,
            app.schema_ready,
        )
        assert health.busy(), "the keys were only handled after the query finished"
        assert elapsed < 3.0, f"keys took {elapsed:.2f} s"
        await pilot.press("h")
        await settle(pilot)
        assert "Circuit breakers" in screen_text(app)


async def test_refresh_never_overlaps(demo_db: DemoDb) -> None:
    calls: list[tuple[float, float]] = []

    class Counting(DataSource):
        def health_fast(self) -> FastSnapshot:
            start = time.monotonic()
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.3)"))
            result = super().health_fast()
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


async def test_findings_are_readable_worst_first_and_short(demo_db: DemoDb) -> None:
    """The status block at 80x24: a badge, then one finding a line in coloured text on the normal
    background (it was red on red), worst first, at most three lines with "+N more"."""
    from dlq_tui.health_rules import Thresholds, evaluate, worst_first

    app = demo_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        status = app.screen.query_one("#health-status")
        lines = [status.render_line(y) for y in range(status.size.height)]
        texts = [line.text.rstrip() for line in lines]
        problems = worst_first([f for f in evaluate(app.screen._snapshot, Thresholds()) if f.level != "ok"])
        assert len(problems) > 2, "the demo data trips several thresholds"
        assert status.size.height == 3, texts
        assert texts[0].lstrip().startswith("CRITICAL") and f"+{len(problems) - 2} more" in texts[0]
        assert "figures from 0s ago" in texts[0]
        assert problems[0].level == "critical"
        for text, finding in zip(texts[1:], problems, strict=False):
            assert text.lstrip().startswith("● " + finding.message[:30])

        def background(line, needle: str):  # type: ignore[no-untyped-def]
            return next(seg.style.bgcolor for seg in line if needle in seg.text and seg.style is not None)

        normal = background(lines[0], "figures from")
        assert background(lines[0], "CRITICAL") != normal  # the badge stands out
        for line, finding in zip(lines[1:], problems, strict=False):
            segment = next(seg for seg in line if finding.message[:10] in seg.text)
            assert segment.style.bgcolor == normal  # readable: level colour on the normal background
            assert segment.style.color != normal


async def test_findings_counts_and_more_stay_apart_at_160_columns(demo_db: DemoDb) -> None:
    """The badge line read "2 critical, 3 warnings+3 more" once the spacing between its styled runs was lost
    (copied text, the SVG pictures): "+N more" now sits behind a visible separator in the counts' own run."""
    app = demo_app(demo_db)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        head = app.screen.query_one("#health-status").render_line(0).text
        assert re.search(r"\d+ critical, \d+ warnings? · \+\d+ more \(f\)  · figures from ", head), head
        copied = next(line for line in picture_lines(app) if "critical," in line)
        assert re.search(r"warnings? · \+\d+ more", copied), copied
        assert not re.search(r"warnings?\+\d+ more", copied)
