"""Engines from a DSN: psycopg connections with our defaults, a SQL_ASCII database read as text.

The DSN is read by dlq_tui.db.dsn (once) and checked before any network traffic; a failure to reach
the database becomes a ConnectionFault worded by dlq_tui.db.errors.
"""

from __future__ import annotations

import contextlib
import json
import os
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from dlq_tui.db.deadline import Deadline
from dlq_tui.db.dsn import DEFAULT_CONNECT_TIMEOUT_S, Dsn, describe_target, is_sqlite, parse_dsn
from dlq_tui.db.errors import ConnectionFault, explain_connection_error, validate_dsn

APPLICATION_NAME = "dlq-tui"
# A server lost over the network (cable, VM, NAT state dropped) is otherwise noticed only after the
# kernel's TCP timeout (~15 min of retransmits). With these, an idle link is probed after 10 s and an
# unacknowledged send gives up after 30 s. libpq ignores them on unix sockets.
TCP_KEEPALIVE_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}


# ------------------------------------------------------------------------------- SQL_ASCII databases


class _SqlAsciiTextLoader(Loader):
    """Text from a SQL_ASCII database: bytes the server never checked, read as UTF-8 where they are.

    Each byte that is not UTF-8 becomes its surrogateescape stand-in, which text.py shows as \\xNN (drawn
    as an escape, unlike a backslash the writer typed) and _SqlAsciiStrDumper turns back into the
    same byte, so a value read here and used as a filter or action argument finds the same row.
    """

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8", "surrogateescape")


class _SqlAsciiTextBinaryLoader(_SqlAsciiTextLoader):
    format = pq.Format.BINARY


def _sql_ascii_json_loads(data: bytes | str) -> Any:
    return json.loads(data if isinstance(data, str) else data.decode("utf-8", "surrogateescape"))


class _SqlAsciiStrDumper(Dumper):
    """str to a SQL_ASCII database: UTF-8, and each stand-in of _SqlAsciiTextLoader back to its byte."""

    def dump(self, obj: str) -> Buffer | None:
        if self.format == pq.Format.TEXT and "\x00" in obj:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return obj.encode("utf-8", "surrogateescape")


@lru_cache(maxsize=1)
def _sql_ascii_dumpers() -> tuple[type[Dumper], ...]:
    """One subclass per psycopg str dumper (each names its own oid and format), in psycopg's order."""
    from psycopg.types import string

    bases = (
        string.StrBinaryDumperName,
        string.StrBinaryDumperVarchar,
        string.StrBinaryDumper,
        string.StrDumperName,
        string.StrDumperVarchar,
        string.StrDumper,
        string.StrDumperUnknown,
    )
    return tuple(type(f"SqlAscii{base.__name__}", (_SqlAsciiStrDumper, base), {}) for base in bases)


def adapt_to_server_encoding(conn: psycopg.Connection[Any]) -> None:
    """Make a connection to a SQL_ASCII database return str like any other.

    Old installations still run SQL_ASCII databases, which store whatever bytes a writer sent. psycopg
    then returns bytes for every text value (SQLAlchemy's own start-up query fails on them), and a
    client_encoding of UTF8 does not help: the server refuses to send the first value that is not
    valid UTF-8, so one hostile event would block every screen. So the session stays SQL_ASCII (no
    conversion, nothing refused) and text is decoded here, once for every engine, query and command.
    """
    if conn.info.parameter_status("server_encoding") != "SQL_ASCII":
        return
    if conn.info.parameter_status("client_encoding") != "SQL_ASCII":  # PGCLIENTENCODING or the DSN chose one
        conn.execute("SET client_encoding TO 'SQL_ASCII'")
        conn.commit()
    adapters = conn.adapters
    for type_name in ("text", "varchar", "bpchar", "name", '"char"'):
        adapters.register_loader(type_name, _SqlAsciiTextLoader)
        adapters.register_loader(type_name, _SqlAsciiTextBinaryLoader)
    adapters.register_loader(0, _SqlAsciiTextLoader)  # unknown: a literal SELECT 'x'
    set_json_loads(_sql_ascii_json_loads, conn)
    for dumper in _sql_ascii_dumpers():  # psycopg's order: the last one registered is the default
        adapters.register_dumper(str, dumper)


# -------------------------------------------------------------------------------------------- engines


def _connect_kwargs(dsn: Dsn, read_only: bool, statement_timeout_ms: int | None) -> dict[str, Any]:
    """Our defaults, without overriding what the user asked for (psycopg's keyword arguments win over
    the conninfo string, so a DSN's own connect_timeout or options would otherwise be lost)."""
    params = dsn.params
    extra: dict[str, Any] = {}
    if "application_name" not in params and not os.environ.get("PGAPPNAME"):
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    for key, value in TCP_KEEPALIVE_DEFAULTS.items():
        if key not in params:  # libpq has no environment variables for these: the DSN alone decides
            extra[key] = value
    options = [dsn.options] if dsn.options else []
    if read_only:
        options.append("-c default_transaction_read_only=on")
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if options:
        extra["options"] = " ".join(options)
    return extra


def make_engine(
    dsn: str,
    *,
    read_only: bool = False,
    statement_timeout_ms: int | None = None,
    pool_size: int = 5,
    deadline: Deadline | None = None,
    **kwargs: Any,
) -> Engine:
    """An Engine for the DSN (no connection yet). read_only makes the *database session* read-only.

    With a deadline, no connection outlives it: each new one gets at most the time left to log in, and
    every one is cut when it passes (see dlq_tui/db/deadline.py).
    """
    if is_sqlite(dsn):
        from dlq_tui.db.lite import lite_engine

        return lite_engine(dsn, read_only=read_only, **kwargs)
    validate_dsn(dsn)
    parsed = parse_dsn(dsn)
    conninfo = parsed.conninfo
    extra = _connect_kwargs(parsed, read_only, statement_timeout_ms)

    def creator() -> psycopg.Connection[Any]:
        timeout: dict[str, Any] = {}
        if deadline is not None:
            deadline.check()
            with contextlib.suppress(ValueError):  # a malformed value: psycopg's own error explains it
                timeout["connect_timeout"] = deadline.connect_timeout(int(float(parsed.connect_timeout())))
        try:
            conn = psycopg.connect(conninfo, **{**extra, **timeout})
        except UnicodeError:
            # psycopg resolves host names itself; a name the IDNA codec rejects (e.g. from PGHOST set
            # after validation) raises UnicodeError, which nobody catches as a connection error.
            raise psycopg.OperationalError("invalid host name") from None
        adapt_to_server_encoding(conn)
        return conn

    engine = create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_pre_ping=True,
        pool_size=pool_size,
        **kwargs,
    )
    if deadline is not None:
        deadline.attach(engine)
    if read_only:
        # Belt and braces: even if a pooler strips startup options, every transaction is read-only.
        @event.listens_for(engine, "begin")
        def _read_only(conn: Any) -> None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    return engine


def open_checked(dsn: str, **engine_kwargs: Any) -> Engine:
    """make_engine + one real connection, opened and closed: the one call every command starts with.

    Any failure to reach or log in to the database raises ConnectionFault with one clear line (password
    masked), so callers need a single `except ConnectionFault`. The engine is disposed on failure.
    """
    engine = make_engine(dsn, **engine_kwargs)
    try:
        with engine.connect():
            pass
    except (SQLAlchemyError, psycopg.Error, OSError) as exc:
        engine.dispose()
        raise ConnectionFault(explain_connection_error(exc, dsn)) from None
    return engine


def is_hot_standby(dsn: str) -> bool:
    """Is the server a hot standby (in recovery: it serves reads and refuses every write)?

    False for SQLite and when the question cannot be asked (the server is down...): whoever opens the database
    next gives that fault its own clear line.
    """
    if is_sqlite(dsn):
        return False
    try:
        engine = make_engine(dsn, read_only=True)
    except (SQLAlchemyError, psycopg.Error, OSError, ValueError, ConnectionFault):
        return False
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT pg_catalog.pg_is_in_recovery()")).scalar_one())
    except (SQLAlchemyError, psycopg.Error, OSError):
        return False
    finally:
        engine.dispose()


def standby_refusal(what: str, dsn: str) -> str:
    """The one line a write command gives on a hot standby."""
    return (
        f"{what} writes to the database, and {describe_target(dsn).label()} is a hot standby (read-only while "
        "in recovery): run it against the primary; nothing was changed"
    )
