"""Fixtures: one real PostgreSQL for the session, a fresh database for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from dlq_tui.db.connect import make_engine
from tests.support.pg import (
    ServerUnavailable,
    TestServer,
    start_test_server,
    start_version_server,
    stop_test_server,
    with_pgcrypto,
)

# The older majors the `pg_versions` subset also runs on, in every run (the full suite runs on 18 alone).
SUBSET_VERSIONS = (15, 16, 17)
# `pg_versions(pgcrypto=True)` tests run once more on these with pgcrypto in every database, as the pipeline has it.
PGCRYPTO_VERSIONS = (15,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("pg_versions")
    if marker is None or "pg_server" not in metafunc.fixturenames:
        return  # a module's mark also covers its tests that need no server: they run once
    labels = ["18", *(str(v) for v in SUBSET_VERSIONS)]
    if marker.kwargs.get("pgcrypto"):
        labels += [f"{v}-pgcrypto" for v in PGCRYPTO_VERSIONS]
    metafunc.parametrize("pg_server", labels, indirect=True, scope="session", ids=[f"pg{x}" for x in labels])


class ServerPool:
    """Each server started once, on first use, and stopped at the end of the session. A server that cannot be
    had fails every test that asks for it, with the reason (a version test is never skipped)."""

    def __init__(self) -> None:
        self.servers: dict[str, TestServer] = {}
        self.failures: dict[str, BaseException] = {}

    def get(self, label: str) -> TestServer:
        if label in self.failures:
            raise self.failures[label]
        if label not in self.servers:
            try:
                self.servers[label] = self._start(label)
            except ServerUnavailable as exc:
                self.failures[label] = exc
                raise
        return self.servers[label]

    def _start(self, label: str) -> TestServer:
        if label == "18":
            return start_test_server()
        major, _, variant = label.partition("-")
        if variant == "pgcrypto":
            return with_pgcrypto(self.get(major))
        return start_version_server(int(major))

    def stop(self) -> None:
        for server in self.servers.values():
            server.drop_templates()
        for server in self.servers.values():
            stop_test_server(server)


@pytest.fixture(autouse=True)
def no_config_of_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Whoever runs the suite may have a dlq-tui config file with a default profile: it must not choose the database
    of any test (the child processes of the pty tests inherit this too)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "no-user-config"))
    for name in ("COWRIEPROC_DB_URL", "COWRIEPROC_DB_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest, pg_servers: ServerPool) -> TestServer:
    """The session's PostgreSQL 18, or, for a `pg_versions` test, the version of its parameter."""
    return pg_servers.get(getattr(request, "param", "18"))


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
def v7_template(pg_server: TestServer) -> str:
    """A database at schema v7 built once per session by the real migration runner (so every test starts
    from what `dlq-tui --migrate` produces); tests get copies of it (fast file copy)."""
    return pg_server.v7_template()


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
