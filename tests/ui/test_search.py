"""`/` on the events screen with Pilot: the box, its history, progress, esc cancel, related-event keys."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text
from textual import events

from dlq_tui.db import search as db_search
from dlq_tui.search.query import QUERY_MAX_CHARS
from dlq_tui.ui.screens.search import SearchModal
from tests.support.factories import insert_events
from tests.ui.conftest import SIZE, make_app, open_events, press, settle

SESSION = "abcd1234"


def _fill(engine: Engine) -> list[int]:
    with engine.begin() as conn:
        return insert_events(
            conn,
            [
                {"payload": {"src_ip": "198.51.100.7", "session": SESSION, "input": "wget http://x"}, "age": 50},
                {"payload": {"src_ip": "198.51.100.7", "session": "ffff0000", "input": "ls"}, "age": 40},
                {
                    "payload": {"malformed_content": '{"src_ip": "203.0.113.5", "session": "' + SESSION + '"}'},
                    "source": "/var/log/cowrie/other.json",
                    "age": 30,
                },
                {"payload": {"src_ip": "192.0.2.1", "note": "\x1b[31m[b]markup[/b]"}, "age": 20},
            ],
        )


def status_line(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.query_one("#events-status").render())


async def _search(pilot, query: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("slash")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SearchModal)
    field = pilot.app.screen.query_one("#search-query")
    field.value = ""
    field.insert_text_at_cursor(query)
    await pilot.press("enter")
    await settle(pilot)


async def test_slash_searches_and_the_status_line_shows_the_query(v7_dsn: str, v7_engine: Engine) -> None:
    ids = _fill(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert len(screen.table.window_rows) == 4
        await _search(pilot, "src_ip:198.51.100.7")
        assert [row.id for row in screen.table.window_rows] == ids[:2]
        assert "search: src_ip:198.51.100.7 · 2 matches" in status_line(app)
        await _search(pilot, "wget")
        assert [row.id for row in screen.table.window_rows] == [ids[0]]
        # backspace ends the search and the filter: every event again
        await press(pilot, "backspace")
        assert len(screen.table.window_rows) == 4 and "search:" not in status_line(app)


async def test_a_bad_or_hostile_query_keeps_the_box_open_with_one_line(v7_dsn: str, v7_engine: Engine) -> None:
    _fill(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        for query, says in [('"open', "not closed"), ("class:evil", "not a classification"), ("$x:y", "field name")]:
            await pilot.press("slash")
            await settle(pilot)
            field = app.screen.query_one("#search-query")
            field.insert_text_at_cursor(query)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, SearchModal)
            assert says in str(app.screen.query_one("#search-error").render())
            await press(pilot, "escape")
        # Controls and NUL are refused at entry (the Input would draw them raw), with the reason.
        await pilot.press("slash")
        await settle(pilot)
        field = app.screen.query_one("#search-query")
        for hostile in ("a\x1b]0;x\x07b", "a\x00b", "x" * (QUERY_MAX_CHARS + 1)):
            field.post_message(events.Paste(hostile))
            await pilot.pause()
            assert field.value == ""  # refused whole, with the reason under the field
            assert "nothing was added" in str(app.screen.query_one("#search-error").render()) or "limited to" in str(
                app.screen.query_one("#search-error").render()
            )
        # 10,000 characters of SQL metacharacters are a fine query: bound, no match, no error.
        field.post_message(events.Paste("%_\\'\";--" * 1_000))
        await pilot.pause()
        await press(pilot, "enter")
        assert not isinstance(app.screen, SearchModal)
        assert screen.table.window_rows == [] and "0 matches" in status_line(app)
        await press(pilot, "backspace")
        await press(pilot, "escape")
        assert len(screen.table.window_rows) == 4  # nothing changed


async def test_up_and_down_walk_the_history(v7_dsn: str, v7_engine: Engine) -> None:
    _fill(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await _search(pilot, "wget")
        await _search(pilot, "src_ip:192.0.2.1")
        await pilot.press("slash")
        await settle(pilot)
        field = app.screen.query_one("#search-query")
        field.value = ""
        await pilot.press("up")
        assert field.value == "src_ip:192.0.2.1"
        await pilot.press("up")
        assert field.value == "wget"
        await pilot.press("down")
        assert field.value == "src_ip:192.0.2.1"
        await pilot.press("down")
        assert field.value == ""


async def test_related_keys_are_searches_shown_with_their_query(v7_dsn: str, v7_engine: Engine) -> None:
    ids = _fill(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert screen.table.highlighted is not None and screen.table.highlighted.id == ids[0]
        await press(pilot, "n")  # same session: the plain one and the one inside malformed_content
        assert [row.id for row in screen.table.window_rows] == [ids[0], ids[2]]
        assert f"search: session:{SESSION}" in status_line(app)
        await press(pilot, "backspace", "i")  # same source IP
        assert [row.id for row in screen.table.window_rows] == ids[:2]
        assert "search: src_ip:198.51.100.7" in status_line(app)
        await press(pilot, "backspace", "down")
        await settle(pilot)
        await press(pilot, "down")
        await settle(pilot)
        assert screen.table.highlighted is not None and screen.table.highlighted.id == ids[2]
        await press(pilot, "l")  # same source file
        assert [row.id for row in screen.table.window_rows] == [ids[2]]
        assert "search: source:/var/log/cowrie/other.json" in status_line(app)


async def test_related_checksum_finds_the_duplicates(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        ids = insert_events(
            conn,
            [
                {"payload": {"x": 1}, "payload_checksum": "auto", "age": 30},
                {"payload": {"x": 2}, "payload_checksum": "auto", "age": 20},
                {"payload": {"x": 1}, "payload_checksum": "auto", "age": 10},
            ],
        )
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await press(pilot, "D")
        assert [row.id for row in screen.table.window_rows] == [ids[0], ids[2]]
        assert "search: checksum:" in status_line(app)


SLOW_TERM = "a" * 2_000 + "b"


def _running(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                    "AND pid <> pg_backend_pid() AND query ILIKE '%payload%'"
                )
            ).scalars()
        )


async def test_progress_then_esc_cancels_the_search_on_the_server(
    v7_dsn: str, v7_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CHUNK_START_ROWS", "CHUNK_MIN_ROWS", "CHUNK_MAX_ROWS"):
        monkeypatch.setattr(db_search, name, 5)  # a few slow rows a chunk: progress shows between chunks
    with v7_engine.begin() as conn:
        insert_events(conn, [{"payload": {"x": "a" * 40_000}, "age": 5}] * 300)
        insert_events(conn, [{"payload": {"hit": SLOW_TERM}, "priority": 1}])
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("slash")
        await settle(pilot)
        app.screen.query_one("#search-query").insert_text_at_cursor(f'"{SLOW_TERM}"')
        await pilot.press("enter")
        deadline = time.monotonic() + 20
        while "searching… 1 match" not in status_line(app):  # the priority-1 hit comes first, then the long walk
            assert time.monotonic() < deadline, status_line(app)
            await pilot.pause(0.1)
        assert "% of table scanned" in status_line(app)
        assert _running(v7_engine)
        await pilot.press("escape")
        await settle(pilot)
        assert "cancelled at" in status_line(app)
        assert _running(v7_engine) == []
        assert len(screen.table.window_rows) == 1  # what was found stays listed


async def test_a_jump_ends_the_search_and_lists_the_event(v7_dsn: str, v7_engine: Engine) -> None:
    ids = _fill(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await _search(pilot, "wget")
        assert [row.id for row in screen.table.window_rows] == [ids[0]]
        await press(pilot, "g", *str(ids[3]), "enter")
        assert screen.table.highlighted is not None and screen.table.highlighted.id == ids[3]
        assert "search:" not in status_line(app)


async def test_a_saved_search_runs_by_its_name_and_the_box_lists_the_names(v7_dsn: str, v7_engine: Engine) -> None:
    ids = _fill(v7_engine)
    app = make_app(v7_dsn, searches={"attacker": "src_ip:198.51.100.7", "hostile": "\x1b[31m"})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await pilot.press("slash")
        await settle(pilot)
        saved = str(pilot.app.screen.query_one("#search-saved").render())
        assert "@attacker" in saved and "@hostile" in saved
        await pilot.press("escape")
        await settle(pilot)
        await _search(pilot, "@attacker")
        assert [row.id for row in screen.table.window_rows] == ids[:2]
        assert "search: src_ip:198.51.100.7 · 2 matches" in status_line(app)
        # An unknown name keeps the box open with one line naming the saved ones.
        await _search(pilot, "@nope")
        assert isinstance(pilot.app.screen, SearchModal)
        error = str(pilot.app.screen.query_one("#search-error").render())
        assert "no saved search '@nope' (saved: @attacker, @hostile)" in error
