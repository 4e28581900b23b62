"""Engines from a DSN, DSN masking, and connection errors turned into one clear line.

Any libpq connection string works (URI or key=value, plus libpq's PG* variables), because the
engine hands the string to psycopg unchanged instead of re-parsing it as a SQLAlchemy URL.
SQLite URLs (``sqlite:///...``) are accepted too: the migration runner must say that v7 skips them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

APPLICATION_NAME = "dlq-tui"
MASK = "****"


class ConnectionFault(Exception):
    """A fault an operator can fix (bad DSN, server down, wrong password...): one line, no traceback."""


@dataclass(frozen=True)
class Target:
    """What we are connected to, safe to show: never carries the password."""

    host: str
    port: str
    database: str
    user: str
    embedded: bool = False

    def label(self) -> str:
        where = "embedded" if self.embedded else f"{self.host}:{self.port}" if self.port else self.host
        return f"{self.user}@{where}/{self.database}"


def is_sqlite(dsn: str) -> bool:
    return dsn.startswith("sqlite")


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ****, for headers, logs and error messages."""
    if is_sqlite(dsn):
        return dsn
    masked = re.sub(r"(://[^:/@?#]*:)([^@/?#]*)(@)", rf"\g<1>{MASK}\g<3>", dsn)
    masked = re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", masked, flags=re.I)
    return masked


def _password_of(dsn: str) -> str | None:
    try:
        return pg_conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        match = re.search(r"://[^:/@?#]*:([^@/?#]*)@", dsn)
        return match.group(1) if match else None


def scrub(message: str, dsn: str) -> str:
    """Remove the DSN's password from any text (error messages can echo parts of the DSN)."""
    password = _password_of(dsn)
    if password:
        message = message.replace(password, MASK)
    return mask_dsn(message)


def describe_target(dsn: str, *, embedded: bool = False) -> Target:
    if is_sqlite(dsn):
        return Target(host="sqlite", port="", database=dsn.split("///", 1)[-1], user="", embedded=False)
    try:
        params = pg_conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        params = {}
    import os

    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    if host.startswith("/"):
        host = "socket"
    return Target(
        host=host,
        port=str(params.get("port") or os.environ.get("PGPORT") or ""),
        database=str(params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "postgres"),
        user=str(params.get("user") or os.environ.get("PGUSER") or os.environ.get("USER") or "postgres"),
        embedded=embedded,
    )


def _libpq_conninfo(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too (postgresql+psycopg://) by dropping the driver suffix."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn)


def validate_dsn(dsn: str) -> None:
    """Raise ConnectionFault for a DSN libpq cannot even parse (before any network traffic)."""
    if is_sqlite(dsn):
        return
    try:
        pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn))
    except psycopg.ProgrammingError as exc:
        raise ConnectionFault(f"invalid connection string: {scrub(str(exc), dsn)}") from None


def make_engine(
    dsn: str,
    *,
    read_only: bool = False,
    statement_timeout_ms: int | None = None,
    pool_size: int = 5,
    **kwargs: Any,
) -> Engine:
    """An Engine for the DSN. read_only makes the *database session* read-only, not just the UI."""
    if is_sqlite(dsn):
        return create_engine(dsn, **kwargs)
    validate_dsn(dsn)
    conninfo = _libpq_conninfo(dsn)
    options: list[str] = []
    if read_only:
        options.append("-c default_transaction_read_only=on")
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    extra: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": 10}
    if options:
        extra["options"] = " ".join(options)

    def creator() -> psycopg.Connection[Any]:
        return psycopg.connect(conninfo, **extra)

    engine = create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_pre_ping=True,
        pool_size=pool_size,
        **kwargs,
    )
    if read_only:
        # Belt and braces: even if a pooler strips startup options, every transaction is read-only.
        @event.listens_for(engine, "begin")
        def _read_only(conn: Any) -> None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    return engine


def explain_connection_error(exc: BaseException, dsn: str) -> str:
    """One clear line for a connection failure, password masked."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    raw = " ".join(str(inner).split())
    text = raw.lower()
    target = describe_target(dsn)
    where = target.label()
    if isinstance(inner, ConnectionFault):
        return scrub(str(inner), dsn)
    if "password authentication failed" in text or "no password supplied" in text:
        hint = "wrong password or user"
    elif "does not exist" in text and "database" in text:
        hint = f'database "{target.database}" does not exist'
    elif "role" in text and "does not exist" in text:
        hint = f'role "{target.user}" does not exist'
    elif "could not translate host name" in text or "name or service not known" in text:
        hint = f'unknown host "{target.host}"'
    elif "connection refused" in text or "no such file or directory" in text:
        hint = "server not reachable (is it running? right host and port?)"
    elif "timeout" in text or "timed out" in text:
        hint = "connection timed out"
    elif "ssl" in text or "encryption" in text or "gssapi" in text:
        hint = "the server requires TLS (add sslmode=require) or refused the TLS settings"
    elif "no pg_hba.conf entry" in text:
        hint = "the server does not allow this connection (pg_hba.conf)"
    else:
        hint = "connection failed"
    return scrub(f"cannot connect to {where}: {hint} ({raw})", dsn)


def connection_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'could not reach or log in to the database'."""
    return (OperationalError, psycopg.OperationalError, ConnectionFault)
