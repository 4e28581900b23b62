"""A hostile value in every text column of every table the app reads, and the exact terminal stream of
every screen checked for it.

The table below lists each column that can hold text (text, varchar, json, jsonb) with where a user sees it.
Each value starts with an OSC title change carrying a tag that names the column, then a clear-screen, a bidi
override, an 8-bit CSI and markup, so a column that reaches the terminal raw is named by the failure. A
meta-test checks the list against the live catalog: a text column added to the schema and not added here fails.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from dlq_tui.db.models import EventFilter
from dlq_tui.ui.screens.help import HelpScreen
from tests.support.factories import db_now, insert_breaker, insert_event, insert_run
from tests.support.hostile_corpus import COMBINED
from tests.ui.conftest import make_app, screen_text, settle
from tests.ui.test_hostile_render import assert_safe, open_events_on

SIZE = (200, 60)


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    tag: str  # short, so the value fits varchar(16) and the tag survives every cut
    max_chars: int | None  # the column's varchar length (None: unbounded)
    screen: str | None  # where the value is drawn: "health", "detail" (events + detail pane), "migration"


COLUMNS = (
    Column("dead_letter_events", "ingest_id", "Q01", 64, "detail"),
    Column("dead_letter_events", "source", "Q02", 512, "detail"),
    Column("dead_letter_events", "reason", "Q03", 128, "detail"),
    Column("dead_letter_events", "payload", "Q04", None, "detail"),
    Column("dead_letter_events", "metadata_json", "Q05", None, "detail"),
    Column("dead_letter_events", "payload_checksum", "Q06", 64, "detail"),  # never matches: drawn as MISMATCH
    Column("dead_letter_events", "error_history", "Q07", None, "detail"),
    Column("dead_letter_events", "processing_attempts", "Q08", None, "detail"),
    Column("dead_letter_events", "resolution_method", "Q09", 64, "detail"),  # drawn for resolved events
    Column("dead_letter_events", "idempotency_key", "Q10", 128, "detail"),
    Column("dead_letter_events", "classification", "Q11", 32, "detail"),
    Column("dlq_circuit_breaker_state", "breaker_name", "Q12", 64, "health"),
    Column("dlq_circuit_breaker_state", "state", "Q13", 16, "health"),
    # Read with the runs but drawn nowhere: the stream is still checked on every screen.
    Column("dlq_processing_metrics", "processing_session_id", "Q14", 64, None),
    Column("dlq_processing_metrics", "processing_method", "Q15", 32, "health"),
    Column("schema_state", "value", "Q16", 256, "migration"),  # the schema_version marker
    # Only the schema_version row is read: a hostile key is another row, never drawn.
    Column("schema_state", "key", "Q17", 128, None),
    Column("alembic_version", "version_num", "Q18", 32, "migration"),
)

# Typed columns: an integer, timestamp, boolean or uuid column cannot hold text, so no hostile value exists
# for them. Listed so that the meta-test can tell "covered" from "forgotten".
TYPED = {
    "dead_letter_events": {
        "id",
        "source_offset",
        "created_at",
        "resolved",
        "resolved_at",
        "retry_count",
        "processing_lock",
        "lock_expires_at",
        "priority",
        "updated_at",
        "last_processed_at",
    },
    "dlq_circuit_breaker_state": {
        "id",
        "failure_count",
        "last_failure_time",
        "next_attempt_time",
        "failure_threshold",
        "timeout_seconds",
        "created_at",
        "updated_at",
    },
    "dlq_processing_metrics": {
        "id",
        "batch_size",
        "processed_count",
        "repaired_count",
        "failed_count",
        "skipped_count",
        "processing_duration_ms",
        "avg_processing_time_ms",
        "peak_memory_mb",
        "circuit_breaker_triggered",
        "rate_limit_hits",
        "lock_timeout_count",
        "started_at",
        "completed_at",
    },
    "schema_state": set(),
    "alembic_version": set(),
}
JSON_COLUMNS = {"payload", "metadata_json", "error_history", "processing_attempts"}
# PostgreSQL text cannot hold NUL or lone surrogates (psycopg cannot even send them): the rest of the corpus can.
REST = "\u202e\x9b31m[@click=app.quit]z[/]" + "".join(
    ch for ch in COMBINED if ch != "\x00" and not "\ud800" <= ch <= "\udfff"
)


def hostile(column: Column) -> str:
    value = f"\x1b]0;{column.tag}\x07\x1b[2J" + REST
    return value if column.max_chars is None else value[: column.max_chars]


def json_value(column: Column) -> str:
    """JSON text carrying the hostile string as a key and as values, in the shape each column is drawn in."""
    h = hostile(column)
    if column.name == "payload":
        return json.dumps({"malformed_content": h, h: h})  # the raw block decodes its escapes
    if column.name == "metadata_json":
        return json.dumps({"note": h, h: [h]})
    # The audit columns are timelines: a hostile value in each slot of an entry, an extra key, a bare entry.
    return json.dumps([{"timestamp": h, "error_type": h, "message": h, "success": False, h: h}, h])


def shows_escaped(shown: str, column: Column) -> bool:
    """The tag drawn after a visible escape: \\x1b (text) or \\u001b (inside a JSON string) or repr's \\x1b."""
    return re.search(rf"\\(x1b|u001b)\]0;{column.tag}", shown) is not None


def seed(engine: Engine) -> dict[str, int]:
    """One event per dead_letter_events column (so a failure names it), breakers, runs, schema rows."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        now = db_now(conn)
        for column in COLUMNS:
            value = json_value(column) if column.name in JSON_COLUMNS else hostile(column)
            if column.table == "dead_letter_events":
                attrs: dict[str, Any] = {"payload_text" if column.name == "payload" else column.name: value}
                if column.name == "resolution_method":
                    attrs["resolved"] = True
                ids[column.name] = insert_event(conn, now=now, **attrs)
            elif column.table == "dlq_circuit_breaker_state":
                name = value if column.name == "breaker_name" else f"breaker-{column.tag}"
                insert_breaker(conn, name, value if column.name == "state" else "open")
            elif column.table == "dlq_processing_metrics":
                insert_run(conn, started_at=now, **{column.name: value})
        set_schema_rows(conn)
    return ids


def set_schema_rows(conn: Connection) -> None:
    by_name = {c.name: c for c in COLUMNS if c.table in ("schema_state", "alembic_version")}
    conn.execute(
        text("UPDATE schema_state SET value = :v WHERE key = 'schema_version'"), {"v": hostile(by_name["value"])}
    )
    conn.execute(text("INSERT INTO schema_state (key, value) VALUES (:k, '7')"), {"k": hostile(by_name["key"])})
    conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": hostile(by_name["version_num"])})


def test_the_list_covers_every_text_column_of_every_table_read(v7_engine: Engine) -> None:
    with v7_engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, character_maximum_length FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = ANY(:tables)"
            ),
            {"tables": list(TYPED)},
        ).all()
    listed = {(c.table, c.name): c for c in COLUMNS}
    for table, name, data_type, max_chars in found:
        if data_type in ("text", "character varying", "json", "jsonb"):
            assert (table, name) in listed, f"{table}.{name} holds text but has no hostile value in COLUMNS"
            assert listed[(table, name)].max_chars == max_chars, f"{table}.{name}: varchar length changed"
        else:
            assert name in TYPED[table], f"{table}.{name} ({data_type}) is neither covered nor listed as typed"
    assert {(t, n) for t, n, _, _ in found} >= set(listed), "COLUMNS names a column the schema does not have"


async def test_no_screen_draws_any_column_raw(v7_dsn: str, v7_engine: Engine) -> None:
    ids = seed(v7_engine)
    app = make_app(v7_dsn, refresh_seconds=600)
    drawn: dict[str, str] = {}  # screen -> what the user saw there (every detail pane for "detail")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert_safe(app, "health")
        drawn["health"] = screen_text(app)

        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        screen.apply_filter(EventFilter(include_resolved=True))
        await settle(pilot)
        assert_safe(app, "events")
        details = []
        for name, event_id in ids.items():
            await open_events_on(pilot, event_id)
            assert_safe(app, f"events, detail of the event with a hostile {name}")
            details.append(screen_text(app))
        drawn["detail"] = "\n".join(details)

        await pilot.press("s")
        await settle(pilot)
        assert_safe(app, "sources")  # source and reason of each pending event, grouped by file

        await pilot.press("m")
        await settle(pilot)
        assert_safe(app, "migration")
        drawn["migration"] = screen_text(app)

        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert_safe(app, "help")

    for column in COLUMNS:
        if column.screen is not None:
            assert shows_escaped(drawn[column.screen], column), (
                f"{column.table}.{column.name}: its value should be drawn, escaped, on the {column.screen} screen"
            )
