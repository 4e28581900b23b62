"""Quitting never abandons work without asking: a running migration (wait, cancel, or stay) and the claims this
session holds (release, keep, or stay). Real PostgreSQL, the real migration runner, Pilot."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dlq_tui.db.connect import make_engine
from dlq_tui.ui.app import DlqApp, QuitPrompt
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.source import DataSource
from tests.support.console import console_script
from tests.support.dbstates import make_legacy_v6
from tests.support.factories import add_bare_events
from tests.support.terminal import Terminal
from tests.ui.conftest import SIZE, DemoDb, make_app, screen_text, settle


async def until(pilot: Any, condition: Any, timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll the app (without waiting for workers: a migration worker runs for as long as the test wants)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def exited(app: DlqApp) -> bool:
    return app.return_code is not None


# --- claims ----------------------------------------------------------------------------------------------


def locks(db: DemoDb, ids: list[int]) -> dict[int, Any]:
    with db.engine.connect() as conn:
        found = conn.execute(
            text("SELECT id, processing_lock, processing_attempts FROM dead_letter_events WHERE id = ANY(:i)"),
            {"i": ids},
        )
        return {r.id: r for r in found}


async def claim_two_free_events(pilot: Any) -> list[int]:
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, EventsScreen)
    free = [i for i, row in enumerate(screen.table.window_rows) if row.processing_lock is None][:2]
    ids = []
    for index in free:
        screen.table.move_cursor(row=index)
        await settle(pilot)
        ids.append(screen.table.highlighted.id)
        await pilot.press("c")
        await settle(pilot)
    assert len(ids) == 2
    return ids


async def test_quit_with_claims_asks_and_releases_them_by_default(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        ids = await claim_two_free_events(pilot)
        token = app.source.operator.lock_token
        assert all(row.processing_lock == token for row in locks(demo_db, ids).values())

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt")
        shown = screen_text(app)
        assert f"You hold 2 claims (events {ids[0]}, {ids[1]}): release them?" in shown
        assert "Release them and quit" in shown and "Keep them and quit" in shown
        await pilot.press("enter")  # the highlighted, first choice: release
        await until(pilot, lambda: exited(app), what="the app to exit")
    assert app.return_code == 0
    assert app.exit_lines == ["released 2 claims"]
    for row in locks(demo_db, ids).values():
        assert row.processing_lock is None
        assert row.processing_attempts[-1]["method"] == "operator:release"
        assert row.processing_attempts[-1]["changes"]["processing_lock"]["old"] == str(token)


async def test_quit_can_keep_the_claims_or_stay(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        ids = await claim_two_free_events(pilot)
        token = app.source.operator.lock_token

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt")
        await pilot.press("escape")  # stay
        await settle(pilot)
        assert not exited(app) and isinstance(app.screen, EventsScreen)

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt again")
        await pilot.press("k")
        await until(pilot, lambda: exited(app), what="the app to exit")
    assert app.exit_lines == [
        "kept 2 claims: they expire by themselves within 30 min, and in a new session T takes them back"
    ]
    assert all(row.processing_lock == token for row in locks(demo_db, ids).values())


async def test_quit_without_claims_asks_nothing(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: exited(app), timeout=5, what="the app to exit at once")
    assert app.exit_lines == []


async def test_claims_released_by_hand_are_not_asked_about(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        ids = await claim_two_free_events(pilot)
        app.source.release(ids)
        await pilot.press("q")
        await until(pilot, lambda: exited(app), what="the app to exit")
    assert app.exit_lines == []


class ClaimsUnreadableSource(DataSource):
    """The link drops just as the operator quits: the held claims cannot be read."""

    def held_claims(self) -> list[int]:
        raise psycopg.OperationalError("connection to server was lost")


async def test_quit_when_the_claims_cannot_be_read_says_so_and_asks(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn, source_class=ClaimsUnreadableSource)
    async with app.run_test(size=SIZE) as pilot:
        await claim_two_free_events(pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        assert "Quit without releasing your claims?" in screen_text(app)
        body = " ".join(app.screen.body.plain.split())
        assert body.startswith("The claims this session holds could not be read: ")
        assert "connection" in body and "within 30 min, and in a new session T takes them back" in body
        await pilot.press("n")
        await settle(pilot)
        assert not exited(app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation again")
        await pilot.press("y")
        await until(pilot, lambda: exited(app), what="the app to exit")


# --- a running migration ---------------------------------------------------------------------------------


class PatientSource(DataSource):
    """Waits up to two minutes for a table lock (the runner's default gives up after 5 s)."""

    upgrade_lock_timeout_ms = 120_000


@pytest.fixture
def legacy_with_reader(empty_dsn: str) -> Iterator[tuple[str, psycopg.Connection[Any], str]]:
    """A legacy v6 database with rows, and a long reader holding a share lock on the events table, so that the
    migration's ALTER TABLE waits behind it (as it would behind a report or a backup)."""
    engine = make_engine(empty_dsn)
    make_legacy_v6(engine, rows=200)
    engine.dispose()
    reader = psycopg.connect(empty_dsn)
    reader.execute("SELECT count(*) FROM dead_letter_events")  # the transaction stays open: the lock is held
    yield empty_dsn, reader, table_digest(empty_dsn)
    reader.close()


def table_digest(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT md5(string_agg(t::text, '|' ORDER BY id)) || ':' || (SELECT value FROM schema_state"
            " WHERE key = 'schema_version') FROM dead_letter_events t"
        ).fetchone()
        assert row is not None
        return str(row[0])


def columns(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'dead_letter_events'"
        )
        return {r[0] for r in found}


async def start_upgrade_that_waits(pilot: Any) -> Any:
    app = pilot.app
    await settle(pilot)
    await pilot.press("m")
    await settle(pilot)
    await pilot.press("u")
    await pilot.pause()
    await pilot.press("y")
    source = app.source

    def waiting_at_add_columns() -> bool:
        run = source.migration
        return run is not None and run.step is not None and run.step.name == "add_columns"

    await until(pilot, waiting_at_add_columns, what="the migration to wait at add_columns")
    await pilot.pause(0.5)  # it is really blocked in the ALTER now
    assert source.migration is not None
    return source.migration


async def test_quit_during_a_migration_names_it_and_cancel_rolls_it_back(
    legacy_with_reader: tuple[str, psycopg.Connection[Any], str],
) -> None:
    dsn, reader, before = legacy_with_reader
    app = make_app(dsn, source_class=PatientSource)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_upgrade_that_waits(pilot)

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt")
        question = app.screen.title_text
        assert question.startswith("The migration is running (step 3: add the 12 v7 columns, ")
        assert "Quit anyway?" in question and "cancelling rolls everything back" in question
        assert "esc stays in dlq-tui" in screen_text(app)  # esc is not "cancel the migration"
        shown = screen_text(app)
        assert "The migration is running (step 3: add the 12 v7 columns" in shown
        assert "Wait for it to finish, then quit" in shown
        assert "Cancel it now: roll back, nothing changes, then quit" in shown
        assert not exited(app)

        await pilot.press("c")
        await until(pilot, lambda: exited(app), what="the cancelled migration and the exit")
    assert app.exit_lines == ["migration cancelled at your request: rolled back, nothing changed"]
    reader.rollback()
    assert table_digest(dsn) == before  # every row and the marker (6) exactly as they were
    assert "payload_checksum" not in columns(dsn)


async def test_quit_during_a_migration_can_stay_or_wait_for_the_outcome(
    legacy_with_reader: tuple[str, psycopg.Connection[Any], str],
) -> None:
    dsn, reader, _ = legacy_with_reader
    app = make_app(dsn, source_class=PatientSource)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_upgrade_that_waits(pilot)

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt")
        await pilot.press("s")  # stay: nothing changes, the migration goes on
        await pilot.pause(0.3)
        assert not exited(app) and app.source.migration is not None

        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt again")
        await pilot.press("w")
        await pilot.pause(0.5)
        assert not exited(app)  # still waiting: the reader holds its lock
        assert any("quits when the migration finishes" in str(n.message) for n in app._notifications)
        reader.commit()  # the report is done: the migration goes on and commits
        await until(pilot, lambda: exited(app), timeout=60, what="the migration to finish and the exit")
    assert app.exit_lines == ["migration finished: the database is at schema v7"]
    assert "payload_checksum" in columns(dsn)
    assert table_digest(dsn).endswith(":7")


class SlowOnlineSource(DataSource):
    """The online migration in small, paced batches: its backfill takes several seconds."""

    online_batch_size = 100
    online_max_rate = 300.0


async def test_quit_during_the_online_migration_can_stop_it_resumably(empty_dsn: str) -> None:
    engine = make_engine(empty_dsn)
    make_legacy_v6(engine, rows=3000)
    engine.dispose()
    before = table_digest(empty_dsn)
    app = make_app(empty_dsn, source_class=SlowOnlineSource)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("y")

        def backfilling() -> bool:
            run = app.source.migration
            return run is not None and run.step is not None and run.step.name == "backfill"

        await until(pilot, backfilling, what="the online backfill")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt), what="the quit prompt")
        question = app.screen.title_text
        assert question.startswith("The online migration is running (step 4: fill checksums and idempotency keys, ")
        assert "stopping it keeps what it did (o resumes later)" in question
        await pilot.press("c")  # between two batches there is no statement to cancel: it is cancelled again
        await until(pilot, lambda: exited(app), what="the stopped migration and the exit")
    assert app.exit_lines == ["online migration stopped at your request: what it did stays; rerun it to resume"]
    after = table_digest(empty_dsn)
    assert after.endswith(":6")  # the marker moves last: still the old version
    with psycopg.connect(empty_dsn) as conn:
        count, filled = conn.execute("SELECT count(*), count(payload_checksum) FROM dead_letter_events").fetchone() or (
            0,
            0,
        )
    assert count == 3000 and 0 < filled < 3000  # stopped part way: resumable, nothing lost
    assert before.endswith(":6")


# --- the terminal goes away ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_a_hangup_releases_the_claims_of_the_session(v7_dsn: str, v7_engine: Engine, sig: int) -> None:
    """An SSH drop sends SIGHUP: nobody can answer a prompt, so the session releases its claims by itself
    (without this, the same operator was told "held by another session" for the rest of the lock's TTL)."""
    ids = add_bare_events(v7_engine, 3, reason="json_parsing_failed")
    term = Terminal([console_script(), "--dsn", v7_dsn, "--operator", "alice", "--refresh", "2"])
    try:
        term.read_until(["Pending"], timeout=30)
        term.send("e")
        term.read_until(["json_parsing_failed"], timeout=30)
        term.read_quiet(idle=0.5, timeout=20)
        mark = len(term.raw)
        term.send("c")
        term.read_until(["claim: 1 done"], timeout=30, since=mark)
        with v7_engine.connect() as conn:
            held = conn.execute(text("SELECT id FROM dead_letter_events WHERE processing_lock IS NOT NULL")).all()
        assert [row.id for row in held] == ids[:1]

        os.kill(term.proc.pid, sig)
        code = term.wait_exit(timeout=20)
    finally:
        term.close()
    assert code == 128 + sig
    with v7_engine.connect() as conn:
        row = conn.execute(
            text("SELECT processing_lock, processing_attempts FROM dead_letter_events WHERE id = :i"), {"i": ids[0]}
        ).one()
    assert row.processing_lock is None
    assert [e["method"] for e in row.processing_attempts] == ["operator:claim", "operator:release"]
    assert row.processing_attempts[-1]["operator"] == "alice"
