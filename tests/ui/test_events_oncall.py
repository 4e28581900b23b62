"""Events screen, on-call details: lock countdowns, marks across reloads, fast payload paging, jumps to any
event, sort orders, exporting a whole filter result, and the filter's completion hint."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from tests.support.factories import insert_event
from tests.ui.conftest import ANCHOR, SIZE, DemoDb, demo_app, make_app, notes, open_events, screen_text, settle


class MovingClock:
    """The app's clock, frozen at the demo's anchor until a test moves it on."""

    def __init__(self) -> None:
        self.now = ANCHOR

    def __call__(self) -> datetime:
        return self.now


# --- the lock column ticks -----------------------------------------------------------------------------------
async def test_my_lock_counts_down_and_reads_expired_when_it_runs_out(demo_db: DemoDb) -> None:
    clock = MovingClock()
    app = make_app(demo_db.dsn, clock=clock)
    token = app.source.operator.lock_token
    with demo_db.engine.begin() as conn:
        event_id = insert_event(
            conn,
            now=ANCHOR,
            priority=1,
            age=timedelta(days=400),  # first in the default order
            processing_lock=token,
            lock_expires_at=ANCHOR + timedelta(seconds=61),
        )
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)

        def lock() -> str:
            return str(screen.table.get_cell(str(event_id), "lock").plain)

        assert lock() == "mine 1m"
        clock.now = ANCHOR + timedelta(seconds=2)
        await pilot.pause(1.2)  # no key, no reload: the column ticks by itself
        assert lock() == "mine 59s"
        clock.now = ANCHOR + timedelta(seconds=62)
        await pilot.pause(1.2)
        assert lock() == "expired"
        row = next(line for line in screen_text(app).splitlines() if re.search(rf"\b{event_id}\b.*expired", line))
        assert "mine" not in row


# --- the filter's completion hint is true --------------------------------------------------------------------
async def test_the_reason_hint_names_the_key_that_completes(demo_db: DemoDb) -> None:
    keys = {"→": "right", "tab": "tab", "right arrow": "right"}
    app = demo_app(demo_db, refresh_seconds=600)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await pilot.press("backslash")
        await settle(pilot)
        field = app.screen.query_one("#f-reason")
        match = re.search(r"\((.+) completes\)", str(field.placeholder))
        assert match, field.placeholder
        field.focus()
        await pilot.press(*"json_pars")
        await pilot.pause(0.2)
        await pilot.press(keys[match.group(1).lower()])
        await pilot.pause(0.2)
        assert field.value == "json_parsing_failed"


# --- marks stay visible or go --------------------------------------------------------------------------------
async def test_a_new_view_clears_the_marks_and_says_so(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("space", "space")
        await settle(pilot)
        assert "2 marked" in screen_text(app)
        await pilot.press("v")  # resolved events too: another view
        await settle(pilot)
        assert screen.table.marked == set()
        assert "marked" not in screen_text(app).splitlines()[1]
        assert "2 marks cleared: the view changed" in notes(app)


async def test_a_mark_that_left_the_view_is_counted_and_never_acted_on_silently(demo_db: DemoDb) -> None:
    from dlq_tui.ui.screens.confirm import ConfirmModal

    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        marked = screen.table.highlighted.id
        await pilot.press("space")
        await settle(pilot)
        with demo_db.engine.begin() as conn:  # someone else resolves it meanwhile
            conn.execute(text("UPDATE dead_letter_events SET resolved = true WHERE id = :i"), {"i": marked})
        await pilot.press("r")
        await settle(pilot)
        assert marked not in screen.table.rows_by_id
        assert "1 marked (1 not shown)" in screen_text(app).splitlines()[1]
        await pilot.press("c")  # claim asks nothing for one visible event; for a hidden one it must
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        assert "(0 in view, 1 not shown)" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        with demo_db.engine.connect() as conn:
            lock = conn.execute(text("SELECT processing_lock FROM dead_letter_events WHERE id = :i"), {"i": marked})
            assert lock.scalar() is None
        await pilot.press("minus")  # unmark all
        await settle(pilot)
        assert screen.table.marked == set() and "marked" not in screen_text(app).splitlines()[1]


# --- every `]` pages --------------------------------------------------------------------------------------
async def test_fast_payload_presses_are_all_counted(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        event_id = conn.execute(
            text("SELECT id FROM dead_letter_events ORDER BY length(payload::text) DESC LIMIT 1")
        ).scalar_one()
    app = demo_app(demo_db)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_events(pilot)
        screen.apply_filter(type(screen.filter)(include_resolved=True))
        await settle(pilot)
        screen.jump_to(event_id)
        await settle(pilot)
        assert screen.pane.detail.row.id == event_id and screen.pane.payload_pages > 10
        # Four `]` handled before the first page came back (the key's action, as a held key repeats it).
        for _ in range(4):
            await app.run_action("payload_page(1)", screen)
        await settle(pilot)
        assert screen.pane.payload_page == 4
        assert f"page 5/{screen.pane.payload_pages}" in screen_text(app)
        for _ in range(2):
            await app.run_action("payload_page(-1)", screen)
        await settle(pilot)
        assert screen.pane.payload_page == 2


# --- sort orders --------------------------------------------------------------------------------------------
async def test_s_cycles_the_sort_order_and_paging_follows_it(demo_db: DemoDb) -> None:
    orders = {
        "newest first": "created_at DESC, id DESC",
        "most retries first": "retry_count DESC, created_at DESC, id DESC",
        "by priority": "priority, created_at, id",
    }
    with demo_db.engine.connect() as conn:
        want = {
            label: list(
                conn.execute(text(f"SELECT id FROM dead_letter_events WHERE NOT resolved ORDER BY {order}")).scalars()
            )
            for label, order in orders.items()
        }
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert "pending · by priority" in screen_text(app).splitlines()[1]
        for label in orders:
            await pilot.press("s")
            await settle(pilot)
            assert f"pending · {label}" in screen_text(app).splitlines()[1]
            ids = [row.id for row in screen.table.window_rows]
            assert ids == want[label][: len(ids)]
            await pilot.press("end")  # past the first page: the next one continues the same order
            await settle(pilot)
            await pilot.press("end")
            await settle(pilot)
            ids = [row.id for row in screen.table.window_rows]
            assert len(ids) > 200
            start = want[label].index(ids[0])
            assert ids == want[label][start : start + len(ids)]


# --- g finds any event --------------------------------------------------------------------------------------
async def test_g_finds_resolved_and_filtered_out_events_and_says_it_changed_the_view(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        resolved_id = conn.execute(text("SELECT min(id) FROM dead_letter_events WHERE resolved")).scalar_one()
        other_reason = conn.execute(
            text("SELECT min(id) FROM dead_letter_events WHERE NOT resolved AND reason <> 'json_parsing_failed'")
        ).scalar_one()
        missing = conn.execute(text("SELECT max(id) + 1000 FROM dead_letter_events")).scalar_one()
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("g", *str(resolved_id), "enter")
        await settle(pilot)
        assert screen.table.highlighted.id == resolved_id
        assert screen.filter.include_resolved and "pending+resolved" in screen_text(app)
        assert f"event {resolved_id} is outside the view: resolved events are listed too (v hides them)" in notes(app)

        screen.apply_filter(type(screen.filter)(reason="json_parsing_failed"))
        await settle(pilot)
        await pilot.press("g", *str(other_reason), "enter")
        await settle(pilot)
        assert screen.table.highlighted.id == other_reason
        assert screen.filter.reason is None
        assert any(
            n.startswith(f"event {other_reason} is outside the view: the filter (reason 'json_parsing_failed')")
            for n in notes(app)
        )

        before = screen.filter
        await pilot.press("g", *str(missing), "enter")
        await settle(pilot)
        assert screen.table.highlighted.id == other_reason and screen.filter == before  # nothing moved
        assert f"there is no event {missing}" in notes(app)


# --- export a whole filter result ---------------------------------------------------------------------------
async def test_export_of_everything_matching_is_an_explicit_counted_set(demo_db: DemoDb, tmp_path: Any) -> None:
    import json

    from textual.widgets import Input

    from dlq_tui.ui.screens.confirm import ConfirmModal

    target = tmp_path / "matching.jsonl"
    with demo_db.engine.connect() as conn:
        want = list(
            conn.execute(
                text(
                    "SELECT id FROM dead_letter_events WHERE NOT resolved AND reason = 'payload_not_dict' "
                    "ORDER BY priority, created_at, id"
                )
            ).scalars()
        )
    assert len(want) > 100  # more than a screen, so "what is on screen" would not do
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        screen.apply_filter(type(screen.filter)(reason="payload_not_dict"))
        await settle(pilot)
        await pilot.press("ctrl+e")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert f"Export {len(want):,} events?" in shown
        assert f"the {len(want):,} events matching this filter as of 09:30:00 UTC" in shown
        assert "filter: reason 'payload_not_dict'" in shown
        with demo_db.engine.begin() as conn:  # matches from now on: not part of the set that was counted
            insert_event(conn, reason="payload_not_dict")
        await pilot.press("y")
        await settle(pilot)
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        exported = [json.loads(line)["id"] for line in target.read_text("ascii").splitlines()]
        assert exported == want
        assert f"exported {len(want)} events to {target}" in notes(app)
