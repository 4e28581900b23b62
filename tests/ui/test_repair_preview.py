"""The repair preview (f) and redrive (r in the preview, F on marked events) from the keyboard, on demo data."""

from __future__ import annotations

import re

from sqlalchemy import text

from dlq_tui.db.models import EventFilter
from dlq_tui.demo import REDRIVE_INODE, REDRIVE_SOURCE, redrive_ids
from dlq_tui.ui.app import DlqApp
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.repair import RepairPreviewScreen
from tests.ui.conftest import SIZE, DemoDb, make_app, notes, open_events, press, screen_text, settle
from tests.ui.test_triage_ui import rows, table_hash

WIDE = (140, 50)


def ids(db: DemoDb) -> dict[str, int]:
    with db.engine.connect() as conn:
        return redrive_ids(conn)


def raw_count(db: DemoDb) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM raw_events")).scalar_one()


async def preview_of(pilot, event_id: int) -> RepairPreviewScreen:  # type: ignore[no-untyped-def]
    await open_events(pilot)
    await press(pilot, "g", *str(event_id), "enter", "f")
    screen = pilot.app.screen
    assert isinstance(screen, RepairPreviewScreen) and screen.event_id == event_id
    return screen


async def test_f_shows_the_repair_and_where_it_would_go_and_writes_nothing(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["log_prefix"]
    before, raw_before = table_hash(demo_db), raw_count(demo_db)
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        shown = screen_text(app)
        for part in ("Original text", "Repaired event", "What changed", "Checks", "Where it would go"):
            assert part in shown, part
        assert "repaired: mechanical fixes only" in shown
        assert "2024-03-11T04:12:55.123Z cowrie[812]: {" in shown  # the original, prefix and all
        assert "stripped log prefix" in shown
        assert "✓ eventid: cowrie.command.input" in shown and "✓ session: 5c2d9e71a0b4" in shown
        assert "a new raw_events row" in shown and REDRIVE_SOURCE in shown
        assert re.search(rf"source_inode +{REDRIVE_INODE}  the most common inode of this source's 5 rows", shown)
        assert re.search(r"event_timestamp +2024-03-11T04:12:04.031676\+00:00  as timestamptz", shown)
        assert "redrive: r (asks first)" in shown
        await press(pilot, "escape")
        assert not isinstance(app.screen, RepairPreviewScreen)
    assert table_hash(demo_db) == before and raw_count(demo_db) == raw_before


async def test_r_in_the_preview_asks_naming_the_target_then_redrives(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["trailing_comma"]
    raw_before = raw_count(demo_db)
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        await press(pilot, "r")
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert f"Redrive event {event_id}?" in shown
        assert f"source {REDRIVE_SOURCE}" in shown and f"offset 2274 · inode {REDRIVE_INODE}" in shown
        assert "cowrie.session.connect · session a81f03c6d2e9" in shown
        await press(pilot, "n")  # no: nothing written, back on the preview
        assert isinstance(app.screen, RepairPreviewScreen) and raw_count(demo_db) == raw_before
        await press(pilot, "r", "y")
        assert not isinstance(app.screen, RepairPreviewScreen | ConfirmModal)
        assert any(f"event {event_id} redriven into raw_events row" in n for n in notes(app))
    letter = rows(demo_db, [event_id])[event_id]
    assert letter["resolved"] and letter["resolution_method"] == "operator_redriven"
    assert letter["processing_attempts"][-1]["operator"] == "tester"
    assert raw_count(demo_db) == raw_before + 1


async def test_an_ambiguous_repair_needs_a_second_clearly_worded_yes(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["cut_command"]
    raw_before = raw_count(demo_db)
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        assert "ambiguous: every check passes but part of it is a guess" in screen_text(app)
        assert "⚠ last value truncated: input" in screen_text(app)
        await press(pilot, "r", "y")
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert "Redrive an ambiguous repair?" in shown and "AMBIGUOUS: part of the event is a guess" in shown
        assert "records that tester accepted it" in shown
        await press(pilot, "n")
        assert raw_count(demo_db) == raw_before
        await press(pilot, "r", "y", "y")
    assert rows(demo_db, [event_id])[event_id]["processing_attempts"][-1]["repair_status"] == "ambiguous"
    assert raw_count(demo_db) == raw_before + 1


async def test_a_refused_repair_says_why_and_cannot_be_redriven(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["cut_session"]
    before, raw_before = table_hash(demo_db), raw_count(demo_db)
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        shown = screen_text(app)
        assert "refused: no trustworthy Cowrie event in it" in shown
        assert "redrive: not repairable (session: '77be' was cut short by the end of the text)" in shown
        assert "✗ session: '77be' was cut short" in shown
        await press(pilot, "r")
        assert isinstance(app.screen, RepairPreviewScreen)
        assert any(n.startswith("not repairable") for n in notes(app))
    assert table_hash(demo_db) == before and raw_count(demo_db) == raw_before


async def test_bulk_redrive_confirms_with_the_count_and_how_many_are_repairable(demo_db: DemoDb) -> None:
    letters = ids(demo_db)
    raw_before = raw_count(demo_db)
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_events(pilot)
        screen.apply_filter(EventFilter(text="2024-03-11"))  # the redrive demo rows' log file
        await settle(pilot)
        await press(pilot, "asterisk")
        assert set(screen.table.selected_ids()) == set(letters.values())
        await press(pilot, "F")
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert "Redrive 11 events?" in shown and "Redrive 11 marked events" in shown
        assert "6 repairable (valid or repaired) → raw_events" in shown
        assert "5 stay in the queue, untouched:" in shown and "4 not repairable" in shown
        assert "1 ambiguous: needs an operator's decision in the preview" in shown
        assert "ambiguous repairs are never redriven in bulk: use f" in shown
        assert raw_count(demo_db) == raw_before  # the count came from a dry run
        await press(pilot, "y")
        assert any(n.startswith("redrive: 6 redriven, 5 not redriven") for n in notes(app))
        assert screen.table.marked == {
            letters[n] for n in ("cut_command", "cut_session", "unquoted_keys", "no_timestamp", "binary_junk")
        }
        await press(pilot, "h", "r")  # r: read the health figures now
        assert "dlq_tui_redrive" in screen_text(app)  # the run is listed beside the processor's
    assert raw_count(demo_db) == raw_before + 6


async def test_read_only_mode_previews_but_never_redrives(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["log_prefix"]
    before, raw_before = table_hash(demo_db), raw_count(demo_db)
    app = make_app(demo_db.dsn, read_only=True)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        assert "redrive: not redriven: the database session is read-only" in screen_text(app)
        await press(pilot, "r")
        assert isinstance(app.screen, RepairPreviewScreen)
        await press(pilot, "escape", "F")
        assert not isinstance(app.screen, ConfirmModal)
        assert "read-only mode: actions are disabled" in notes(app)
    assert table_hash(demo_db) == before and raw_count(demo_db) == raw_before


async def test_without_raw_events_the_preview_says_which_is_missing(demo_db: DemoDb) -> None:
    with demo_db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE raw_events DROP COLUMN session_id"))
    event_id = ids(demo_db)["log_prefix"]
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        shown = screen_text(app)
        assert "redrive: redrive unavailable: raw_events has no column session_id" in shown
        assert "stripped log prefix" in shown  # the repair itself is still shown
        await press(pilot, "escape", "F")
        assert any("raw_events has no column session_id" in n for n in notes(app))


async def test_keys_are_in_help_and_the_palette(demo_db: DemoDb) -> None:
    from dlq_tui.ui.palette import palette_commands

    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await press(pilot, "question_mark")
        shown = screen_text(app)
        assert "Repair preview: repaired, checked, where it goes" in shown
        assert "Redrive into raw_events" in shown
    assert {("events", "repair"), ("events", "redrive")} <= {(c.mode, c.action) for c in palette_commands(DlqApp)}


async def test_hostile_content_is_drawn_escaped(demo_db: DemoDb) -> None:
    event_id = ids(demo_db)["raw_escapes"]
    app = make_app(demo_db.dsn)
    async with app.run_test(size=WIDE) as pilot:
        await preview_of(pilot, event_id)
        shown = screen_text(app)
    assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069]", shown) is None
    assert "echo \\x1b]0;root@prod: you have been pwned\\x07 [bold red]ALL CLEAR[/]" in shown  # original, raw ESC
    assert "[@click=app.quit]x[/]" in shown and "\\u202egpj.exe" in shown  # markup as text, bidi as an escape
    assert "kept 2 raw control characters inside strings" in shown
