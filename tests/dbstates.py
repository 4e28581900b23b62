"""Build databases in the states users have: empty, legacy v6 with rows, half-applied v7, v7.

`make_v7` goes through the real migration runner once it exists; until then (and as a
cross-check) `create_v7_from_metadata` builds the same end state from dlq_tui.db.schema.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from dlq_tui.db import schema


def create_v7_from_metadata(engine: Engine) -> None:
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
            text("INSERT INTO schema_state (key, value) VALUES (:k, '7')"),
            {"k": schema.SCHEMA_VERSION_KEY},
        )
