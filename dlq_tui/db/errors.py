"""Database errors read one way: their SQLSTATE, their first line, and connection faults in one clear line.

Every connection message built here is made of our own words plus short fragments (host, user,
database, a libpq reason) that dlq_tui.db.dsn checks against everything that could be a password.
"""

from __future__ import annotations

import re

import psycopg
from sqlalchemy.exc import OperationalError

from dlq_tui.db.deadline import passed_deadline
from dlq_tui.db.dsn import describe_target, dsn_problem, libpq_reason, parse_dsn, safe_fragment, scrub

# SQLSTATEs the code acts on (PostgreSQL manual, appendix "PostgreSQL Error Codes").
UNIQUE_VIOLATION = "23505"
READ_ONLY_SQL_TRANSACTION = "25006"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_COLUMN = "42703"
UNDEFINED_TABLE = "42P01"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
# Classes (the first two characters). Class 42 from the server means our SQL met a schema it did not
# expect (undefined table or column, no privilege...), never bad data.
SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION = "42"


class ConnectionFault(Exception):
    """A fault an operator can fix (bad DSN, server down, wrong password...): one line, no traceback."""


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own error a SQLAlchemy wrapper carries (its `orig`), else exc itself."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def sqlstate(exc: BaseException) -> str | None:
    """The server's SQLSTATE for exc (a psycopg error, or SQLAlchemy's wrapper of one); None for errors
    the server did not send: a lost connection, a refused login, anything not from the database."""
    code = getattr(driver_error(exc), "sqlstate", None)
    return code if isinstance(code, str) and code else None


def sqlstate_class(exc: BaseException) -> str | None:
    """The SQLSTATE's class (its first two characters), e.g. SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION."""
    code = sqlstate(exc)
    return code[:2] if code else None


def first_line(exc: BaseException) -> str:
    """One line saying what went wrong: the primary message of a database error (never its DETAIL or
    CONTEXT, which can quote hostile row data), else the first line of str(exc), else the name of its
    type; whitespace runs read as one space. Not scrubbed: a caller holding a DSN passes it to scrub()."""
    inner = driver_error(exc)
    primary = getattr(inner.diag, "message_primary", None) if isinstance(inner, psycopg.Error) else None
    text = primary if isinstance(primary, str) else (str(inner).strip().splitlines() or [""])[0]
    return " ".join(text.split()) or type(inner).__name__


# ------------------------------------------------------------------------------- connection faults


def connection_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'could not reach or log in to the database'."""
    return (OperationalError, psycopg.OperationalError, ConnectionFault)


def classify_connection_error(exc: BaseException, dsn: str) -> str | None:
    """One clear line when exc means 'could not reach or log in to the database' (or lost it);
    None when it is some other database error (a lock timeout, a missing table...)."""
    inner = driver_error(exc)
    if isinstance(inner, ConnectionFault):
        return scrub(str(inner), dsn)
    deadline = passed_deadline(exc)
    if deadline is not None:  # whatever the driver says, the cause is the limit we enforced
        return deadline.describe(describe_target(dsn).label())
    raw = " ".join(str(inner).split())
    text = raw.lower()
    target = describe_target(dsn)
    where = target.label()

    def quoted(pattern: str) -> str:
        found = re.search(pattern, raw)
        return safe_fragment(found.group(1), dsn) if found else ""

    if isinstance(inner, UnicodeError) or "invalid host name" in text:
        return f'invalid connection string: invalid host name "{target.host}"'
    if m := re.search(r"connection is bad: (invalid [^:]+(?::.*)?)$", raw):
        return f"invalid connection string: {libpq_reason(m.group(1), dsn)}"
    if isinstance(inner, psycopg.errors.ConnectionTimeout) or "timeout expired" in text:
        return (
            f"cannot connect to {where}: no answer within {parse_dsn(dsn).connect_timeout()} s "
            "(connect_timeout): server overloaded, firewall dropping packets, or not a PostgreSQL port?"
        )
    if "failed to resolve host" in text or "could not translate host name" in text:
        if "servname" in text:
            return f'invalid connection string: invalid port "{target.port}"'
        if "temporary failure" in text:
            return f'cannot connect to {where}: cannot resolve host "{target.host}" (name service unavailable)'
        return f'cannot connect to {where}: unknown host "{target.host}" (the name does not resolve)'
    if "connection refused" in text:
        return (
            f"cannot connect to {where}: connection refused: nothing listens on that host and port "
            "(is the server running? right host and port?)"
        )
    if "no such file or directory" in text and "socket" in text:
        socket_path = quoted(r'socket "([^"]+)"') or "the socket"
        return (
            f'cannot connect to {where}: no server socket at "{socket_path}" '
            "(is the server running? right socket directory and port?)"
        )
    if "password authentication failed" in text:
        return f'cannot connect to {where}: password authentication failed for user "{target.user}" (wrong password?)'
    if "no password supplied" in text:
        return (
            f"cannot connect to {where}: the server asks for a password and none was given "
            "(put it in the DSN, PGPASSWORD or ~/.pgpass)"
        )
    if re.search(r'role "[^"]*" does not exist', raw):
        role = quoted(r'role "([^"]*)" does not exist')
        return f'cannot connect to {where}: role "{role}" does not exist'
    if re.search(r'database "[^"]*" does not exist', raw):
        name = quoted(r'database "([^"]*)" does not exist')
        return f'cannot connect to {where}: database "{name}" does not exist (create it, or fix the name)'
    if "server does not support ssl" in text:
        return (
            f"cannot connect to {where}: TLS required by the client (sslmode) but the server does not "
            "support it: use sslmode=prefer, or enable ssl on the server"
        )
    if ("pg_hba.conf" in text) and "no encryption" in text:
        return (
            f"cannot connect to {where}: the server accepts this user and database only over TLS "
            "(no encryption was used): add sslmode=require"
        )
    if "pg_hba.conf" in text:
        return f"cannot connect to {where}: the server's pg_hba.conf does not allow this host, user and database"
    if "not permitted to log in" in text:
        return f'cannot connect to {where}: role "{target.user}" is not allowed to log in'
    if "permission denied for database" in text:
        return f'cannot connect to {where}: role "{target.user}" has no CONNECT privilege on the database'
    if ("too many" in text and "connection" in text) or "remaining connection slots" in text:
        return f"cannot connect to {where}: the server has no free connection slots"
    if "starting up" in text or "shutting down" in text or "in recovery mode" in text:
        return f"cannot connect to {where}: the server is starting up or shutting down; try again shortly"
    if "ssl" in text or "certificate" in text or "gssapi" in text:
        return f"cannot connect to {where}: TLS error: {scrub(_tail(raw), dsn)}"
    if (
        "server closed the connection" in text
        or "terminating connection" in text
        or "consuming input failed" in text
        or "connection is closed" in text
        or "connection is lost" in text
    ):
        return f"lost the connection to {where}: the server closed it (restarted or stopped?)"
    if "connection failed" in text or "connection is bad" in text or "could not connect" in text:
        return f"cannot connect to {where}: {scrub(_tail(raw), dsn)}"
    if isinstance(inner, OSError):
        return f"cannot connect to {where}: {scrub(first_line(inner), dsn)}"
    return None


def _tail(raw: str) -> str:
    """libpq's reason without its 'connection to server at ... failed:' preamble."""
    tail = re.split(r"failed:\s*", raw)[-1]
    return re.sub(r"^(?:FATAL|ERROR):\s*", "", tail).strip() or raw


def explain_connection_error(exc: BaseException, dsn: str) -> str:
    """One clear line for a connection failure, password masked."""
    line = classify_connection_error(exc, dsn)
    if line is not None:
        return line
    return scrub(f"cannot connect to {describe_target(dsn).label()}: {first_line(exc)}", dsn)


def validate_dsn(dsn: str) -> None:
    """Raise ConnectionFault for a DSN that cannot work (dsn.dsn_problem says why), before any network traffic."""
    problem = dsn_problem(dsn)
    if problem is not None:
        raise ConnectionFault(f"invalid connection string: {problem}")
