"""The health screen at 80x24 and 200x50: no count, title, breaker name or link state is ever cut."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from dlq_tui.ui.screens.health import TILES
from tests.support.factories import add_bare_events, insert_breaker
from tests.ui.conftest import DemoDb, demo_app, make_app, screen_text, settle

LONG_BREAKER = "cowrie_ingest_primary_breaker"


def whole(value: str, shown: str) -> bool:
    """value appears as a whole token: not glued to more digits, not followed by an ellipsis."""
    return re.search(rf"(?<![\w,.]){re.escape(value)}(?![\w,.…])", shown) is not None


def widget_text(app: Any, selector: str) -> str:
    """Every line a widget draws, scrolled into view or not."""
    widget = app.screen.query_one(selector)
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


@pytest.fixture
def big_demo(demo_db: DemoDb) -> DemoDb:
    """The demo data plus counts with five and six digits, and a breaker with a long name."""
    add_bare_events(demo_db.engine, 54_522, retry_count=9, priority=2, classification="malicious")
    add_bare_events(demo_db.engine, 123_456, resolved=True)
    with demo_db.engine.begin() as conn:
        insert_breaker(conn, LONG_BREAKER, "half_open", failure_count=3)
    return demo_db


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
async def test_counts_titles_breakers_and_link_state_are_whole(big_demo: DemoDb, size: tuple[int, int]) -> None:
    with big_demo.engine.connect() as conn:
        view = conn.execute(text("SELECT * FROM dlq_health")).mappings().one()
        by_priority = conn.execute(
            text("SELECT count(*) FROM dead_letter_events WHERE NOT resolved GROUP BY priority")
        ).scalars()
        priority_counts = [f"{n:,}" for n in by_priority]
    counts = [
        f"{view[name]:,}"
        for name in (
            "pending_events",
            "processed_events",
            "high_retry_events",
            "locked_events",
            "malicious_events",
            "high_priority_events",
        )
    ]
    assert max(len(c) for c in counts) >= 7  # big numbers really are shown
    app = demo_app(big_demo, read_only=True)  # the READ-ONLY badge makes the top line longest
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        top = shown.splitlines()[0]
        assert top.rstrip().endswith("connected"), top
        assert "READ-ONLY" in top and "schema v7" in top
        assert "q Quit" in shown.splitlines()[-1]  # the footer keeps its last key
        tiles = "\n".join(widget_text(app, f"#{field}") for field in TILES)
        for count in counts:
            assert whole(count, tiles), (count, tiles)
            assert whole(count, shown), count  # and the tiles are on screen, not scrolled away
        for title in TILES.values():
            assert title in shown, title
        breakers = widget_text(app, "#breakers")
        for name in ("dlq_main", "dlq_repair", LONG_BREAKER):
            assert whole(name, breakers), breakers
        assert "next attempt" in breakers
        runs = widget_text(app, "#runs")
        for header in ("started", "method", "done", "failed", "took"):
            assert whole(header, runs), runs
        for count in priority_counts:
            assert whole(count, widget_text(app, "#by-priority")), count
        assert "…" not in widget_text(app, "#reasons").split("\n", 2)[1]  # the header row
        assert "…" not in tiles


async def test_disconnected_state_says_r_retries_now_and_r_does(tmp_path: Any) -> None:
    """A server that is not there: the bar says how to retry at once (whole, at 80 columns), and it is true."""
    dsn = f"host={tmp_path} port=1 dbname=dlq user=ops connect_timeout=2"
    app = make_app(dsn)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.connection_state == "disconnected":
                break
            await pilot.pause(0.05)
        for mode in ("h", "e", "m"):
            await pilot.press(mode)
            await pilot.pause(1.1)  # one tick of the bar
            top = screen_text(app).splitlines()[0]
            assert top.rstrip().endswith("r retries now"), top
            assert "disconnected" in top
            if mode == "m":
                continue
            app._cancel_retry()
            app._schedule_retry()  # the next automatic attempt is seconds away
            before = app.reconnect_attempts
            await pilot.press("r")
            await pilot.pause(0.2)
            assert app.reconnect_attempts == before + 1, f"r did not retry on {mode}"
    app = make_app(dsn)
    async with app.run_test(size=(200, 50)) as pilot:
        for _ in range(100):
            if app.connection_state == "disconnected":
                break
            await pilot.pause(0.05)
        await pilot.pause(1.1)
        top = screen_text(app).splitlines()[0]
        assert "no data read yet · r retries now" in top, top  # wide: every part of the state


async def test_every_finding_is_reachable_with_f(big_demo: DemoDb) -> None:
    from dlq_tui.health_rules import Thresholds, evaluate, worst_first

    app = demo_app(big_demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        problems = worst_first([f for f in evaluate(app.screen._snapshot, Thresholds()) if f.level != "ok"])
        assert len(problems) > 2
        short = widget_text(app, "#health-status").splitlines()
        assert len(short) == 3 and f"+{len(problems) - 2} more (f)" in short[0]
        await pilot.press("f")
        await pilot.pause()
        lines = widget_text(app, "#health-status").splitlines()
        assert len(lines) == 1 + len(problems) and "more" not in lines[0]
        for line, finding in zip(lines[1:], problems, strict=True):
            assert line.lstrip().startswith("● " + finding.message[:40])
        await pilot.press("f")
        await pilot.pause()
        assert len(widget_text(app, "#health-status").splitlines()) == 3
