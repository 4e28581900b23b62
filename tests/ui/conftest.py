"""UI fixtures: demo-filled databases, apps with a frozen clock, and a way to wait until the app is idle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from textual.pilot import Pilot

from dlq_tui.config import Settings
from dlq_tui.db.connect import make_engine
from dlq_tui.demo import fill_demo
from dlq_tui.ui.app import DlqApp
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.source import DataSource

SIZE = (100, 30)
LABEL = "operator@db.example:5432/dlq"


@dataclass
class DemoDb:
    dsn: str
    engine: Engine
    filled_at: datetime  # the fill transaction's now(): every demo time is relative to it

    def clock(self) -> datetime:
        return self.filled_at


# Demo times are relative to the fill's now(); the fixture moves them all to this fixed instant so
# that absolute times on screen (detail pane, runs) are the same in every run of the snapshot tests.
ANCHOR = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
TIME_COLUMNS = {
    "dead_letter_events": ("created_at", "resolved_at", "lock_expires_at", "updated_at", "last_processed_at"),
    "dlq_circuit_breaker_state": ("last_failure_time", "next_attempt_time", "created_at", "updated_at"),
    "dlq_processing_metrics": ("started_at", "completed_at"),
}


@pytest.fixture
def demo_db(v7_dsn: str) -> Iterator[DemoDb]:
    engine = make_engine(v7_dsn)
    fill_demo(engine)
    with engine.begin() as conn:
        # fill_demo writes updated_at = now() in its single transaction: that instant, exactly.
        filled_at = conn.execute(text("SELECT max(updated_at) FROM dead_letter_events")).scalar_one()
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # keep the updated_at trigger out
        for table, columns in TIME_COLUMNS.items():
            shift = ", ".join(f"{c} = {c} - CAST(:shift AS interval)" for c in columns)
            conn.execute(text(f"UPDATE {table} SET {shift}"), {"shift": filled_at - ANCHOR})
    yield DemoDb(v7_dsn, engine, ANCHOR)
    engine.dispose()


def make_app(dsn: str, *, clock=None, source_class: type[DataSource] = DataSource, **settings) -> DlqApp:  # type: ignore[no-untyped-def]
    conf = Settings(dsn=dsn, operator="tester", **settings)
    return DlqApp(conf, source=source_class(conf), clock=clock, target_label=LABEL)


def demo_app(db: DemoDb, **kwargs) -> DlqApp:  # type: ignore[no-untyped-def]
    return make_app(db.dsn, clock=db.clock, **kwargs)


def busy(app: DlqApp) -> bool:
    """Anything still loading? Workers running, or the screen waiting for a page, a detail, a poll."""
    return any(w.is_running for w in app.workers) or bool(getattr(app.screen, "busy", lambda: False)())


async def settle(pilot: Pilot[object], *, timeout: float = 20.0) -> None:
    """Wait until workers finished and their messages were handled (several quiet rounds in a row)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet = 0
    while quiet < 3:
        if loop.time() > deadline:
            raise AssertionError("the app did not settle")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        quiet = 0 if busy(pilot.app) else quiet + 1  # type: ignore[arg-type]


async def open_events(pilot: Pilot[object]) -> EventsScreen:
    """Settle on the first screen, press e, wait for the events to load."""
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, EventsScreen)
    return screen


async def press(pilot: Pilot[object], *keys: str) -> None:
    """Each key, then wait until what it started has finished."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def notes(app: DlqApp) -> list[str]:
    """Every notification's text, oldest first."""
    return [str(n.message) for n in app._notifications]


def screen_text(app: DlqApp) -> str:
    """What the user sees, as plain text (the SVG export without styles)."""
    from rich.console import Console

    console = Console(record=True, width=app.size.width, height=app.size.height, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.screen._compositor.render_update(full=True))  # type: ignore[union-attr]
    return console.export_text()


def picture_lines(app: DlqApp) -> list[str]:
    """The screen's SVG picture read as text runs, each trimmed: what copying text from the pictures (or a
    terminal that keeps no trailing blanks per run) gives. Spacing at the edge of a styled run is lost."""
    import html
    import re

    lines: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text [^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', app.export_screenshot()):
        lines.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3)).strip()))
    return ["".join(text for _, text in sorted(runs)).replace("\xa0", " ") for _, runs in sorted(lines.items())]
