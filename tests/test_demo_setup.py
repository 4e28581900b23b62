"""`dlq-tui --demo`: migrates and fills an empty database, and never touches one that already holds events."""

from __future__ import annotations

from sqlalchemy import Engine, text

from dlq_tui.commands.app import prepare_demo
from dlq_tui.migrate.runner import check
from tests.dbstates import make_legacy_v6


def test_demo_migrates_and_fills_an_empty_database(empty_engine: Engine, empty_dsn: str) -> None:
    assert prepare_demo(empty_dsn) is True
    assert check(empty_engine).catalog_version == 7
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dead_letter_events")).scalar_one() > 1000
    assert prepare_demo(empty_dsn) is False  # a second start adds nothing


def test_demo_leaves_a_database_with_events_exactly_as_it_is(empty_engine: Engine, empty_dsn: str) -> None:
    """--demo pointed at a real pipeline's database by mistake: no migration, no fake events."""
    make_legacy_v6(empty_engine, rows=25)
    assert prepare_demo(empty_dsn) is False
    status = check(empty_engine)
    assert status.marker == 6 and status.catalog_version == 6  # not migrated
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dead_letter_events")).scalar_one() == 25
