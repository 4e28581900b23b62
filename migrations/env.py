"""Alembic environment for dlq-tui, driven from code by dlq_tui.migrate.runner.

The runner passes its connection (already inside the one transaction the whole migration uses) in
config.attributes["connection"], plus a `Steps` object that reports each step. Alembic sees an
external transaction and leaves begin/commit to the runner: everything or nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # Plain `alembic -x ...` use: a URL in the config (there is no alembic.ini in the package).
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("run migrations with `dlq-tui --migrate` (or pass a connection in config.attributes)")
        with create_engine(url).begin() as conn:
            config.attributes["connection"] = conn
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) mode is not supported: use `dlq-tui --migrate --dry-run`")
run()
