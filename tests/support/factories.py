"""Insert dead-letter events, breakers and processing runs with given attributes (any test may use these).

Times are given relative to the server's clock so tests do not depend on the machine's:
`age` (timedelta or seconds) sets created_at = db now - age; `lock="held"` / `lock="expired"` sets a
processing lock expiring an hour after / before now. Any other key is a dead_letter_events column.
The payload is given as a Python value (`payload`, stored as json.dumps(value)) or as exact JSON text
(`payload_text`): the json column keeps that text byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text

from dlq_tui.db import schema

HOUR = timedelta(hours=1)


def db_now(conn: Connection) -> datetime:
    return conn.execute(select(func.now())).scalar_one()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _as_delta(age: timedelta | float) -> timedelta:
    return age if isinstance(age, timedelta) else timedelta(seconds=age)


def event_values(now: datetime, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Column values for one event: sensible defaults, then the overrides."""
    spec = dict(overrides)
    payload_text = spec.pop("payload_text", None)
    if payload_text is None:
        payload_text = json.dumps(
            spec.pop("payload", {"malformed_content": '{"eventid": "cowrie.', "original_offset": 1})
        )
    else:
        spec.pop("payload", None)
    age = spec.pop("age", None)
    lock = spec.pop("lock", None)
    values: dict[str, Any] = {
        "ingest_id": None,
        "source": "/var/log/cowrie/cowrie.json.2024-03-01",
        "source_offset": None,
        "reason": "json_parsing_failed",
        "metadata_json": None,
        "created_at": now if age is None else now - _as_delta(age),
        "resolved": False,
        "resolved_at": None,
        "payload_checksum": None,
        "retry_count": 0,
        "error_history": None,
        "processing_attempts": None,
        "resolution_method": None,
        "idempotency_key": None,
        "processing_lock": None,
        "lock_expires_at": None,
        "priority": 5,
        "classification": None,
        "last_processed_at": None,
    }
    if lock == "held":
        values["processing_lock"] = uuid.uuid4()
        values["lock_expires_at"] = now + HOUR
    elif lock == "expired":
        values["processing_lock"] = uuid.uuid4()
        values["lock_expires_at"] = now - HOUR
    elif lock is not None:
        raise ValueError(f"lock must be 'held', 'expired' or None, not {lock!r}")
    unknown = set(spec) - set(values)
    if unknown:
        raise TypeError(f"unknown event attributes: {sorted(unknown)}")
    values.update(spec)
    if values["payload_checksum"] == "auto":
        values["payload_checksum"] = sha256_hex(payload_text)
    for column in ("metadata_json", "error_history", "processing_attempts"):
        if values[column] is not None and not isinstance(values[column], str):
            values[column] = json.dumps(values[column])
    values["payload"] = payload_text
    return values


# Columns the factory sets (id, updated_at come from their defaults).
_COLUMNS = [
    "ingest_id",
    "source",
    "source_offset",
    "reason",
    "payload",
    "metadata_json",
    "created_at",
    "resolved",
    "resolved_at",
    "payload_checksum",
    "retry_count",
    "error_history",
    "processing_attempts",
    "resolution_method",
    "idempotency_key",
    "processing_lock",
    "lock_expires_at",
    "priority",
    "classification",
    "last_processed_at",
]
_CASTS = {"payload": "json", "metadata_json": "json", "error_history": "jsonb", "processing_attempts": "jsonb"}


def _insert_sql(columns: tuple[str, ...] | list[str], returning: bool) -> Any:
    params = [f"CAST(:{c} AS {_CASTS[c]})" if c in _CASTS else f":{c}" for c in columns]
    sql = f"INSERT INTO dead_letter_events ({', '.join(columns)}) VALUES ({', '.join(params)})"
    return text(sql + (" RETURNING id" if returning else ""))


_INSERT = _insert_sql(_COLUMNS, returning=True)
_INSERT_WITH_ID = _insert_sql(["id", *_COLUMNS], returning=False)


def insert_event(conn: Connection, *, now: datetime | None = None, **attrs: Any) -> int:
    """Insert one event; returns its id. payload_checksum="auto" stores the correct SHA-256."""
    return conn.execute(_INSERT, event_values(now or db_now(conn), attrs)).scalar_one()


def insert_events(conn: Connection, events: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> list[int]:
    """Insert many events (executemany); returns their ids in the given order."""
    now = now or db_now(conn)
    rows = [event_values(now, e) for e in events]
    ids: list[int] = []
    # Explicit ids from the sequence keep the returned order certain (RETURNING order is not promised).
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        new_ids = (
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence('dead_letter_events', 'id')) FROM generate_series(1, :n)"),
                {"n": len(chunk)},
            )
            .scalars()
            .all()
        )
        for row, new_id in zip(chunk, new_ids, strict=True):
            row["id"] = new_id
        conn.execute(_INSERT_WITH_ID, chunk)
        ids.extend(new_ids)
    return ids


def insert_breaker(conn: Connection, name: str, state: str, **attrs: Any) -> None:
    values = {"breaker_name": name, "state": state, **attrs}
    conn.execute(insert(schema.dlq_circuit_breaker_state).values(**values))


def insert_run(conn: Connection, *, started_at: datetime, **attrs: Any) -> None:
    values: dict[str, Any] = {
        "processing_session_id": uuid.uuid4().hex[:16],
        "processing_method": "stored_proc_enhanced",
        "batch_size": 100,
        "processed_count": 100,
        "repaired_count": 80,
        "failed_count": 15,
        "skipped_count": 5,
        "processing_duration_ms": 1234,
        "started_at": started_at,
        "completed_at": started_at + timedelta(seconds=2),
        **attrs,
    }
    conn.execute(insert(schema.dlq_processing_metrics).values(**values))


def add_bare_events(
    engine: Engine, n: int = 1, *, reason: str = "unknown", payload: str = '{"k": 1}', **cols: Any
) -> list[int]:
    """n minimal events in one statement; extra columns are set as raw values (e.g. resolved=True). Ids ascending."""
    names = ["reason", "payload", *cols]
    values = [":reason", "CAST(:payload AS json)", *(f":{c}" for c in cols)]
    sql = (
        f"INSERT INTO dead_letter_events ({', '.join(names)}) SELECT {', '.join(values)}"
        " FROM generate_series(1, :n) RETURNING id"
    )
    with engine.begin() as conn:
        return sorted(conn.execute(text(sql), {"reason": reason, "payload": payload, "n": n, **cols}).scalars())
