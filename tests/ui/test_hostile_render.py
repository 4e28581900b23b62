"""Every screen with the demo's hostile rows on it: nothing an attacker wrote reaches the terminal raw.

Two views of each screen are checked: the SVG export (what a screenshot shows) and the exact character
stream Textual would write to a real terminal for a full repaint (the compositor's segments rendered by
the app's own console, as App._display does). Textual's own stream may hold SGR colours and cursor moves
only; any other escape (OSC, DCS, clear screen, title) would have come from the data.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import text

from dlq_tui.demo import HOSTILE_NAMES, hostile_ids
from dlq_tui.ui.screens.help import HelpScreen
from tests.support.hostile_corpus import CLEAR_SCREEN
from tests.ui.conftest import DemoDb, demo_app, screen_text, settle

WIDE = (160, 50)

# C0 except \n and \t, DEL, C1, bidi embeddings/overrides/isolates, zero-width and other format chars.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
# What Textual itself writes for a repaint: colours/attributes (SGR) and absolute cursor moves.
TEXTUAL_SEQUENCE = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[[0-9]+;[0-9]+H|\x1b\[[0-9]*[ABCDG]")


def svg_text(app: Any) -> str:
    """The SVG export with character references resolved (a raw ESC could hide as &#27;)."""
    return html.unescape(app.export_screenshot())


def terminal_stream(app: Any) -> str:
    """What a real terminal would receive for a full repaint of the current screen."""
    update = app.screen._compositor.render_update(full=True)
    return update.render_segments(app.console)


def assert_safe(app: Any, where: str) -> None:
    svg = svg_text(app)
    bad = RAW_CONTROL.findall(svg)
    assert not bad, f"{where}: raw control characters in the SVG export: {bad[:10]!r}"
    stream = terminal_stream(app)
    leftover = TEXTUAL_SEQUENCE.sub("", stream)
    foreign = leftover[leftover.find("\x1b") :][:40] if "\x1b" in leftover else ""
    assert not foreign, f"{where}: foreign escape in the terminal stream: {foreign!r}"
    assert not RAW_CONTROL.findall(leftover.replace("\r", "")), f"{where}: raw controls in the terminal stream"
    for payload in ("\x1b]0;", "\x1b]2;", "\x1b]8;", "\x1b]52;", "\x1bP", "\x1b[2J", "\x1b[3J", "\x9b"):
        assert payload not in stream, f"{where}: {payload!r} reached the terminal stream"


async def open_events_on(pilot: Any, event_id: int) -> Any:
    screen = pilot.app.screen
    screen.jump_to(event_id)
    await settle(pilot)
    assert screen.table.highlighted.id == event_id
    assert screen.pane.detail is not None and screen.pane.detail.row.id == event_id
    return screen


@pytest.fixture
def ids(demo_db: DemoDb) -> dict[str, int]:
    with demo_db.engine.connect() as conn:
        found = hostile_ids(conn)
    assert set(found) == set(HOSTILE_NAMES)
    return found


async def test_every_screen_and_every_hostile_detail_is_safe(demo_db: DemoDb, ids: dict[str, int]) -> None:
    app = demo_app(demo_db, refresh_seconds=600)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert_safe(app, "health")

        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        screen.apply_filter(type(screen.filter)(include_resolved=True))
        await settle(pilot)
        assert_safe(app, "events")
        for name in HOSTILE_NAMES:
            await open_events_on(pilot, ids[name])
            assert_safe(app, f"events, detail of {name}")

        # The escapes are there to read, as visible text: the clear-screen row spelled out.
        await open_events_on(pilot, ids["clear_screen"])
        shown = screen_text(app)
        assert "\\x1b[2J" in shown, "the clear-screen escape should show as the text \\x1b[2J"
        assert CLEAR_SCREEN not in shown
        await open_events_on(pilot, ids["window_title"])
        assert "\\x1b]0;root@prod" in screen_text(app)
        await open_events_on(pilot, ids["bidi"])
        assert "\\u202e" in screen_text(app)

        await pilot.press("m")
        await settle(pilot)
        assert_safe(app, "migration")
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert_safe(app, "help")


async def open_reason_filter(pilot) -> None:  # type: ignore[no-untyped-def]
    """Events screen, filter dialog open, typing into the reason field (where completions are offered)."""
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    await pilot.press("backslash")
    await settle(pilot)
    pilot.app.screen.query_one("#f-reason").focus()


async def test_filter_modal_completes_hostile_reasons_safely(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        reasons = [r for (r,) in conn.execute(text("SELECT DISTINCT reason FROM dead_letter_events"))]
    assert any("\x1b" in r for r in reasons) and any(r.startswith("[link=") for r in reasons)
    app = demo_app(demo_db, refresh_seconds=600)
    async with app.run_test(size=WIDE) as pilot:
        await open_reason_filter(pilot)
        for prefix in ("[link", "payload_not_dict", "unknown", "json_parsing_failed"):
            reason_input = app.screen.query_one("#f-reason")
            reason_input.value = ""
            await pilot.press(*prefix)
            await pilot.pause(0.2)
            assert_safe(app, f"filter modal, completing {prefix!r}")
        await pilot.press("escape")


async def test_completion_never_offers_a_raw_escape(demo_db: DemoDb) -> None:
    """A reason with a unique prefix and an escape in it: typing the prefix must not draw the escape."""
    from tests.support.factories import insert_event

    with demo_db.engine.begin() as conn:
        insert_event(conn, source="/var/log/cowrie/x.json", reason="zz-attack\x1b]0;pwned\x07\x1b[2J")
    app = demo_app(demo_db, refresh_seconds=600)
    async with app.run_test(size=WIDE) as pilot:
        await open_reason_filter(pilot)
        await pilot.press("z", "z")
        await pilot.pause(0.2)
        assert_safe(app, "filter modal, completing 'zz'")
        await pilot.press("tab")  # accepting whatever is offered must not put a raw escape on screen either
        await pilot.pause(0.2)
        assert_safe(app, "filter modal, completion accepted")


async def test_markup_in_data_shows_literally_and_clicking_it_does_nothing(
    demo_db: DemoDb, ids: dict[str, int]
) -> None:
    app = demo_app(demo_db, refresh_seconds=600)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        screen.apply_filter(type(screen.filter)(include_resolved=True))
        await settle(pilot)
        await open_events_on(pilot, ids["rich_markup"])
        shown = screen_text(app)
        assert "[@click=app.quit]" in shown
        assert "[link=https://evil.example]" in shown
        # Click on every place the would-be action link is drawn: the app stays up, on the same screen.
        lines = shown.splitlines()
        spots = [(line.index("[@click"), y) for y, line in enumerate(lines) if "[@click" in line]
        assert spots
        for x, y in spots:
            await pilot.click(offset=(x + 3, y))
            await pilot.pause(0.1)
        await settle(pilot)
        assert app.is_running and app.return_code is None
        assert app.current_mode == "events"
        assert_safe(app, "events after clicks")
