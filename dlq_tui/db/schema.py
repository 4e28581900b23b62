"""SQLAlchemy Core tables for schema v7: the one place that names tables, columns and catalog objects.

Everything here is the schema v7 specification's (and, for the pre-v7 columns, the pipeline's legacy
schema's) exactly: names, types, defaults, CHECKs, indexes, the dlq_health view. The migration, the read
side and the write side all import these names, so none can drift from the others.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA_VERSION = 7
SCHEMA_VERSION_KEY = "schema_version"

metadata = MetaData()

schema_state = Table(
    "schema_state",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Legacy (pre-v7) columns first, then the twelve columns v7 adds, in the spec's order.
dead_letter_events = Table(
    "dead_letter_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ingest_id", String(64)),
    Column("source", String(512)),
    Column("source_offset", Integer),
    Column("reason", String(128), nullable=False),
    # json, not jsonb: payload::text must stay the text exactly as stored (the checksum covers it).
    Column("payload", JSON, nullable=False),
    Column("metadata_json", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved", Boolean, nullable=False, server_default=text("false")),
    Column("resolved_at", DateTime(timezone=True)),
    # --- v7 ---
    Column("payload_checksum", String(64)),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("error_history", JSONB),
    Column("processing_attempts", JSONB),
    Column("resolution_method", String(64)),
    Column("idempotency_key", String(128)),
    Column("processing_lock", Uuid(as_uuid=True)),
    Column("lock_expires_at", DateTime(timezone=True)),
    Column("priority", Integer, nullable=False, server_default=text("5")),
    Column("classification", String(32)),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
    Column("last_processed_at", DateTime(timezone=True)),
    CheckConstraint("retry_count >= 0", name="ck_retry_count_positive"),
    CheckConstraint("priority BETWEEN 1 AND 10", name="ck_priority_range"),
    UniqueConstraint("idempotency_key", name="uq_idempotency_key"),
)

LEGACY_EVENT_INDEXES: dict[str, tuple[str, ...]] = {
    "ix_dead_letter_events_created": ("created_at",),
    "ix_dead_letter_events_source": ("source",),
}

# The eight indexes v7 adds, name -> columns.
V7_EVENT_INDEXES: dict[str, tuple[str, ...]] = {
    "ix_dead_letter_events_payload_checksum": ("payload_checksum",),
    "ix_dead_letter_events_retry_count": ("retry_count",),
    "ix_dead_letter_events_idempotency_key": ("idempotency_key",),
    "ix_dead_letter_events_processing_lock": ("processing_lock",),
    "ix_dead_letter_events_lock_expires": ("lock_expires_at",),
    "ix_dead_letter_events_classification": ("classification",),
    "ix_dead_letter_events_resolved_created": ("resolved", "created_at"),
    "ix_dead_letter_events_priority_resolved": ("priority", "resolved"),
}

for _name, _cols in {**LEGACY_EVENT_INDEXES, **V7_EVENT_INDEXES}.items():
    Index(_name, *(dead_letter_events.c[c] for c in _cols))

# dlq-tui's own paging indexes (revision v7_1, not in the spec): name -> (columns, partial WHERE or None).
# The events screen orders by (priority, created_at, id); the spec's (priority, resolved) index cannot
# serve that order, so every page sorted a whole priority group (bench/BENCHMARKS.md).
PAGING_INDEXES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "ix_dlq_tui_pending_order": (("priority", "created_at", "id"), "NOT resolved"),
    "ix_dlq_tui_event_order": (("priority", "created_at", "id"), None),
}
for _name, (_cols, _where) in PAGING_INDEXES.items():
    Index(
        _name,
        *(dead_letter_events.c[c] for c in _cols),
        postgresql_where=text(_where) if _where else None,
    )

# dlq-tui's health indexes (revision v7_2, not in the spec): name -> (columns, INCLUDE columns, partial WHERE).
# Pending by reason / classification / priority (and malicious pending) as index-only scans instead of a pass over
# every pending row's heap tuple; resolved per hour / day as a range scan instead of a full scan. Both are partial on
# what the pipeline's INSERT does not write (new rows are pending, resolved_at NULL), see bench/BENCHMARKS.md.
HEALTH_INDEXES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "ix_dlq_tui_pending_breakdown": (("reason", "classification", "priority"), ("retry_count",), "NOT resolved"),
    "ix_dlq_tui_resolved_at": (("resolved_at",), (), "resolved_at IS NOT NULL"),
}
for _name, (_cols, _include, _where) in HEALTH_INDEXES.items():
    Index(
        _name,
        *(dead_letter_events.c[c] for c in _cols),
        postgresql_include=list(_include),
        postgresql_where=text(_where),
    )

# Every index dlq-tui adds beyond the spec: name -> (columns, INCLUDE columns, partial WHERE or None).
OWN_INDEXES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    **{name: (cols, (), where) for name, (cols, where) in PAGING_INDEXES.items()},
    **HEALTH_INDEXES,
}

V7_CHECK_CONSTRAINTS: dict[str, str] = {
    "ck_retry_count_positive": "retry_count >= 0",
    "ck_priority_range": "priority BETWEEN 1 AND 10",
}
V7_UNIQUE_CONSTRAINT = "uq_idempotency_key"

# The v7 columns: name -> (SQL type as the spec writes it, NOT NULL, default SQL or None).
V7_COLUMNS: dict[str, tuple[str, bool, str | None]] = {
    "payload_checksum": ("VARCHAR(64)", False, None),
    "retry_count": ("INTEGER", True, "0"),
    "error_history": ("JSONB", False, None),
    "processing_attempts": ("JSONB", False, None),
    "resolution_method": ("VARCHAR(64)", False, None),
    "idempotency_key": ("VARCHAR(128)", False, None),
    "processing_lock": ("UUID", False, None),
    "lock_expires_at": ("TIMESTAMP WITH TIME ZONE", False, None),
    "priority": ("INTEGER", True, "5"),
    "classification": ("VARCHAR(32)", False, None),
    "updated_at": ("TIMESTAMP WITH TIME ZONE", False, "NOW()"),
    "last_processed_at": ("TIMESTAMP WITH TIME ZONE", False, None),
}

dlq_processing_metrics = Table(
    "dlq_processing_metrics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("processing_session_id", String(64), nullable=False),
    Column("processing_method", String(32), nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("processed_count", Integer, nullable=False),
    Column("repaired_count", Integer, nullable=False),
    Column("failed_count", Integer, nullable=False),
    Column("skipped_count", Integer, nullable=False),
    Column("processing_duration_ms", Integer, nullable=False),
    Column("avg_processing_time_ms", Integer),
    Column("peak_memory_mb", Integer),
    Column("circuit_breaker_triggered", Boolean, nullable=False, server_default=text("false")),
    Column("rate_limit_hits", Integer, nullable=False, server_default=text("0")),
    Column("lock_timeout_count", Integer, nullable=False, server_default=text("0")),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
)
Index("ix_dlq_metrics_session", dlq_processing_metrics.c.processing_session_id)
Index("ix_dlq_metrics_method", dlq_processing_metrics.c.processing_method)
Index("ix_dlq_metrics_started", dlq_processing_metrics.c.started_at)

dlq_circuit_breaker_state = Table(
    "dlq_circuit_breaker_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("breaker_name", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("failure_count", Integer, nullable=False, server_default=text("0")),
    Column("last_failure_time", DateTime(timezone=True)),
    Column("next_attempt_time", DateTime(timezone=True)),
    Column("failure_threshold", Integer, nullable=False, server_default=text("5")),
    Column("timeout_seconds", Integer, nullable=False, server_default=text("60")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_circuit_breaker_state", dlq_circuit_breaker_state.c.state)
Index("ix_circuit_breaker_next_attempt", dlq_circuit_breaker_state.c.next_attempt_time)

V7_TABLE_INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    "dlq_processing_metrics": {
        "ix_dlq_metrics_session": ("processing_session_id",),
        "ix_dlq_metrics_method": ("processing_method",),
        "ix_dlq_metrics_started": ("started_at",),
    },
    "dlq_circuit_breaker_state": {
        "ix_circuit_breaker_state": ("state",),
        "ix_circuit_breaker_next_attempt": ("next_attempt_time",),
    },
}

HEALTH_VIEW = "dlq_health"
# The view's rules, named once: the fast health figures (db/queries.py) count the same rows the view counts.
HIGH_RETRY_ABOVE = 5  # high_retry_events: retry_count > 5
HIGH_PRIORITY_UP_TO = 3  # high_priority_events: priority <= 3
MALICIOUS = "malicious"  # malicious_events: classification = 'malicious'

# Exactly the spec's view. Note: the spec names MAX(created_at) "oldest_unresolved_event" although it
# is the newest; the view stays as specified (the pipeline reads it) and the read side computes the
# true oldest pending event separately.
HEALTH_VIEW_SQL = f"""\
CREATE OR REPLACE VIEW dlq_health AS
SELECT
    COUNT(*) FILTER (WHERE NOT resolved) as pending_events,
    COUNT(*) FILTER (WHERE resolved) as processed_events,
    AVG(EXTRACT(EPOCH FROM (resolved_at - created_at))) as avg_resolution_time_seconds,
    MAX(created_at) FILTER (WHERE NOT resolved) as oldest_unresolved_event,
    COUNT(*) FILTER (WHERE retry_count > {HIGH_RETRY_ABOVE}) as high_retry_events,
    COUNT(*) FILTER (WHERE processing_lock IS NOT NULL AND lock_expires_at > NOW()) as locked_events,
    COUNT(*) FILTER (WHERE classification = '{MALICIOUS}') as malicious_events,
    COUNT(*) FILTER (WHERE priority <= {HIGH_PRIORITY_UP_TO}) as high_priority_events
FROM dead_letter_events"""

HEALTH_VIEW_COLUMNS: tuple[str, ...] = (
    "pending_events",
    "processed_events",
    "avg_resolution_time_seconds",
    "oldest_unresolved_event",
    "high_retry_events",
    "locked_events",
    "malicious_events",
    "high_priority_events",
)

UPDATED_AT_FUNCTION = "update_updated_at_column"
UPDATED_AT_FUNCTION_SQL = """\
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql"""

# trigger name -> table
UPDATED_AT_TRIGGERS: dict[str, str] = {
    "update_dead_letter_events_updated_at": "dead_letter_events",
    "update_circuit_breaker_updated_at": "dlq_circuit_breaker_state",
}

# Values of `classification` an operator may set (NULL clears it).
CLASSIFICATIONS: tuple[str, ...] = ("malicious", "corrupted", "format_error")

PRIORITY_NAMES: dict[int, str] = {1: "Critical", 2: "High", 3: "Medium", 4: "Low", 5: "Normal"}


def priority_label(priority: int) -> str:
    """1-5 have names; 6-10 (allowed by ck_priority_range) read as "Level N"."""
    return PRIORITY_NAMES.get(priority, f"Level {priority}")
