"""Engines from a DSN, DSN masking, and connection errors turned into one clear line.

Any libpq connection string works (URI or key=value, plus libpq's PG* variables), because the
engine hands the string to psycopg unchanged instead of re-parsing it as a SQLAlchemy URL.
SQLite URLs (``sqlite:///...``) are accepted too: the migration runner must say that v7 skips them.

Every message built here is made of our own words plus short fragments (host, user, database, a
libpq reason) that are checked against everything that could be a password first: a malformed DSN
can put a piece of the password into the host, port or database field, and libpq quotes those back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from dlq_tui.db.deadline import Deadline, passed_deadline

APPLICATION_NAME = "dlq-tui"
MASK = "****"
DEFAULT_CONNECT_TIMEOUT_S = 10
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
# libpq keywords whose values are secrets, not only `password`.
SECRET_KEYS = ("password", "sslpassword", "scram_client_key", "scram_server_key", "oauth_client_secret")
# Keys an empty value is certainly a mistake for (typically `port=$PGPORT` with the variable unset);
# libpq would silently fall back to its defaults and connect somewhere else.
_NON_EMPTY_KEYS = ("host", "hostaddr", "port", "dbname", "user")
_URI = re.compile(r"^(postgres(?:ql)?(?:\+\w+)?://)(.*)$", re.S | re.I)
_URI_ANYWHERE = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\S+", re.I)


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


# ------------------------------------------------------------------------------------------- masking


@lru_cache(maxsize=1)
def _libpq_keywords() -> frozenset[str]:
    return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())


def _secret_alternation() -> str:
    return "|".join(SECRET_KEYS)


def _uri_password_span(rest: str) -> tuple[int, int] | None:
    """Where a URI's password is (rest = everything after '://'), by structure: from the first ':' to
    the last '@'. Unlike libpq this also covers passwords holding unencoded '@', '/' or '?', which
    libpq misreads as host, port or database, and then quotes back in its error messages."""
    at = rest.rfind("@")
    colon = rest.find(":")
    if not 0 <= colon < at or re.search(r"[/?@]", rest[:colon]):
        return None
    # `host:5432/db?user=me@example` has no password: the '@' is in the query string.
    if re.match(r"^\d*(?:,[^/]*)?/[^?@]*\?", rest[colon + 1 : at]):
        return None
    return colon + 1, at


def _mask_uri(prefix: str, rest: str) -> str:
    span = _uri_password_span(rest)
    if span:
        rest = f"{rest[: span[0]]}{MASK}{rest[span[1] :]}"
    return prefix + _query_secret_pattern().sub(rf"\g<1>{MASK}", rest)


@lru_cache(maxsize=1)
def _query_secret_pattern() -> re.Pattern[str]:
    keys = "|".join(map(re.escape, sorted(_libpq_keywords())))
    # A query value ends at the next `&known_key=`, so an unencoded '&' in a password is masked too.
    return re.compile(rf"([?&](?:{_secret_alternation()})=)(.*?)(?=&(?:{keys})=|#|$)", flags=re.S)


@lru_cache(maxsize=1)
def _keyvalue_secret_pattern() -> re.Pattern[str]:
    # A quoted value runs on to the next whitespace: `password='it's'` is a password with a quote in it,
    # which libpq ends early and then quotes the rest ("s") back as a key name.
    quoted = r"'(?:[^'\\]|\\.)*'\S*"
    unterminated = r"'.*"
    # Unquoted: libpq stops at whitespace, but `password=a b host=x` means the user forgot the quotes,
    # so mask up to the next `key=` (or the end).
    unquoted = r"\S+(?:\s+(?![\w.-]+\s*=)\S+)*"
    return re.compile(rf"(\b(?:{_secret_alternation()})\s*=\s*)({quoted}|{unterminated}|{unquoted})", flags=re.I | re.S)


def _mask_keyvalue(dsn: str) -> str:
    return _keyvalue_secret_pattern().sub(rf"\g<1>{MASK}", dsn)


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ****, for headers, logs and error messages."""
    if is_sqlite(dsn):
        return dsn
    match = _URI.match(dsn)
    # By structure only: every place a password can sit is masked, and a value pass would also hit
    # `postgres` in the scheme of `postgresql://postgres:postgres@...`.
    return _mask_uri(match.group(1), match.group(2)) if match else _mask_keyvalue(dsn)


def _replace_secrets(text: str, dsn: str) -> str:
    """Replace every secret in text. A secret under 4 characters is replaced only where it stands alone:
    "p" inside "postgresql" gives nothing away, and masking it there would garble every message."""
    for secret in _secrets(dsn):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", MASK, text)
    return text


def _secrets(dsn: str) -> list[str]:
    """Every string that is or may be a password: the parsed values (decoded and as typed), the raw
    region a URI's structure says is the password, and PGPASSWORD. Longest first, for replacing."""
    found: set[str] = set()
    parsed = True
    try:
        params = pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn)) if dsn else {}
    except (psycopg.ProgrammingError, UnicodeError):
        params, parsed = {}, False
    for key in SECRET_KEYS:
        value = params.get(key)
        if value:
            found.update({str(value), quote(str(value), safe="")})
    match = _URI.match(dsn)
    if match:
        rest = match.group(2)
        span = _uri_password_span(rest)
        if span:
            region = rest[span[0] : span[1]]
            found.update({region, unquote(region)})
        for m in _query_secret_pattern().finditer(rest):
            found.update({m.group(2), unquote(m.group(2))})
    elif not parsed:
        # libpq could not say where the value ends (e.g. an unterminated quote): take what we mask.
        for m in _keyvalue_secret_pattern().finditer(dsn):
            value = m.group(2)
            found.update({value, value.strip("'")})
    if os.environ.get("PGPASSWORD"):
        found.add(os.environ["PGPASSWORD"])
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(message: str, dsn: str) -> str:
    """Remove the DSN's password from any text (error messages can echo parts of the DSN)."""
    message = _replace_secrets(message, dsn)
    message = _URI_ANYWHERE.sub(lambda m: mask_dsn(m.group(0)), message)
    return _mask_keyvalue(message)


def _safe(fragment: str, dsn: str, *, malformed: bool = False) -> str:
    """A DSN fragment fit to print: MASK when it contains, or is a piece of, anything secret.

    With malformed=True (a fragment libpq quotes from a DSN it could not read) also when it overlaps a
    secret by 3 characters: libpq may cut a field in the middle of the password and quote the rest
    with what follows (`7%w'x@127.0.0.1` of the password `Qz@7%w'x`). Fields of a DSN that parsed are
    the fields the user wrote, so there a shared "202" of a password and a host name masks nothing.
    """
    if not fragment:
        return fragment
    for secret in _secrets(dsn):
        if fragment in secret or (malformed and _shares_a_piece(fragment, secret)):
            return MASK
    return MASK if _replace_secrets(fragment, dsn) != fragment else fragment


def _shares_a_piece(fragment: str, secret: str, piece: int = 3) -> bool:
    return len(secret) >= piece and any(secret[i : i + piece] in fragment for i in range(len(secret) - piece + 1))


# ---------------------------------------------------------------------------------------- the target


def describe_target(dsn: str, *, embedded: bool = False) -> Target:
    if is_sqlite(dsn):
        return Target(host="sqlite", port="", database=dsn.split("///", 1)[-1], user="", embedded=False)
    try:
        params = pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn)) if dsn else {}
    except (psycopg.ProgrammingError, UnicodeError):
        params = {}
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    if host.startswith("/"):
        host = "socket"
    user = str(params.get("user") or os.environ.get("PGUSER") or os.environ.get("USER") or "postgres")
    return Target(
        host=_safe(host, dsn),
        port=_safe(str(params.get("port") or os.environ.get("PGPORT") or ""), dsn),
        database=_safe(str(params.get("dbname") or os.environ.get("PGDATABASE") or user), dsn),
        user=_safe(user, dsn),
        embedded=embedded,
    )


def _libpq_conninfo(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too (postgresql+psycopg://) by dropping the driver suffix."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn)


# ------------------------------------------------------------------------------------------ validating


def _invalid(reason: str) -> ConnectionFault:
    return ConnectionFault(f"invalid connection string: {reason}")


# libpq's percent-decoding errors quote the field being decoded, which is the password more often than
# not (a literal "%" in it): they are told in our own words, quoting nothing.
_PERCENT_ERRORS = {
    "invalid percent-encoded token": (
        'invalid percent-encoded token: a "%" in the URI must start a %XX escape; write a literal "%" as %25'
    ),
    "forbidden value %00": "a percent-escape in the URI decodes to a NUL byte, which no connection value may hold",
}


def _vetted_reason(libpq_message: str, dsn: str) -> str:
    """libpq's parse error, first line, with every quoted DSN fragment checked for secrets."""
    first = (libpq_message.strip().splitlines() or ["cannot be parsed"])[0]
    for prefix, ours in _PERCENT_ERRORS.items():
        if first.startswith(prefix):
            return ours
    if first.startswith('invalid connection option ""'):
        first = 'a "=" without a key name before it'
    first = re.sub(r'"([^"]*)"', lambda m: f'"{_safe(m.group(1), dsn, malformed=True)}"', first)
    return scrub(first.removesuffix(" in connection info string"), dsn)


def _effective(params: dict[str, Any], key: str, env: str) -> str | None:
    value = params.get(key)
    return str(value) if value is not None else os.environ.get(env)


def validate_dsn(dsn: str) -> None:
    """Raise ConnectionFault for a DSN that cannot work, before any network traffic: libpq syntax
    errors, bad ports, empty values, '@' that should have been %40, host names no resolver accepts."""
    if is_sqlite(dsn):
        return
    conninfo = _libpq_conninfo(dsn)
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo) if conninfo else {}
    except psycopg.ProgrammingError as exc:
        raise _invalid(_vetted_reason(str(exc), dsn)) from None
    uri = _URI.match(dsn)
    if uri:
        span = _uri_password_span(uri.group(2))
        region = uri.group(2)[span[0] : span[1]] if span else ""
        # `postgresql://u:p@ss@h/db` makes libpq read host "ss@h"; `u:p/ss@h/db` host "u", port "p".
        if "@" in region or "/" in region or "@" in str(params.get("host") or ""):
            raise _invalid('the URI has an unencoded "@" or "/" in its user or password: write them as %40 and %2F')
    for key in _NON_EMPTY_KEYS:
        if re.search(rf"(?:^|\s){key}\s*=\s*(?:''|\"\")?(?=\s|$)", dsn) or re.search(rf"[?&]{key}=(?=&|#|$)", dsn):
            raise _invalid(f'"{key}" is given with an empty value (an unset variable?)')
    port = _effective(params, "port", "PGPORT")
    for one in (port or "").split(","):
        if one and not (one.isdigit() and 0 < int(one) < 65536):
            raise _invalid(f'invalid port "{_safe(one, dsn)}" (expected a number from 1 to 65535)')
    host = _effective(params, "host", "PGHOST")
    for one in (host or "").split(","):
        if one and not one.startswith("/") and not one.startswith("@") and ":" not in one:
            try:
                one.encode("idna")
            except UnicodeError:
                raise _invalid(f'invalid host name "{_safe(one, dsn)}"') from None


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


def _connect_kwargs(dsn: str, read_only: bool, statement_timeout_ms: int | None) -> dict[str, Any]:
    """Our defaults, without overriding what the user asked for (psycopg's keyword arguments win over
    the conninfo string, so a DSN's own connect_timeout or options would otherwise be lost)."""
    try:
        params = pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn)) if dsn else {}
    except psycopg.ProgrammingError:
        params = {}
    extra: dict[str, Any] = {}
    if "application_name" not in params and not os.environ.get("PGAPPNAME"):
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    for key, value in TCP_KEEPALIVE_DEFAULTS.items():
        if key not in params:  # libpq has no environment variables for these: the DSN alone decides
            extra[key] = value
    options = [str(params["options"])] if params.get("options") else []
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
        return create_engine(dsn, **kwargs)
    validate_dsn(dsn)
    conninfo = _libpq_conninfo(dsn)
    extra = _connect_kwargs(dsn, read_only, statement_timeout_ms)

    def creator() -> psycopg.Connection[Any]:
        timeout: dict[str, Any] = {}
        if deadline is not None:
            deadline.check()
            with contextlib.suppress(ValueError):  # a malformed value: psycopg's own error explains it
                timeout["connect_timeout"] = deadline.connect_timeout(int(float(_connect_timeout(dsn))))
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


# ------------------------------------------------------------------------------------------- messages


def _first_line(text: str) -> str:
    return " ".join((text.strip().splitlines() or [""])[0].split())


def _connect_timeout(dsn: str) -> str:
    try:
        params = pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn)) if dsn else {}
    except psycopg.ProgrammingError:
        params = {}
    return str(params.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT") or DEFAULT_CONNECT_TIMEOUT_S)


def classify_connection_error(exc: BaseException, dsn: str) -> str | None:
    """One clear line when exc means 'could not reach or log in to the database' (or lost it);
    None when it is some other database error (a lock timeout, a missing table...)."""
    inner: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
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
        return _safe(found.group(1), dsn) if found else ""

    if isinstance(inner, UnicodeError) or "invalid host name" in text:
        return f'invalid connection string: invalid host name "{target.host}"'
    if m := re.search(r"connection is bad: (invalid [^:]+(?::.*)?)$", raw):
        return f"invalid connection string: {_vetted_reason(m.group(1), dsn)}"
    if isinstance(inner, psycopg.errors.ConnectionTimeout) or "timeout expired" in text:
        return (
            f"cannot connect to {where}: no answer within {_connect_timeout(dsn)} s "
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
        return f"cannot connect to {where}: {scrub(_first_line(str(inner)), dsn)}"
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
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    detail = _first_line(str(inner)) or type(inner).__name__
    return scrub(f"cannot connect to {describe_target(dsn).label()}: {detail}", dsn)


def connection_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'could not reach or log in to the database'."""
    return (OperationalError, psycopg.OperationalError, ConnectionFault)
