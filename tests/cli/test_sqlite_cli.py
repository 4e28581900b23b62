"""The one-shot commands on a SQLite DLQ, as a script or a monitoring system sees them."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dlq_tui.cli import run
from tests.support import hostile_corpus as hostile
from tests.support.sqlite_dlq import create_dlq, dsn_of, event, insert

NOW = datetime.now(UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = create_dlq(tmp_path / "cowrieprocessor.sqlite")
    insert(
        path,
        [
            *(event(created_at=NOW - timedelta(hours=h)) for h in (1, 2, 3)),
            event(reason="file_type_mismatch" + hostile.CLEAR_SCREEN, created_at=NOW - timedelta(hours=30)),
            event(created_at="garbage"),
            event(created_at=NOW - timedelta(days=3), resolved=True, resolved_at=NOW - timedelta(days=3, seconds=-90)),
        ],
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_health_reports_the_legacy_figures(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--dsn", dsn_of(db), "health")
    assert code == 1 and err == ""  # the oldest pending event is 30 h old: over the 24 h warning
    assert out.startswith("DLQ WARNING - oldest pending event is 1d 06h old (warn 24h, crit 168h) | pending=5;")
    assert "pending events                       5" in out
    assert "processed events                     1" in out
    assert "pending without a timestamp          1" in out
    assert "retries, locks, classes     unavailable: v7 is PostgreSQL-only" in out
    assert "json_parsing_failed" in out and "\x1b" not in out  # the hostile reason is shown escaped
    assert _run(capsys, "--dsn", dsn_of(db), "health", "--warn-oldest-hours", "off")[0] == 0
    assert _run(capsys, "--dsn", dsn_of(db), "health", "--crit-pending", "5")[0] == 2


def test_health_json_has_the_usual_keys_with_v7_only_ones_null(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--dsn", dsn_of(db), "health", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "WARNING" and doc["database"] == "sqlite"
    figures = doc["figures"]
    assert (figures["pending_events"], figures["processed_events"], figures["undated_pending"]) == (5, 1, 1)
    assert figures["avg_resolution_time_seconds"] == pytest.approx(90, abs=0.01)
    for name in ("high_retry_events", "locked_events", "malicious_events", "high_priority_events"):
        assert figures[name] is None and doc["dlq_health"][name] is None
    assert doc["breakers"] is None and doc["recent_runs"] is None
    assert doc["unavailable"]["reason"] == "v7 is PostgreSQL-only"
    assert {"locked_events", "breakers"} <= set(doc["unavailable"]["fields"])
    assert {f["field"] for f in doc["findings"]} == {"pending_events", "oldest_pending_at"}
    assert doc["pending_by_reason"][0] == {"reason": "json_parsing_failed", "count": 4}
    hourly, daily = doc["trends"]["hourly"], doc["trends"]["daily"]
    assert (len(hourly["starts"]), len(daily["starts"])) == (24, 30)
    assert (sum(hourly["arrived"]), sum(hourly["resolved"])) == (3, 0)  # created 1, 2 and 3 hours ago
    assert (sum(daily["arrived"]), sum(daily["resolved"])) == (5, 1)  # the garbage created_at is in no bucket


def test_health_of_a_file_without_the_dlq_table_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()
    code, out, err = _run(capsys, "--dsn", dsn_of(other), "health")
    assert (code, out) == (3, "")
    assert err == "dlq-tui: DLQ UNKNOWN - this database has no dead_letter_events table: wrong database?\n"


def test_health_of_a_file_that_is_not_a_database_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    code, _, err = _run(capsys, "--dsn", dsn_of(junk), "health", "--json")
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot read the SQLite database: file is not a database" in err


def test_health_while_another_connection_writes(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a processor mid-batch: readers still read
    try:
        assert _run(capsys, "--dsn", dsn_of(db), "health", "--warn-oldest-hours", "off")[0] == 0
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize("command", ["redrive", "purge"])
def test_v7_only_commands_refuse_with_the_one_reason(
    db: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = (
        ["redrive", "--dsn", dsn_of(db)]
        if command == "redrive"
        else ["purge", "--dsn", dsn_of(db), "--resolved-older-than", "30"]
    )
    code, out, err = _run(capsys, *argv)
    assert code in (1, 2) and out == ""
    assert err == f"dlq-tui: {command} unavailable: v7 is PostgreSQL-only\n"


def test_migrate_only_moves_the_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = create_dlq(tmp_path / "v6.sqlite", marker="6")
    insert(path, [event(created_at=NOW)])
    code, _, _ = _run(capsys, "--dsn", dsn_of(path), "--migrate")
    assert code == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM schema_state").fetchall() == [("7",)]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(dead_letter_events)")]
    finally:
        conn.close()
    assert len(columns) == 10  # no v7 column was added
