"""`dlq-tui --demo`: migrates and fills an empty database, and never touches one that already holds events."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.commands.app import prepare_demo
from dlq_tui.migrate.runner import check
from tests.support.dbstates import make_legacy_v6
from tests.support.migration_helpers import snapshot


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


def test_demo_with_read_only_is_refused_and_changes_nothing(
    empty_engine: Engine, empty_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty legacy database: --demo alone would migrate it and write 1,500 events; --read-only forbids that."""
    make_legacy_v6(empty_engine, rows=0)
    before = snapshot(empty_engine)
    assert run(["--dsn", empty_dsn, "--demo", "--read-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dlq-tui: --demo writes to the database") and "--read-only" in err
    assert snapshot(empty_engine) == before  # catalog and rows exactly as they were
    status = check(empty_engine)
    assert status.marker == 6 and status.catalog_version == 6


def test_demo_with_read_only_does_not_even_start_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DLQ_TUI_DSN", "DATABASE_URL", "PGHOST", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLQ_TUI_DATA_DIR", str(tmp_path))
    assert run(["--demo", "--read-only"]) == 2
    assert "--read-only" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no data dir, no database created for the demo
