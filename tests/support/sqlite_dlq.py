"""A real SQLite DLQ file, shaped exactly as the Cowrie processor creates it (SQLAlchemy on SQLite, legacy schema).

The processor's models are the legacy columns of dlq_tui/db/schema.py; SQLAlchemy emits the DDL below for them on
SQLite, and the processor's v7 step only moves the marker to 7 there. Timestamps are stored the way SQLAlchemy's
DateTime writes them (naive UTC text, microseconds); tests add garbage values by hand.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DDL = (
    """CREATE TABLE dead_letter_events (
	id INTEGER NOT NULL,
	ingest_id VARCHAR(64),
	source VARCHAR(512),
	source_offset INTEGER,
	reason VARCHAR(128) NOT NULL,
	payload JSON NOT NULL,
	metadata_json JSON,
	created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
	resolved BOOLEAN DEFAULT false NOT NULL,
	resolved_at DATETIME,
	PRIMARY KEY (id)
)""",
    "CREATE INDEX ix_dead_letter_events_created ON dead_letter_events (created_at)",
    "CREATE INDEX ix_dead_letter_events_source ON dead_letter_events (source)",
    """CREATE TABLE schema_state (
	"key" VARCHAR(128) NOT NULL,
	value VARCHAR(256) NOT NULL,
	PRIMARY KEY ("key")
)""",
)

COLUMNS = ("ingest_id", "source", "source_offset", "reason", "payload", "metadata_json", "created_at", "resolved",
           "resolved_at")  # fmt: skip


def stamp(value: datetime) -> str:
    """A timestamp as the processor stores it."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def create_dlq(path: Path, *, marker: str | None = "7") -> Path:
    """The empty processor database (marker 7: the processor's v7 step ran and skipped everything else)."""
    with sqlite3.connect(path) as conn:
        for statement in DDL:
            conn.execute(statement)
        if marker is not None:
            conn.execute("INSERT INTO schema_state (key, value) VALUES ('schema_version', ?)", (marker,))
    conn.close()
    return path


def event(
    *,
    reason: str = "json_parsing_failed",
    source: str | None = "/var/log/cowrie/cowrie.json",
    source_offset: int | None = 1,
    payload: Any = '{"malformed_content": "{\\"eventid\\": ", "original_offset": 1}',
    metadata_json: Any = '{"json_parsing_failed": true}',
    created_at: Any,
    resolved: bool = False,
    resolved_at: Any = None,
    ingest_id: str | None = None,
) -> dict[str, Any]:
    """One row; datetimes are stored in the processor's format, anything else as given (garbage on purpose)."""
    return {
        "ingest_id": ingest_id,
        "source": source,
        "source_offset": source_offset,
        "reason": reason,
        "payload": payload,
        "metadata_json": metadata_json,
        "created_at": stamp(created_at) if isinstance(created_at, datetime) else created_at,
        "resolved": int(resolved),
        "resolved_at": stamp(resolved_at) if isinstance(resolved_at, datetime) else resolved_at,
    }


def insert(path: Path, rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """Insert rows (from event()), return their ids in order."""
    ids = []
    with sqlite3.connect(path) as conn:
        for row in rows:
            cur = conn.execute(
                f"INSERT INTO dead_letter_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                tuple(row[c] for c in COLUMNS),
            )
            assert cur.lastrowid is not None
            ids.append(cur.lastrowid)
    conn.close()
    return ids


def insert_raw_payload(path: Path, payload_hex: str, created_at: datetime) -> int:
    """A row whose payload holds bytes that are not UTF-8 (written as a BLOB cast to text, as a raw writer can)."""
    with sqlite3.connect(path) as conn:
        cur = conn.execute(
            "INSERT INTO dead_letter_events (reason, payload, created_at, resolved)"
            f" VALUES ('payload_not_dict', CAST(X'{payload_hex}' AS TEXT), ?, 0)",
            (stamp(created_at),),
        )
        assert cur.lastrowid is not None
        event_id = cur.lastrowid
    conn.close()
    return event_id


def read_row(path: Path, event_id: int) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM dead_letter_events WHERE id = ?", (event_id,)).fetchone()
        return dict(row)
    finally:
        conn.close()


def dsn_of(path: Path) -> str:
    return f"sqlite:///{path}"
