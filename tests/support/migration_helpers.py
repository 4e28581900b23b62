"""Helpers for the migration tests: catalog snapshots and the spec's end state, checked from the catalog."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Engine, text

from dlq_tui.db import schema
from dlq_tui.migrate import runner
from dlq_tui.migrate.steps import StepEvent

SNAPSHOT_QUERIES = {
    "relations": "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         pg_get_expr(d.adbin, d.adrelid)
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'public'::regnamespace ORDER BY 1""",
    "triggers": "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
    "functions": "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
}


def snapshot(engine: Engine, *, with_data: bool = True) -> dict[str, Any]:
    """Everything a migration could change: catalog objects, plus the rows of every dlq table."""
    snap: dict[str, Any] = {}
    with engine.connect() as conn:
        for key, sql in SNAPSHOT_QUERIES.items():
            snap[key] = [tuple(r) for r in conn.execute(text(sql))]
        if with_data:
            tables = [r[0] for r in snap["relations"] if r[1] == "r"]
            for table in tables:
                snap[f"data:{table}"] = conn.execute(
                    text(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
                ).scalar()
    return snap


def event_values(engine: Engine) -> list[tuple[Any, ...]]:
    """What the backfill decides per row: checksum, key, and which duplicate sources are left keyless."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT id, source, source_offset, payload::text, payload_checksum, idempotency_key "
                    "FROM dead_letter_events ORDER BY id"
                )
            )
        ]


def assert_same_as_atomic(online: Engine, atomic: Engine) -> None:
    """`online` holds what the atomic runner made of the same seed in `atomic`: catalog and rows."""
    a, b = snapshot(online, with_data=False), snapshot(atomic, with_data=False)
    for key in a:
        assert a[key] == b[key], key
    assert event_values(online) == event_values(atomic)
    assert_v7_end_state(online)


def run_upgrade(engine: Engine, **kwargs: Any) -> list[StepEvent]:
    return [e for e in runner.upgrade(engine, **kwargs) if e.status not in ("pending", "running")]


def finished(events: list[StepEvent]) -> dict[str, StepEvent]:
    return {e.name: e for e in events}


def expected_checksum(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


def expected_key(source: str | None, offset: int | None, checksum: str | None) -> str:
    raw = f"{source or ''}:{'' if offset is None else offset}:{checksum or ''}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


_PG_TYPES = {
    "VARCHAR(64)": "character varying(64)",
    "VARCHAR(128)": "character varying(128)",
    "VARCHAR(32)": "character varying(32)",
    "INTEGER": "integer",
    "JSONB": "jsonb",
    "UUID": "uuid",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
}


def assert_v7_end_state(engine: Engine) -> None:
    """The spec's end state, read back from the catalog (independently of the runner's own inspection)."""
    snap = snapshot(engine, with_data=False)
    cols = {(r[0], r[1]): r[2:] for r in snap["columns"]}
    for name, (type_sql, not_null, default) in schema.V7_COLUMNS.items():
        pg_type, is_not_null, pg_default = cols[("dead_letter_events", name)]
        assert pg_type == _PG_TYPES[type_sql], name
        assert is_not_null is not_null, name
        assert (pg_default or None) == (default.lower() if default else None), name
    # Legacy columns keep their types (payload stays json: the checksum covers its stored text).
    assert cols[("dead_letter_events", "payload")][0] == "json"
    assert cols[("dead_letter_events", "source_offset")][0] == "integer"
    indexes = dict(snap["indexes"])
    for name, columns in {**schema.V7_EVENT_INDEXES, **schema.LEGACY_EVENT_INDEXES}.items():
        assert indexes[name].endswith(f"ON public.dead_letter_events USING btree ({', '.join(columns)})"), name
    for name, (columns, include, where) in schema.OWN_INDEXES.items():
        definition = f"ON public.dead_letter_events USING btree ({', '.join(columns)})"
        definition += f" INCLUDE ({', '.join(include)})" if include else ""
        assert definition in indexes[name], (name, indexes[name])
        assert ("WHERE" in indexes[name]) is (where is not None), name
    for table, idx in schema.V7_TABLE_INDEXES.items():
        for name, columns in idx.items():
            assert indexes[name].endswith(f"ON public.{table} USING btree ({', '.join(columns)})"), name
    constraints = dict(snap["constraints"])
    assert constraints["ck_retry_count_positive"] == "CHECK ((retry_count >= 0))"
    assert constraints["ck_priority_range"] == "CHECK (((priority >= 1) AND (priority <= 10)))"
    assert constraints["uq_idempotency_key"] == "UNIQUE (idempotency_key)"
    assert constraints["dlq_circuit_breaker_state_breaker_name_key"] == "UNIQUE (breaker_name)"
    for table in ("dlq_processing_metrics", "dlq_circuit_breaker_state"):
        expected = [c.name for c in schema.metadata.tables[table].columns]
        assert [r[1] for r in snap["columns"] if r[0] == table] == sorted(expected)
    assert dict(snap["triggers"]) == {
        "update_circuit_breaker_updated_at": "dlq_circuit_breaker_state",
        "update_dead_letter_events_updated_at": "dead_letter_events",
    }
    assert "update_updated_at_column" in dict(snap["functions"])
    with engine.connect() as conn:
        view_cols = list(conn.execute(text("SELECT * FROM dlq_health")).keys())
        marker = conn.execute(text("SELECT value FROM schema_state WHERE key = 'schema_version'")).scalar()
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert tuple(view_cols) == schema.HEALTH_VIEW_COLUMNS
    assert marker == "7"
    assert revision == "v7_2"  # v7 plus dlq-tui's paging (v7_1) and health (v7_2) indexes
