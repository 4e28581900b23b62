"""Triage from the keyboard on a real PostgreSQL (demo data): keys, confirmations, live view, read-only.

The apps here run on the live clock (not the frozen one of the snapshots), so lock countdowns are real.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from textual.widgets import Input

from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.events import EventsScreen
from tests.db.test_read_only import select_only_dsn  # noqa: F401  (fixture: a role that may only SELECT)
from tests.ui.conftest import SIZE, DemoDb, make_app, notes, open_events, press, screen_text, settle


def rows(db: DemoDb, ids: list[int]) -> dict[int, dict[str, Any]]:
    with db.engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM dead_letter_events WHERE id = ANY(:ids)"), {"ids": ids})
        return {r["id"]: dict(r) for r in found.mappings()}


def lock_cell(screen: EventsScreen, event_id: int) -> str:
    return screen.table.get_cell(str(event_id), "lock").plain


def widget_text(screen: EventsScreen, selector: str) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(screen.query_one(selector).content)  # type: ignore[attr-defined]
    return console.export_text()


async def highlight(pilot, screen: EventsScreen, event_id: int) -> None:  # type: ignore[no-untyped-def]
    """Put the cursor on the event (via another row, so that its detail is read again) and wait for the detail."""
    index = next(i for i, r in enumerate(screen.table.window_rows) if r.id == event_id)
    screen.table.move_cursor(row=index + 1 if index == 0 else 0)
    await settle(pilot)
    screen.table.move_cursor(row=index)
    await settle(pilot)


def table_hash(db: DemoDb) -> str:
    with db.engine.connect() as conn:
        found = conn.execute(text("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM dead_letter_events t"))
        return found.scalar_one()


async def test_bulk_resolve_asks_naming_the_count_then_resolves_all(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await press(pilot, "space", "space", "space")
        ids = screen.table.selected_ids()
        assert len(ids) == 3
        await press(pilot, "x", "1")  # first method, then the note field
        await pilot.press(*"dup of 42 [b]x[/b]")
        await press(pilot, "enter")
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert "Resolve 3 events?" in shown and "Resolve 3 marked events" in shown
        assert "note: dup of 42 [b]x[/b]" in shown  # typed text is shown literally, never as markup
        await press(pilot, "n")
        assert all(not r["resolved"] for r in rows(demo_db, ids).values())
        assert screen.table.selected_ids() == ids  # nothing done: the marks stay

        await press(pilot, "x", "1", "enter", "y")
        after = rows(demo_db, ids)
        assert all(r["resolved"] and r["resolution_method"] == "operator_discarded" for r in after.values())
        assert not set(ids) & {r.id for r in screen.table.window_rows}  # they left the pending view
        assert not screen.table.marked
        assert "resolve: 3 done" in notes(app)


async def test_classify_and_priority_update_the_table(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await press(pilot, "down", "down")
        event_id = screen.table.highlighted.id
        await press(pilot, "k", "c")  # corrupted
        assert screen.table.highlighted.id == event_id
        assert screen.table.highlighted.classification == "corrupted"
        await press(pilot, "p", "0")  # priority 10: the event moves to the end of the queue, the cursor follows
        assert screen.table.highlighted.id == event_id
        assert screen.table.highlighted.priority == 10
        row = rows(demo_db, [event_id])[event_id]
        assert (row["classification"], row["priority"]) == ("corrupted", 10)
        methods = [entry["method"] for entry in row["processing_attempts"][-2:]]
        assert methods == ["operator:classify", "operator:prioritize"]
        assert "priority" in widget_text(screen, "#detail-timelines")


async def test_claim_shows_mine_and_an_event_held_by_another_session_is_skipped(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        first, second = (r.id for r in screen.table.window_rows[:2])
        other = uuid.uuid4()
        with demo_db.engine.begin() as conn:  # a second connection: another operator's session
            conn.execute(
                text(
                    "UPDATE dead_letter_events SET processing_lock = CAST(:t AS uuid),"
                    " lock_expires_at = now() + interval '12 minutes'"
                    " WHERE id = :i"
                ),
                {"t": other, "i": first},
            )
            conn.execute(text("UPDATE dead_letter_events SET classification = NULL WHERE id = :j"), {"j": second})

        await press(pilot, "down", "c")  # claim the second event
        row = rows(demo_db, [second])[second]
        assert row["processing_lock"] == app.source.operator.lock_token
        assert screen.table.highlighted.id == second  # the cursor stayed on the event
        assert lock_cell(screen, second) in ("mine 29m", "mine 30m")  # refreshed without `r`
        assert lock_cell(screen, first) in ("held 11m", "held 12m")  # someone else's lock reads differently
        fields = widget_text(screen, "#detail-fields")
        assert "mine, 29:" in fields or "mine, 30:00" in fields  # the detail pane's countdown ...
        for _ in range(40):  # ... ticks by itself, no query needed (once a second; allow for a loaded machine)
            await pilot.pause(0.1)
            if widget_text(screen, "#detail-fields") != fields:
                break
        assert widget_text(screen, "#detail-fields") != fields
        audit = widget_text(screen, "#detail-timelines")
        assert "claim by tester" in audit and "processing_lock - → " in audit  # the audit entry reads well
        assert "claim: 1 done" in notes(app)

        await press(pilot, "up", "space", "space")  # mark both
        await press(pilot, "k", "m")  # two events: a confirmation first
        assert isinstance(app.screen, ConfirmModal) and "Classify 2 events?" in screen_text(app)
        await press(pilot, "y")
        assert "classify: 1 done, 1 skipped (1 held by another session)" in notes(app)
        after = rows(demo_db, [first, second])
        assert after[first]["processing_lock"] == other and after[first]["classification"] != "malicious"
        assert after[second]["classification"] == "malicious"
        assert screen.table.marked == {first}  # the skipped event stays marked, the done one is unmarked


async def test_role_without_update_gets_one_clear_line(demo_db: DemoDb, select_only_dsn: str) -> None:  # noqa: F811
    before = table_hash(demo_db)
    app = make_app(select_only_dsn)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await press(pilot, "c")
        assert "your database role may not change events: permission denied on dead_letter_events" in notes(app)
        assert not any("Traceback" in n for n in notes(app))
    assert table_hash(demo_db) == before


async def test_reopen_and_requeue(demo_db: DemoDb) -> None:
    with demo_db.engine.begin() as conn:
        event_id = conn.execute(
            text("SELECT id FROM dead_letter_events WHERE resolved AND processing_lock IS NULL ORDER BY id LIMIT 1")
        ).scalar_one()
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert screen.check_action("reopen", ()) is False  # hidden while only pending events are listed
        await press(pilot, "v")
        assert screen.check_action("reopen", ()) is True
        screen.jump_to(event_id)
        await settle(pilot)
        await press(pilot, "o")
        row = rows(demo_db, [event_id])[event_id]
        assert not row["resolved"] and row["resolution_method"] is None
        assert not screen.table.highlighted.resolved
        await press(pilot, "R")
        assert isinstance(app.screen, ConfirmModal) and "Requeue 1 event?" in screen_text(app)
        await press(pilot, "y")
        row = rows(demo_db, [event_id])[event_id]
        assert row["metadata_json"]["operator_requeue_count"] == 1
        assert [e["method"] for e in row["processing_attempts"][-2:]] == ["operator:reopen", "operator:requeue"]


async def test_bulk_requeue_with_one_hostile_metadata_requeues_the_others_and_names_the_bad_one(
    demo_db: DemoDb,
) -> None:
    """A lone surrogate escape in one event's metadata_json used to fail the whole requeue ("nothing was
    changed") without saying which event; now that event is skipped, named, and stays marked."""
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        good, hostile = (r.id for r in screen.table.window_rows[:2])
        with demo_db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE dead_letter_events SET processing_lock = NULL, lock_expires_at = NULL,"
                    " metadata_json = CASE WHEN id = :h THEN CAST(:m AS json) ELSE metadata_json END"
                    " WHERE id IN (:g, :h)"
                ),
                {"g": good, "h": hostile, "m": '{"source": "cowrie", "note": "\\udc00"}'},
            )
        before = rows(demo_db, [hostile])[hostile]
        await press(pilot, "space", "space", "R")
        assert isinstance(app.screen, ConfirmModal) and "Requeue 2 events?" in screen_text(app)
        await press(pilot, "y")
        assert (
            f"requeue: 1 done, 1 skipped (event {hostile} refused by the database: metadata_json is not valid JSON"
            " for the server (Unicode low surrogate must follow a high surrogate))"
        ) in notes(app)
        assert not any("nothing was changed" in n for n in notes(app))
        after = rows(demo_db, [good, hostile])
        assert after[good]["metadata_json"]["operator_requeue_count"] == 1
        assert after[good]["processing_attempts"][-1]["method"] == "operator:requeue"
        assert after[hostile] == before  # untouched, nothing lost
        assert screen.table.marked == {hostile}  # still marked: the operator can look at it next


async def test_take_back_the_claims_of_a_killed_session_with_the_same_operator_name(demo_db: DemoDb) -> None:
    """Session A (operator "tester") claims and is killed without releasing; this app, a new session of
    "tester", sees who holds the lock, is refused a plain claim with a hint, and takes it back with T."""
    from tests.db.test_claims import claim_in_a_process_that_is_killed

    app = make_app(demo_db.dsn)  # operator "tester"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        free = next(i for i, r in enumerate(screen.table.window_rows) if r.processing_lock is None)
        screen.table.move_cursor(row=free)
        await settle(pilot)
        event_id = screen.table.highlighted.id
        old_token = claim_in_a_process_that_is_killed(demo_db.dsn, [event_id], operator="tester")
        await press(pilot, "r", "down", "up")  # reload, and load the detail again
        assert screen.table.highlighted.id == event_id
        assert "held by another session of yours (tester): T takes it back" in widget_text(screen, "#detail-fields")

        await press(pilot, "c")
        assert any(
            "claim: 0 done, 1 skipped (1 held by another session of yours (tester))" in n
            and "T takes back the claims of your other session" in n
            for n in notes(app)
        ), notes(app)
        await press(pilot, "T")
        assert "takeback: 1 done" in notes(app)
        row = rows(demo_db, [event_id])[event_id]
        assert row["processing_lock"] == app.source.operator.lock_token
        entry = row["processing_attempts"][-1]
        assert (entry["method"], entry["operator"]) == ("operator:takeback", "tester")
        assert entry["changes"]["processing_lock"]["old"] == str(old_token)
        assert lock_cell(screen, event_id) in ("mine 29m", "mine 30m")
        assert "mine, " in widget_text(screen, "#detail-fields")
        assert app.source.claimed  # quitting now asks about it


async def test_take_back_refuses_another_operators_claim_and_the_detail_names_the_holder(demo_db: DemoDb) -> None:
    from tests.db.test_claims import claim_in_a_process_that_is_killed

    app = make_app(demo_db.dsn)  # operator "tester"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        free = [i for i, r in enumerate(screen.table.window_rows) if r.processing_lock is None]
        ids = [screen.table.window_rows[i].id for i in free[:2]]
        claim_in_a_process_that_is_killed(demo_db.dsn, ids[:1], operator="alice")
        processor = uuid.uuid4()
        with demo_db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE dead_letter_events SET processing_lock = :t, lock_expires_at = now() + interval '9 minutes'"
                    " WHERE id = :i"
                ),
                {"t": processor, "i": ids[1]},
            )
        await press(pilot, "r")
        for event_id, holder in zip(ids, ("held by alice (another session), ", "held by the processor"), strict=True):
            await highlight(pilot, screen, event_id)
            assert holder in widget_text(screen, "#detail-fields")
        before = table_hash(demo_db)
        await press(pilot, "T")
        assert "takeback: 0 done, 1 skipped (1 held by the processor (no operator claim in its audit))" in notes(app)
        await highlight(pilot, screen, ids[0])
        await press(pilot, "T")
        assert "takeback: 0 done, 1 skipped (1 held by alice, not by tester)" in notes(app)
        assert table_hash(demo_db) == before


async def test_export_writes_jsonl_and_refuses_an_existing_path(demo_db: DemoDb, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        await press(pilot, "space", "space")
        ids = screen.table.selected_ids()
        await press(pilot, "E")
        field = app.screen.query_one(Input)
        assert field.value.startswith("./dlq-export-") and field.value.endswith(".jsonl")
        field.value = str(target)
        await press(pilot, "enter")
        lines = [json.loads(line) for line in target.read_text("ascii").splitlines()]
        assert [obj["id"] for obj in lines] == ids
        with demo_db.engine.connect() as conn:
            stored = conn.execute(text("SELECT payload::text FROM dead_letter_events WHERE id = :i"), {"i": ids[0]})
            assert lines[0]["payload_text"] == stored.scalar_one()  # exactly as stored
        assert screen.table.selected_ids() == ids  # export changes nothing: marks stay

        target.write_text("keep me\n")
        await press(pilot, "ctrl+s")
        app.screen.query_one(Input).value = str(target)
        await press(pilot, "enter")
        assert isinstance(app.screen, ConfirmModal) and "Overwrite out.jsonl?" in screen_text(app)
        await press(pilot, "n")
        assert target.read_text() == "keep me\n"


async def test_read_only_refuses_every_action_and_changes_nothing(demo_db: DemoDb) -> None:
    before = table_hash(demo_db)
    app = make_app(demo_db.dsn, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        assert "READ-ONLY" in screen_text(app)
        for action in ("claim", "release", "classify", "priority", "resolve", "requeue"):
            assert screen.check_action(action, ()) is None  # greyed out in the footer
        await press(pilot, "space", "c", "k", "x", "p", "R")
        assert isinstance(app.screen, EventsScreen)  # no chooser, no confirmation opened
        await press(pilot, "ctrl+p")
        await pilot.press(*"Claim events")
        await press(pilot, "enter")
        assert "read-only mode: actions are disabled" in notes(app)
        screen.action_resolve()  # even called directly: refused with the same line
        await settle(pilot)
        assert isinstance(app.screen, EventsScreen)
    assert table_hash(demo_db) == before


async def test_a_refusal_quoting_hostile_server_text_is_shown_escaped(demo_db: DemoDb) -> None:
    """The server's error text can quote row data (here a trigger echoes an attacker's title-change escape):
    the refusal notification shows it as visible text, never as a raw control sequence."""
    with demo_db.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_hostile() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'refused %', E'\\x1b]0;pwned\\x07[bold]x[/]'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_hostile BEFORE UPDATE ON dead_letter_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_hostile()"
            )
        )
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await press(pilot, "c")
        refusal = [n for n in notes(app) if "refused" in n]
        assert refusal, notes(app)
        assert "\x1b" not in refusal[0] and "\x07" not in refusal[0]
        assert "\\x1b]0;pwned\\x07[bold]x[/]" in refusal[0]  # the escapes and the markup, as text


async def test_an_unexpected_failure_in_a_triage_or_export_worker_is_shown_and_later_actions_still_run(
    demo_db: DemoDb, tmp_path: Path, monkeypatch
) -> None:
    """A bug (not a database refusal) inside an action's worker: one error notification naming it, and the
    screen must not stay "busy" with an action counted as running forever."""
    from dlq_tui.db import triage

    real_claim, real_export = triage.claim, triage.export_jsonl

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom in the worker")

    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        first = screen.table.highlighted.id
        monkeypatch.setattr(triage, "claim", broken)
        await press(pilot, "c")  # settle() raises if the action stays counted as running
        assert screen.actions_running == 0
        assert any("boom in the worker" in note for note in notes(app))
        assert rows(demo_db, [first])[first]["processing_lock"] is None

        monkeypatch.setattr(triage, "export_jsonl", broken)
        await press(pilot, "E")
        app.screen.query_one(Input).value = str(tmp_path / "out.jsonl")
        await press(pilot, "enter")
        assert screen.actions_running == 0
        assert sum("boom in the worker" in note for note in notes(app)) == 2

        monkeypatch.setattr(triage, "claim", real_claim)
        monkeypatch.setattr(triage, "export_jsonl", real_export)
        await press(pilot, "c")  # the next action runs as usual
        assert rows(demo_db, [first])[first]["processing_lock"] == app.source.operator.lock_token
        assert "claim: 1 done" in notes(app)
