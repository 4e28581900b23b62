"""Fixtures: one real PostgreSQL for the session, a fresh database for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from dlq_tui.db.connect import make_engine
from tests.support.pg import TestServer, start_test_server, stop_test_server


@pytest.fixture(autouse=True)
def no_config_of_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Whoever runs the suite may have a dlq-tui config file with a default profile: it must not choose the database
    of any test (the child processes of the pty tests inherit this too)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "no-user-config"))
    for name in ("COWRIEPROC_DB_URL", "COWRIEPROC_DB_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    server = start_test_server()
    yield server
    stop_test_server(server)


@pytest.fixture
def empty_dsn(pg_server: TestServer) -> Iterator[str]:
    """DSN of a new, empty database (no tables at all)."""
    with pg_server.fresh_database() as dsn:
        yield dsn


@pytest.fixture
def empty_engine(empty_dsn: str) -> Iterator[Engine]:
    engine = make_engine(empty_dsn)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def v7_template(pg_server: TestServer) -> Iterator[str]:
    """A database at schema v7 built once per session by the real migration runner (so every test starts
    from what `dlq-tui --migrate` produces); tests get copies of it (fast file copy)."""
    from tests.support.dbstates import make_v7

    name = pg_server.create_database()
    engine = make_engine(pg_server.dsn_for(name))
    make_v7(engine)
    engine.dispose()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def v7_dsn(pg_server: TestServer, v7_template: str) -> Iterator[str]:
    """DSN of a new database at schema v7 with no events."""
    with pg_server.fresh_database(template=v7_template) as dsn:
        yield dsn


@pytest.fixture
def v7_engine(v7_dsn: str) -> Iterator[Engine]:
    engine = make_engine(v7_dsn)
    yield engine
    engine.dispose()
