"""The per-source view from the keyboard on a real PostgreSQL: the list, the confirmation, the resolve, refusals."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, text

from dlq_tui.db.sources import REINGEST_METHOD
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.sources import SourcesScreen
from dlq_tui.ui.source import DataSource
from tests.support.factories import insert_event, insert_events
from tests.ui.conftest import SIZE, DemoDb, demo_app, make_app, notes, press, screen_text, settle

A = "/var/log/cowrie/cowrie.json.2024-03-01"
B = "/var/log/cowrie/cowrie.json.2024-03-02"
# Anything that could drive a terminal: C0 (but newline), DEL, C1.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


async def open_sources(pilot) -> SourcesScreen:  # type: ignore[no-untyped-def]
    await settle(pilot)
    await pilot.press("S")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SourcesScreen)
    return screen


def rows(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM dead_letter_events"))
        return {r["id"]: dict(r) for r in found.mappings()}


def table_lines(shown: str) -> list[str]:
    return [line for line in shown.splitlines() if re.match(r"^\s+\d[\d,]*\s", line)]


async def test_files_are_listed_biggest_first_with_reasons_and_held_counts(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"source": A, "reason": "empty", "age": 3600}] * 2)
        insert_event(conn, source=A, reason="binary", lock="held")
        insert_events(conn, [{"source": B, "reason": "payload_not_dict", "age": 120}] * 4)
        insert_event(conn, source=None, reason="unknown")
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sources(pilot)
        shown = screen_text(app)
        assert "pending by source file · 3 sources, most pending first · 8 pending" in shown
        lines = table_lines(shown)
        assert len(lines) == 3
        assert re.match(r"^\s+4\s+-\s.*payload_not_dict 4\s+/var/log/…/cowrie\.json\.2024-03-02", lines[0])
        assert re.match(r"^\s+3\s+1\s.*empty 2, binary 1\s.*2024-03-01", lines[1])
        assert re.match(r"^\s+1\s+-\s.*unknown 1\s+\(no source\)", lines[2])
        assert screen.highlighted is not None and screen.highlighted.source == B

        await press(pilot, "question_mark")
        help_text = screen_text(app)
        assert "pending by source file" in help_text and "for re-ingest (asks y/n first)" in help_text


async def test_resolve_file_asks_with_the_count_then_resolves_exactly_that_set(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        mine = insert_events(conn, [{"source": A}] * 3)
        held = insert_event(conn, source=A, lock="held")
        other = insert_event(conn, source=B)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sources(pilot)
        assert screen.highlighted is not None and screen.highlighted.source == A
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert "Resolve 4 events for re-ingest?" in shown
        assert A in shown and "4 pending events as of now" in shown
        assert "1 held by another session will be skipped" in shown
        # An event of the same file that arrives while the question is open is not part of the answer.
        with v7_engine.begin() as conn:
            late = insert_event(conn, source=A)
        await press(pilot, "y")
        assert not isinstance(app.screen, ConfirmModal)
        after = rows(v7_engine)
        for event_id in mine:
            assert after[event_id]["resolved"] and after[event_id]["resolution_method"] == REINGEST_METHOD
            assert [e["method"] for e in after[event_id]["processing_attempts"]] == ["operator:resolve"]
        for event_id in (held, late, other):
            assert not after[event_id]["resolved"]
        assert "resolve: 3 done, 1 skipped (1 held by another session)" in notes(app)
        lines = table_lines(screen_text(app))  # reloaded by itself: A has the held and the late event left
        assert re.match(r"^\s+2\s+1\s.*2024-03-01", lines[0]) and re.match(r"^\s+1\s+-\s.*2024-03-02", lines[1])


async def test_no_source_and_no_answer(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        nulls = insert_events(conn, [{"source": None}] * 2)
        insert_event(conn, source="")
        insert_event(conn, source=A)
    before = rows(v7_engine)
    app = make_app(v7_dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sources(pilot)
        assert screen.highlighted is not None and screen.highlighted.source is None
        await press(pilot, "x")
        assert "Resolve 2 events for re-ingest?" in screen_text(app) and "(no source)" in screen_text(app)
        await press(pilot, "n")
        assert rows(v7_engine) == before  # no: nothing written
        await press(pilot, "x", "y")
        after = rows(v7_engine)
        assert {i for i, r in after.items() if r["resolved"]} == set(nulls)  # not the "" source, not A


async def test_read_only_refuses_without_asking(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"source": A}] * 2)
    before = rows(v7_engine)
    app = make_app(v7_dsn, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sources(pilot)
        assert screen.check_action("reingest", ()) is None  # greyed out in the footer
        screen.action_reingest()  # as the palette would run it
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmModal)
        assert "read-only mode: actions are disabled" in notes(app)
    assert rows(v7_engine) == before


async def test_many_sources_say_top_n_of_m(v7_dsn: str, v7_engine: Engine) -> None:
    class FewSources(DataSource):
        source_limit = 3

    with v7_engine.begin() as conn:
        insert_events(conn, [{"source": f"/logs/{i:02d}"} for i in range(7) for _ in range(i + 1)])
    app = make_app(v7_dsn, source_class=FewSources)
    async with app.run_test(size=SIZE) as pilot:
        await open_sources(pilot)
        shown = screen_text(app)
        assert "top 3 of 7 sources (most pending first) · 28 pending" in shown
        assert [line.split()[0] for line in table_lines(shown)] == ["7", "6", "5"]


async def test_hostile_source_paths_are_data(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sources(pilot)
        shown = screen_text(app)
        assert not RAW_CONTROL.search(shown)
        assert "[@click=app.quit]" in shown  # shown literally, never a clickable action
        assert "\\x1b" in shown
        hostile = next(s for s in screen.overview.sources if s.source and s.source.startswith("[@click"))  # type: ignore[union-attr]
        screen.table.move_cursor(row=screen.overview.sources.index(hostile))  # type: ignore[union-attr]
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmModal)
        body = screen_text(app)
        assert "[@click=app.quit]/var/log/cowrie/cowrie.json[/]" in body and not RAW_CONTROL.search(body)
        await press(pilot, "n")
        assert app.is_running
