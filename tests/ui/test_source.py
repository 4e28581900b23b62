"""The app's data source on a real PostgreSQL: a health refresh in flight is cancelled when the app closes."""

from __future__ import annotations

import threading
import time

import psycopg

from dlq_tui.config import Settings
from dlq_tui.ui.source import DataSource


def test_closing_cancels_a_running_health_refresh(v7_dsn: str) -> None:
    """A thread worker cannot be cancelled, and its query would keep running on the server after the app quit
    (at 10M events a refresh takes ~20 s, and a relaunch queues behind it). close() cancels it."""
    source = DataSource(Settings(dsn=v7_dsn, operator="tester"))
    outcome: list[BaseException | object] = []
    with psycopg.connect(v7_dsn) as blocker:
        # Hold a lock the health queries must wait for: the refresh stays "running" on the server.
        blocker.execute("LOCK TABLE dead_letter_events IN ACCESS EXCLUSIVE MODE")

        def refresh() -> None:
            try:
                outcome.append(source.health())
            except BaseException as exc:  # the cancellation arrives as a database error
                outcome.append(exc)

        worker = threading.Thread(target=refresh, daemon=True)
        worker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _health_waiting(v7_dsn):
            time.sleep(0.05)
        assert _health_waiting(v7_dsn), "the refresh should be waiting on the lock"

        started = time.monotonic()
        source.close()
        worker.join(timeout=10)
        assert not worker.is_alive() and time.monotonic() - started < 5
        assert outcome and isinstance(outcome[0], Exception)  # cancelled, not completed
        assert not _health_waiting(v7_dsn)  # nothing left running on the server
        blocker.rollback()


def _health_waiting(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dlq-tui' AND state = 'active' "
            "AND datname = current_database()"
        ).fetchone()
    return bool(row and row[0])
