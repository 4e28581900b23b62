"""A cancelled search leaves no query on the server: seen from a second connection, in pg_stat_activity."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from dlq_tui.config import Settings
from dlq_tui.db import search as s
from dlq_tui.search.query import parse_query
from dlq_tui.ui.source import DataSource
from tests.support.factories import insert_events

# PostgreSQL's LIKE backtracks: "%aaa…ab%" against a long run of "a" costs |payload| x |term| steps, so one
# statement over a few such rows runs for many seconds, deterministically, without any test hook in the code.
SLOW_PAYLOAD = {"x": "a" * 40_000}
SLOW_TERM = "a" * 2_000 + "b"


def _running_searches(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                    "AND pid <> pg_backend_pid() AND query ILIKE '%dead_letter_events%'"
                )
            ).scalars()
        )


@pytest.fixture
def slow_table(v7_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # One chunk holds every row: the single statement is the slow one.
    monkeypatch.setattr(s, "CHUNK_START_ROWS", 1_000)
    with v7_engine.begin() as conn:
        insert_events(conn, [{"payload": SLOW_PAYLOAD}] * 300)


def test_cancel_stops_the_statement_on_the_server(v7_dsn: str, v7_engine: Engine, slow_table: None) -> None:
    source = DataSource(Settings(dsn=v7_dsn, operator="tester"))
    handle = s.SearchHandle()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(source.search(parse_query(f'"{SLOW_TERM}"'), handle))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not _running_searches(v7_engine):
            assert time.monotonic() < deadline, "the search never started"
            time.sleep(0.05)
        time.sleep(0.3)
        assert _running_searches(v7_engine), "the statement should still be running before the cancel"
        cancelled_at = time.monotonic()
        handle.cancel()
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert time.monotonic() - cancelled_at < 3
        assert len(outcome) == 1 and isinstance(outcome[0], s.SearchCancelled)
        assert _running_searches(v7_engine) == []
    finally:
        handle.cancel()
        worker.join(timeout=30)
        source.close()


def test_closing_the_source_cancels_a_running_search(v7_dsn: str, v7_engine: Engine, slow_table: None) -> None:
    source = DataSource(Settings(dsn=v7_dsn, operator="tester"))
    handle = s.SearchHandle()
    outcome: list[object] = []

    def run() -> None:
        try:
            source.search(parse_query(SLOW_TERM), handle)
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while not _running_searches(v7_engine):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    source.close()  # quitting the app
    worker.join(timeout=5)
    assert not worker.is_alive() and _running_searches(v7_engine) == []
    assert len(outcome) == 1 and isinstance(outcome[0], s.SearchCancelled)
