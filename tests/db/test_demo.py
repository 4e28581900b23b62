"""Demo data: deterministic, only into an empty queue, realistic, and carrying every hostile row."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text

from dlq_tui.db import queries as q
from dlq_tui.db.connect import make_engine
from dlq_tui.db.models import EventFilter
from dlq_tui.demo import (
    DEEP_NESTING,
    HOSTILE_NAMES,
    HOSTILE_REASONS,
    HOSTILE_SOURCES,
    HUGE_PAYLOAD_BYTES,
    MISMATCH_INGEST_IDS,
    NO_CHECKSUM_INGEST_IDS,
    fill_demo,
    hostile_ids,
)
from tests.support import pg
from tests.support.dbstates import create_v7_from_metadata
from tests.support.factories import insert_event

CONTENT_SQL = """
SELECT ingest_id, source, source_offset, reason, payload::text, metadata_json::text, resolved, payload_checksum,
       idempotency_key, retry_count, error_history::text, processing_attempts::text, resolution_method,
       processing_lock, priority, classification,
       extract(epoch FROM created_at - (SELECT min(created_at) FROM dead_letter_events)) AS created_offset
FROM dead_letter_events ORDER BY ingest_id
"""


def _content(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(CONTENT_SQL))]


def test_fill_is_deterministic_and_only_into_an_empty_queue(v7_engine: Engine, pg_server: pg.TestServer) -> None:
    assert fill_demo(v7_engine) == 1500
    assert fill_demo(v7_engine) == 0  # a second load changes nothing
    first = _content(v7_engine)
    assert len(first) == 1500

    with pg_server.fresh_database() as other_dsn:
        other = make_engine(other_dsn)
        try:
            create_v7_from_metadata(other)
            assert fill_demo(other) == 1500
            assert _content(other) == first  # same seed: same rows, bytes, checksums and relative times
        finally:
            other.dispose()
    with pg_server.fresh_database() as third_dsn:
        third = make_engine(third_dsn)
        try:
            create_v7_from_metadata(third)
            fill_demo(third, seed=8, events=300)
            assert _content(third) != first[:300]
        finally:
            third.dispose()


def test_no_fill_over_existing_events(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, reason="real_event")
    assert fill_demo(v7_engine) == 0
    with v7_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dead_letter_events")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM dlq_circuit_breaker_state")).scalar() == 0


def test_demo_looks_like_a_real_queue(v7_engine: Engine) -> None:
    fill_demo(v7_engine)
    with v7_engine.connect() as conn:
        snap = q.fetch_health(conn)
        stats = conn.execute(
            text(
                """
                SELECT count(*) FILTER (WHERE processing_lock IS NOT NULL AND lock_expires_at > now()) AS held,
                       count(*) FILTER (WHERE processing_lock IS NOT NULL AND lock_expires_at <= now()) AS expired,
                       count(*) FILTER (WHERE resolved AND resolution_method IS NOT NULL) AS resolved_with_method,
                       count(*) FILTER (WHERE resolved AND coalesce(resolved_at > now(), true)) AS bad_resolved,
                       count(*) FILTER (WHERE priority = 5) AS normal,
                       count(*) FILTER (WHERE priority BETWEEN 1 AND 4) AS higher,
                       count(*) FILTER (WHERE priority >= 6) AS lower,
                       count(*) FILTER (WHERE retry_count > 5) AS many_retries,
                       count(DISTINCT classification) AS classes,
                       min(created_at) >= now() - interval '10 days' AND max(created_at) <= now() AS recent,
                       count(*) FILTER (WHERE jsonb_typeof(error_history) = 'array') AS with_history,
                       count(*) FILTER (WHERE payload::text LIKE '{"malformed_content": %') AS parse_failures
                FROM dead_letter_events
                """
            )
        ).one()
    assert stats.held > 10 and stats.expired > 5
    assert stats.resolved_with_method > 100 and stats.bad_resolved == 0
    assert stats.normal > 1000 and stats.higher > 50 and stats.lower > 20
    assert stats.many_retries > 50
    assert stats.classes >= 3
    assert stats.recent
    assert stats.with_history > 100 and stats.parse_failures > 500
    # Health: the processor's breaker opened, another is closed; ten runs, the newest tripped the breaker.
    breakers = {b.name: b for b in snap.breakers}
    main = breakers["dlq_main"]
    assert main.state == "open" and main.failure_count >= main.failure_threshold
    assert main.next_attempt_time is not None and main.next_attempt_time > snap.db_now
    assert any(b.state == "closed" for b in snap.breakers)
    assert len(snap.recent_runs) == 10 and snap.recent_runs[0].circuit_breaker_triggered
    assert snap.figures.locked_events == stats.held
    assert timedelta(days=9) < snap.db_now - snap.figures.oldest_pending_at < timedelta(days=10)


def test_checksums_and_keys_are_computed_like_the_migration(v7_engine: Engine) -> None:
    fill_demo(v7_engine, events=200)
    with v7_engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT ingest_id,
                       payload_checksum,
                       payload_checksum = encode(sha256(convert_to(payload::text, 'UTF8')), 'hex') AS sum_ok,
                       idempotency_key IS NOT DISTINCT FROM encode(sha256(convert_to(
                           coalesce(source, '') || ':' || coalesce(source_offset::text, '') || ':' || payload_checksum,
                           'UTF8')), 'hex') AS key_ok
                FROM dead_letter_events
                """
            )
        ).all()
        ids = {r.ingest_id: r for r in rows}
        detail = {
            name: q.fetch_event(
                conn,
                conn.execute(text("SELECT id FROM dead_letter_events WHERE ingest_id = :i"), {"i": i}).scalar_one(),
            )
            for name, i in (("mismatch", MISMATCH_INGEST_IDS[0]), ("none", NO_CHECKSUM_INGEST_IDS[0]))
        }
    assert all(r.key_ok for r in rows)
    special = set(MISMATCH_INGEST_IDS) | set(NO_CHECKSUM_INGEST_IDS)
    assert all(r.sum_ok for r in rows if r.ingest_id not in special)
    assert all(ids[i].sum_ok is False for i in MISMATCH_INGEST_IDS)
    assert all(ids[i].payload_checksum is None for i in NO_CHECKSUM_INGEST_IDS)
    assert detail["mismatch"] is not None and detail["mismatch"].checksum_status == "mismatch"
    assert detail["none"] is not None and detail["none"].checksum_status == "none"


def test_hostile_rows_are_stored_as_written(v7_engine: Engine) -> None:
    fill_demo(v7_engine, events=100)
    with v7_engine.connect() as conn:
        found = hostile_ids(conn)
        assert sorted(found) == sorted(HOSTILE_NAMES)
        stored = {
            r.id: r
            for r in conn.execute(
                text("SELECT id, reason, source, classification FROM dead_letter_events WHERE id = ANY(:ids)"),
                {"ids": list(found.values())},
            )
        }
        huge = q.fetch_event(conn, found["huge_payload"], payload_chars=1000)
        deep = q.fetch_event(conn, found["deep_nesting"])
        invalid = q.fetch_event(conn, found["invalid_utf8"])
        markup = q.fetch_event(conn, found["rich_markup"])
        first_page = q.fetch_page(conn, EventFilter(), limit=200)
    for name, event_id in found.items():
        assert stored[event_id].reason == HOSTILE_REASONS[name]
        assert stored[event_id].source == HOSTILE_SOURCES[name]
    assert "\x1b[2J" in HOSTILE_REASONS["clear_screen"] and "\x1b]0;" in HOSTILE_REASONS["window_title"]
    assert huge is not None and huge.payload_total_bytes >= HUGE_PAYLOAD_BYTES - 200
    assert len(huge.payload_text) == 1000 and huge.checksum_status == "match"
    assert deep is not None and deep.payload_text.count("[") == DEEP_NESTING
    assert invalid is not None and "\\udcff" in invalid.payload_text and "\\u0000" in invalid.payload_text
    assert markup is not None and markup.row.classification == "[/]"
    assert json.loads(markup.metadata_text or "")["requires_investigation"] == "[@click=app.quit]"
    # Old and urgent: every hostile row shows on the events screen's first page.
    assert set(found.values()) <= {r.id for r in first_page.rows}


def test_demo_shows_redrive_working(v7_engine: Engine) -> None:
    from dlq_tui.db import redrive as R
    from dlq_tui.db.triage import Operator
    from dlq_tui.demo import REDRIVE_INODE, REDRIVE_NAMES, redrive_ids

    fill_demo(v7_engine)
    with v7_engine.connect() as conn:
        target = R.inspect_target(conn)
        ids = redrive_ids(conn)
    assert target.blocked is None and target.timestamp_type == "timestamptz"  # the pipeline's current shape
    assert set(ids) == set(REDRIVE_NAMES)
    result = R.redrive(v7_engine, Operator("demo"), list(ids.values()))
    by_name = {name: result.statuses[i] for name, i in ids.items()}
    assert sorted(name for name, i in ids.items() if i in result.done) == [
        "cut_after_comma",
        "log_prefix",
        "raw_escapes",
        "stray_bytes",
        "trailing_comma",
        "validation_row",
    ]
    assert by_name["cut_command"] == "ambiguous"
    assert {by_name[n] for n in ("cut_session", "unquoted_keys", "no_timestamp", "binary_junk")} == {"refused"}
    with v7_engine.connect() as conn:
        inodes = conn.execute(
            text("SELECT DISTINCT source_inode FROM raw_events WHERE ingest_id LIKE 'demo-redrive-%'")
        ).scalars()
        assert list(inodes) == [REDRIVE_INODE]  # taken from the loader's own rows of that log file


def test_demo_leaves_an_existing_raw_events_table_alone(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        conn.execute(text("CREATE TABLE raw_events (id serial PRIMARY KEY, note text)"))
    fill_demo(v7_engine)
    with v7_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM raw_events")).scalar() == 0
