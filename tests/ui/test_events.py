"""Events screen on a real PostgreSQL with the demo data: paging, the bounded window, filters, detail, jump."""

from __future__ import annotations

from sqlalchemy import text

from tests.ui.conftest import SIZE, DemoDb, demo_app, open_events, press, screen_text, settle


async def test_page_through_every_pending_event_and_back(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM dead_letter_events WHERE NOT resolved")).scalar_one()
        last_id = conn.execute(
            text(
                "SELECT id FROM dead_letter_events WHERE NOT resolved ORDER BY priority DESC, created_at DESC, id DESC"
            )
        ).scalar()
    assert pending > 1000
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        table = screen.table
        seen: set[int] = set()
        for _ in range(40):
            seen.update(row.id for row in table.window_rows)
            # The window never holds more than MAX_PAGES pages, however far we go.
            assert table.row_count <= table.MAX_PAGES * 200
            if table.at_end and table.highlighted.id == last_id:
                break
            await pilot.press("end")
            await settle(pilot)
        assert table.at_end and table.highlighted.id == last_id
        assert len(seen) == pending  # every pending event passed through the window, none twice-missing
        assert "end of list" in screen_text(app)
        assert not table.at_start  # the first pages were dropped from memory
        for _ in range(40):
            if table.at_start and table.cursor_row == 0:
                break
            await pilot.press("home")
            await settle(pilot)
        assert table.at_start and table.cursor_row == 0
        assert "· top" in screen_text(app)


async def test_filter_by_text_and_priority(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("backslash")
        await settle(pilot)
        await pilot.press(*"2024-03-07")  # free text over source and reason
        await pilot.press("enter")
        await settle(pilot)
        rows = screen.table.window_rows
        assert rows and all("2024-03-07" in (r.source or "") + r.reason for r in rows)
        assert "text '2024-03-07'" in screen_text(app)
        screen.apply_filter(type(screen.filter)(max_priority=2))
        await settle(pilot)
        assert screen.table.window_rows and all(r.priority <= 2 for r in screen.table.window_rows)
        await pilot.press("backspace")  # clear
        await settle(pilot)
        assert any(r.priority > 2 for r in screen.table.window_rows) or not screen.table.at_end


async def test_detail_pane_shows_checksum_and_timelines(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        event_id = conn.execute(
            text(
                "SELECT id FROM dead_letter_events WHERE NOT resolved AND error_history IS NOT NULL "
                "AND payload_checksum IS NOT NULL ORDER BY id LIMIT 1"
            )
        ).scalar_one()
        conn.execute(
            text("UPDATE dead_letter_events SET payload_checksum = repeat('0', 64) WHERE id = :i"), {"i": event_id}
        )
        conn.commit()
    app = demo_app(demo_db, refresh_seconds=60)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_events(pilot)
        screen.jump_to(event_id)
        await settle(pilot)
        assert screen.table.highlighted.id == event_id
        shown = screen_text(app)
        assert f"event {event_id}" in shown
        assert "MISMATCH" in shown
        assert "error history (" in shown
        await pilot.press("down")
        await settle(pilot)
        assert "match ✓" in screen_text(app) or "none (no checksum" in screen_text(app)


async def test_jump_to_id_with_the_g_key(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        event_id = conn.execute(
            text("SELECT id FROM dead_letter_events WHERE NOT resolved ORDER BY priority DESC, id DESC LIMIT 1")
        ).scalar_one()
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("g", *str(event_id), "enter")
        await settle(pilot)
        assert screen.table.highlighted.id == event_id
        await pilot.press("g", *"99999999", "enter")
        await settle(pilot)
        assert screen.table.highlighted.id == event_id  # an unknown id leaves the view where it was


async def test_resolved_toggle_shows_resolved_events(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert not any(r.resolved for r in screen.table.window_rows)
        screen.apply_filter(type(screen.filter)(include_resolved=True, max_priority=10))
        await settle(pilot)
        for _ in range(20):
            if any(r.resolved for r in screen.table.window_rows) or screen.table.at_end:
                break
            await pilot.press("end")
            await settle(pilot)
        assert any(r.resolved for r in screen.table.window_rows)
        assert "pending+resolved" in screen_text(app)


async def test_long_payload_pages_without_loading_it_whole(demo_db: DemoDb) -> None:
    with demo_db.engine.connect() as conn:
        event_id, size = conn.execute(
            text("SELECT id, length(payload::text) FROM dead_letter_events ORDER BY length(payload::text) DESC LIMIT 1")
        ).one()
    assert size > 1_000_000
    app = demo_app(demo_db)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_events(pilot)
        screen.apply_filter(type(screen.filter)(include_resolved=True))
        await settle(pilot)
        screen.jump_to(event_id)
        await settle(pilot)
        pane = screen.pane
        assert pane.detail.row.id == event_id and pane.payload_pages > 100
        assert "page 1/" in screen_text(app)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert pane.payload_page == 1
        assert "page 2/" in screen_text(app)


async def test_marks_are_kept_by_id(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        first = screen.table.highlighted.id
        await pilot.press("space")
        await settle(pilot)
        assert screen.table.selected_ids() == [first]
        await pilot.press("asterisk")
        await settle(pilot)
        assert len(screen.table.marked) == screen.table.row_count
        assert f"{screen.table.row_count} marked" in screen_text(app)


async def test_wide_screens_give_reason_and_source_the_spare_width(demo_db: DemoDb) -> None:
    """At 80 columns everything up to the lock status fits and the reason is cut; a wide terminal shows reason
    codes and log paths whole, and the table follows the terminal when it is resized."""
    app = demo_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_events(pilot)
        assert "json_parsing_failed" not in screen_text(app)  # cut to fit 80 columns
        assert "lock" in screen_text(app)
        await pilot.resize_terminal(200, 40)
        await settle(pilot)
        await pilot.press("d")  # detail pane off: the table has the whole width
        await settle(pilot)
        shown = screen_text(app)
        assert "json_parsing_failed" in shown
        assert "/var/log/cowrie/cowrie.json.2024-03-" in shown  # whole paths, not "…/cowrie.json…"
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert "json_parsing_failed" not in screen_text(app)
        assert screen.table.row_count > 0  # rows survive the column rebuild


async def test_a_dialog_dismissed_twice_closes_once(demo_db: DemoDb) -> None:
    """Keys typed faster than a dialog closes (g 1 enter g 2 enter) reach it after its first dismiss; a second
    dismiss must neither run the callback again nor pop the screen beneath (the app used to crash here)."""
    from dlq_tui.ui.screens.jump import JumpModal

    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        answers: list[int | None] = []
        app.push_screen(JumpModal(), answers.append)
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, JumpModal)
        modal.dismiss(1)
        modal.dismiss(2)
        await settle(pilot)
        assert answers == [1]
        assert app.screen is screen


async def test_pgdn_steps_a_screenful_and_the_window_slides_under_the_cursor(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        table = screen.table
        first_top = table.window_rows[0].id
        screenful = table.scrollable_content_region.height - 1  # rows under the header
        ids_seen: list[int] = []
        for _ in range(150):  # 13 rows a step: past the 600-row window and on to the end of the demo queue
            before = table.highlighted.id
            before_index = table.cursor_row
            await press(pilot, "pagedown")
            row = table.highlighted
            assert row.id != before
            ids_seen.append(row.id)
            # The highlighted event is drawn on screen, on its own line (the cursor never leaves the view).
            lines = [line.split() for line in screen_text(app).splitlines()]
            assert any(str(row.id) in words for words in lines)
            if table.window_rows[0].id == first_top:
                assert table.cursor_row - before_index == screenful  # no slide yet: exactly one screenful down
            if table.at_end and table.cursor_row == table.row_count - 1:
                break
        assert table.window_rows[0].id != first_top  # the window slid (top pages dropped) on the way down
        assert table.row_count <= table.MAX_PAGES * 200
        assert len(set(ids_seen)) == len(ids_seen)  # every step landed on a new event


async def test_click_moves_the_cursor_and_a_second_click_opens_the_detail(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        table = screen.table
        await pilot.click("#events-table", offset=(10, 4))  # the header is line 0: this is the fourth row
        await settle(pilot)
        assert table.cursor_row == 3 and table.highlighted.id == table.window_rows[3].id
        assert f"event {table.highlighted.id}" in screen_text(app)
        assert table.has_focus
        await pilot.click("#events-table", offset=(10, 4))
        await settle(pilot)
        assert screen.pane.has_focus
