"""The v7 fixture database really has the v7 objects (guards every other test's starting point)."""

from sqlalchemy import Engine, inspect, text

from dlq_tui.db import schema


def test_v7_fixture_has_view_and_marker(v7_engine: Engine) -> None:
    with v7_engine.connect() as conn:
        health = conn.execute(text("SELECT * FROM dlq_health")).mappings().one()
        marker = conn.execute(text("SELECT value FROM schema_state WHERE key = 'schema_version'")).scalar()
    assert set(health.keys()) == set(schema.HEALTH_VIEW_COLUMNS)
    assert marker == "7"
    indexes = {ix["name"] for ix in inspect(v7_engine).get_indexes("dead_letter_events")}
    assert set(schema.V7_EVENT_INDEXES) <= indexes
