"""A SQL_ASCII database, as old installations still run them: it stores whatever bytes a writer sent.

Every command must work on one, and bytes that are not UTF-8 are shown as escapes like any other hostile
byte. The events are written with raw bytes through plain psycopg (not through dlq-tui's engine), so the
data does not depend on the code under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import text

from dlq_tui.commands.check import CURRENT_LINE
from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
from dlq_tui.db.models import EventFilter
from dlq_tui.db.queries import fetch_event, fetch_page, known_reasons
from tests.support import pg
from tests.support.console import console_script
from tests.support.dbstates import make_v7
from tests.ui.conftest import make_app, screen_text, settle

# Anything that could drive a terminal or hide text: C0 (but newline), DEL, C1, bidi, zero-width.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")

BAD_REASON = b"bad \xff\xfe reason"
BAD_PAYLOAD = b'{"malformed_content": "ls \xff\xfe -la", "original_offset": 1}'
UTF8_REASON = "café ✓".encode()
UTF8_PAYLOAD = '{"cmd": "echo été"}'.encode()
ESCAPE_REASON = b"esc \x1b[2J \xe2\x80\xae rtl"  # ESC, then U+202E (right-to-left override) as UTF-8
BREAKER = b"evil\xff\xfe"
METHOD = b"batch\xff"
ENV_WITHOUT_DSN = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DLQ_TUI", "DATABASE_URL"))}


@dataclass
class SqlAsciiDb:
    dsn: str
    bad_id: int
    utf8_id: int
    escape_id: int


@pytest.fixture(scope="module")
def sql_ascii_template(pg_server: pg.TestServer) -> Iterator[str]:
    """A SQL_ASCII database at v7, migrated by the real migration runner (through dlq-tui's engine)."""
    name = f"t_ascii_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    engine = make_engine(pg_server.dsn_for(name))
    make_v7(engine)
    engine.dispose()
    yield name
    pg_server.drop_database(name)


def _raw(conn: psycopg.Connection[bytes], sql: bytes) -> int | None:
    """Run one statement whose text holds the raw bytes; psycopg sends bytes queries unchanged."""
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone() if cur.description else None
    return None if row is None else int(row[0])


def _event(conn: psycopg.Connection[bytes], reason: bytes, payload: bytes, source: bytes = b"/var/log/x.json") -> int:
    event_id = _raw(
        conn,
        b"INSERT INTO dead_letter_events (reason, payload, source, created_at) VALUES ('"
        + reason
        + b"', '"
        + payload
        + b"', '"
        + source
        + b"', now() - interval '1 hour') RETURNING id",
    )
    assert event_id is not None
    return event_id


@pytest.fixture
def ascii_db(pg_server: pg.TestServer, sql_ascii_template: str) -> Iterator[SqlAsciiDb]:
    with pg_server.fresh_database(template=sql_ascii_template) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.info.parameter_status("server_encoding") == "SQL_ASCII"
            bad = _event(conn, BAD_REASON, BAD_PAYLOAD, source=b"/var/log/cowrie/\xff.json")
            utf8 = _event(conn, UTF8_REASON, UTF8_PAYLOAD)
            escape = _event(conn, ESCAPE_REASON, b'{"x": "\\u001b]0;title\\u0007"}')
            _raw(
                conn,
                b"INSERT INTO dlq_circuit_breaker_state (breaker_name, state) VALUES ('" + BREAKER + b"', 'closed')",
            )
            _raw(
                conn,
                b"INSERT INTO dlq_processing_metrics (processing_session_id, processing_method, batch_size, "
                b"processed_count, repaired_count, failed_count, skipped_count, processing_duration_ms, started_at, "
                b"completed_at) VALUES ('s1', '" + METHOD + b"', 10, 1, 0, 1, 0, 5, now(), now())",
            )
        yield SqlAsciiDb(dsn, bad, utf8, escape)


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real console script: what it prints must also survive being written to a real stdout."""
    return subprocess.run(
        [console_script(), *argv],
        capture_output=True,
        encoding="utf-8",
        errors="strict",
        timeout=120,
        env={**ENV_WITHOUT_DSN, **env},
    )


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert not RAW_CONTROL.search(done.stdout + done.stderr)


def test_health_exit_code_follows_the_thresholds(ascii_db: SqlAsciiDb) -> None:
    ok = cli("health", "--dsn", ascii_db.dsn)
    assert_clean(ok)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("DLQ OK - 3 pending events |")
    assert "evil\\xff\\xfe" in ok.stdout  # the breaker, its bad bytes shown as escapes
    assert "batch\\xff" in ok.stdout  # the processing run's method

    warn = cli("health", "--dsn", ascii_db.dsn, "--warn-pending", "3")
    assert_clean(warn)
    assert warn.returncode == 1 and warn.stdout.startswith("DLQ WARNING - ")
    crit = cli("health", "--dsn", ascii_db.dsn, "--crit-pending", "3")
    assert crit.returncode == 2 and crit.stdout.startswith("DLQ CRITICAL - ")


def test_health_json_even_when_the_client_asks_for_utf8(ascii_db: SqlAsciiDb) -> None:
    """With client_encoding UTF8 the server refuses to send the first value that is not UTF-8; the
    session stays SQL_ASCII whatever PGCLIENTENCODING says."""
    done = cli("health", "--dsn", ascii_db.dsn, "--json", "--warn-pending", "3", PGCLIENTENCODING="UTF8")
    assert_clean(done)
    assert done.returncode == 1, done.stderr
    assert done.stdout.isascii()
    doc = json.loads(done.stdout)
    assert doc["status"] == "WARNING" and doc["figures"]["pending_events"] == 3
    # Each bad byte is one escaped stand-in, the same one text.py shows as \xNN.
    assert [b["name"] for b in doc["breakers"]] == [BREAKER.decode("utf-8", "surrogateescape")]


def test_analyze_shows_bad_bytes_and_controls_as_escapes(ascii_db: SqlAsciiDb) -> None:
    done = cli("analyze", "--dsn", ascii_db.dsn)
    assert_clean(done)
    assert done.returncode == 0, done.stderr
    assert "bad \\xff\\xfe reason" in done.stdout
    assert "café ✓" in done.stdout  # valid UTF-8 stays as it is
    assert "esc \\x1b[2J \\u202e rtl" in done.stdout
    as_json = cli("analyze", "--dsn", ascii_db.dsn, "--json")
    assert as_json.returncode == 0 and as_json.stdout.isascii()
    reasons = {r["reason"] for r in json.loads(as_json.stdout)["top_reasons"]}
    assert reasons == {BAD_REASON.decode("utf-8", "surrogateescape"), "café ✓", ESCAPE_REASON.decode()}


def test_check_and_migrate_backfill_checksums_over_the_stored_bytes(ascii_db: SqlAsciiDb) -> None:
    """Events written by a legacy writer lack checksum and key: check says so, --migrate fills them.
    convert_to(payload::text, 'UTF8') refuses bytes that are not UTF-8, so the migration would stop at the
    first such event; the checksum is the sha256 of the bytes as stored, as for any UTF-8 payload."""
    before = cli("check", "--dsn", ascii_db.dsn)
    assert_clean(before)
    # check is a schema verdict: the rows without checksum are a data note under the ✓, fatal only with --strict.
    assert before.returncode == 0 and "dlq-tui --migrate backfills them" in before.stdout, before.stdout + before.stderr
    strict = cli("check", "--strict", "--dsn", ascii_db.dsn)
    assert_clean(strict)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    done = cli("--dsn", ascii_db.dsn, "--migrate")
    assert_clean(done)
    assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(ascii_db.dsn) as conn:
        rows = {i: bytes(c).decode() for i, c in conn.execute("SELECT id, payload_checksum FROM dead_letter_events")}
        keys = conn.execute("SELECT count(*) FROM dead_letter_events WHERE idempotency_key IS NULL").fetchone()
    assert rows[ascii_db.bad_id] == hashlib.sha256(BAD_PAYLOAD).hexdigest()
    assert rows[ascii_db.utf8_id] == hashlib.sha256(UTF8_PAYLOAD).hexdigest()
    assert keys == (0,)
    after = cli("check", "--dsn", ascii_db.dsn)
    assert after.returncode == 0 and after.stdout.startswith(CURRENT_LINE), after.stdout + after.stderr


def test_values_read_back_find_their_rows_and_actions_work(ascii_db: SqlAsciiDb) -> None:
    """A reason read from the database, used as a filter, must find the same bytes (not a look-alike)."""
    engine = make_engine(ascii_db.dsn)
    try:
        with engine.connect() as conn:
            reason = next(r for r in known_reasons(conn) if r.startswith("bad"))
            page = fetch_page(conn, EventFilter(reason=reason))
            assert [r.id for r in page.rows] == [ascii_db.bad_id]
            assert [r.id for r in fetch_page(conn, EventFilter(text="\udcff.json")).rows] == [ascii_db.bad_id]
        result = triage.resolve(
            engine, triage.Operator("José"), [ascii_db.bad_id], next(iter(triage.RESOLUTION_METHODS))
        )
        assert result.done == [ascii_db.bad_id], result.skipped
        with engine.connect() as conn:
            detail = fetch_event(conn, ascii_db.bad_id)
            stored = conn.execute(
                text("SELECT reason FROM dead_letter_events WHERE id = :i"), {"i": ascii_db.bad_id}
            ).scalar_one()
    finally:
        engine.dispose()
    assert detail is not None and detail.processing_attempts[-1]["operator"] == "José"
    assert stored.encode("utf-8", "surrogateescape") == BAD_REASON  # the row's bytes are untouched


async def test_health_screen_events_list_and_detail_pane(ascii_db: SqlAsciiDb) -> None:
    assert cli("--dsn", ascii_db.dsn, "--migrate").returncode == 0  # checksums, so the pane can compare
    app = make_app(ascii_db.dsn, refresh_seconds=60)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        assert "evil\\xff\\xfe" in screen_text(app)  # the health screen's breaker
        await pilot.press("e")
        await settle(pilot)
        listing = screen_text(app)
        assert "bad \\xff\\xfe reason" in listing
        assert "café ✓" in listing
        screen = app.screen
        screen.jump_to(ascii_db.bad_id)  # type: ignore[attr-defined]
        await settle(pilot)
        shown = screen_text(app)
        assert f"event {ascii_db.bad_id}" in shown
        assert "ls \\xff\\xfe -la" in shown
        assert "/var/log/cowrie/\\xff.json" in shown
        assert "match ✓" in shown  # the pane's checksum is computed over the same bytes as the migration's
