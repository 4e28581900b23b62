"""A DSN read once: its fields, its secrets, its masked form, and why it cannot work.

Any libpq connection string works (URI or key=value, plus libpq's PG* variables), because the engine
hands the string to psycopg unchanged instead of re-parsing it as a SQLAlchemy URL. SQLite URLs
(``sqlite:///...``) are accepted too: the migration runner must say that v7 skips them.

Every fragment of a DSN shown to the operator (host, user, database, a libpq reason) is checked
against everything that could be a password first: a malformed DSN can put a piece of the password
into the host, port or database field, and libpq quotes those back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from urllib.parse import quote, unquote

import psycopg
from psycopg import conninfo as pg_conninfo

MASK = "****"
# What libpq waits for a login when neither the DSN nor PGCONNECT_TIMEOUT says (libpq's own: forever).
DEFAULT_CONNECT_TIMEOUT_S = 10
# libpq keywords whose values are secrets, not only `password`.
SECRET_KEYS = ("password", "sslpassword", "scram_client_key", "scram_server_key", "oauth_client_secret")
# Keys an empty value is certainly a mistake for (typically `port=$PGPORT` with the variable unset);
# libpq would silently fall back to its defaults and connect somewhere else.
_NON_EMPTY_KEYS = ("host", "hostaddr", "port", "dbname", "user")
_URI = re.compile(r"^(postgres(?:ql)?(?:\+\w+)?://)(.*)$", re.S | re.I)
_URI_ANYWHERE = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\S+", re.I)


def is_sqlite(dsn: str) -> bool:
    return dsn.startswith("sqlite")


# --------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True, eq=False)
class Dsn:
    """What libpq reads from a DSN's text alone (the PG* variables are read where a value is used).

    Never printed as is: repr() shows the masked text.
    """

    text: str
    params: Mapping[str, str]  # empty when libpq cannot read the text
    parse_error: str | None  # libpq's message then (or our own, for text that is not UTF-8)
    unicode_error: bool = False  # the text holds characters no connection string can (bytes that are not UTF-8)

    def __repr__(self) -> str:
        return f"Dsn({mask_dsn(self.text)!r})"

    @property
    def parsed(self) -> bool:
        return self.parse_error is None

    @property
    def conninfo(self) -> str:
        """The text for libpq: SQLAlchemy-style URLs too (postgresql+psycopg://), by dropping the driver."""
        return _libpq_conninfo(self.text)

    @property
    def uri_rest(self) -> str | None:
        """Everything after '://' for a URI, None for key=value."""
        match = _URI.match(self.text)
        return match.group(2) if match else None

    def get(self, key: str) -> str | None:
        return self.params.get(key)

    @property
    def host(self) -> str | None:
        return self.params.get("host")

    @property
    def port(self) -> str | None:
        return self.params.get("port")

    @property
    def user(self) -> str | None:
        return self.params.get("user")

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname")

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    @property
    def options(self) -> str | None:
        return self.params.get("options")

    def effective(self, key: str, env: str) -> str | None:
        """The DSN's value for key (even empty), else the PG* variable libpq would use."""
        value = self.params.get(key)
        return value if value is not None else os.environ.get(env)

    def connect_timeout(self) -> str:
        """The login timeout in effect, in seconds, as written (libpq's reading decides if it is a number)."""
        return self.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT") or str(DEFAULT_CONNECT_TIMEOUT_S)

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """Every string in the text that is or may be a password: the parsed values (decoded and as
        typed), and the raw region a URI's structure says is the password. PGPASSWORD is not included."""
        found: set[str] = set()
        for key in SECRET_KEYS:
            value = self.params.get(key)
            if value:
                found.update({value, quote(value, safe="")})
        rest = self.uri_rest
        if rest is not None:
            span = _uri_password_span(rest)
            if span:
                region = rest[span[0] : span[1]]
                found.update({region, unquote(region)})
            for m in _query_secret_pattern().finditer(rest):
                found.update({m.group(2), unquote(m.group(2))})
        elif not self.parsed:
            # libpq could not say where the value ends (e.g. an unterminated quote): take what we mask.
            for m in _keyvalue_secret_pattern().finditer(self.text):
                value = m.group(2)
                found.update({value, value.strip("'")})
        return tuple(found)


@lru_cache(maxsize=16)
def parse_dsn(dsn: str) -> Dsn:
    """The one reading of a DSN's text (cached: masking, labels and engines all ask for it)."""
    try:
        params = pg_conninfo.conninfo_to_dict(_libpq_conninfo(dsn)) if dsn else {}
    except psycopg.ProgrammingError as exc:
        return Dsn(dsn, MappingProxyType({}), str(exc))
    except UnicodeError:
        return Dsn(dsn, MappingProxyType({}), "holds bytes that are not UTF-8", unicode_error=True)
    return Dsn(dsn, MappingProxyType({key: str(value) for key, value in params.items()}), None)


def _libpq_conninfo(dsn: str) -> str:
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn)


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


def _secrets(dsn: str) -> list[str]:
    """The DSN's secrets and PGPASSWORD, longest first, for replacing."""
    found = set(parse_dsn(dsn).secrets)
    if os.environ.get("PGPASSWORD"):
        found.add(os.environ["PGPASSWORD"])
    return sorted((s for s in found if s), key=len, reverse=True)


def _replace_secrets(text: str, dsn: str) -> str:
    """Replace every secret in text. A secret under 4 characters is replaced only where it stands alone:
    "p" inside "postgresql" gives nothing away, and masking it there would garble every message."""
    for secret in _secrets(dsn):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", MASK, text)
    return text


def scrub(message: str, dsn: str) -> str:
    """Remove the DSN's password from any text (error messages can echo parts of the DSN)."""
    message = _replace_secrets(message, dsn)
    message = _URI_ANYWHERE.sub(lambda m: mask_dsn(m.group(0)), message)
    return _mask_keyvalue(message)


def safe_fragment(fragment: str, dsn: str, *, malformed: bool = False) -> str:
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


def describe_target(dsn: str, *, embedded: bool = False) -> Target:
    if is_sqlite(dsn):
        return Target(host="sqlite", port="", database=dsn.split("///", 1)[-1], user="", embedded=False)
    parsed = parse_dsn(dsn)
    host = parsed.host or os.environ.get("PGHOST") or "localhost"
    if host.startswith("/"):
        host = "socket"
    user = parsed.user or os.environ.get("PGUSER") or os.environ.get("USER") or "postgres"
    return Target(
        host=safe_fragment(host, dsn),
        port=safe_fragment(parsed.port or os.environ.get("PGPORT") or "", dsn),
        database=safe_fragment(parsed.dbname or os.environ.get("PGDATABASE") or user, dsn),
        user=safe_fragment(user, dsn),
        embedded=embedded,
    )


# ------------------------------------------------------------------------------------------ validating


# libpq's percent-decoding errors quote the field being decoded, which is the password more often than
# not (a literal "%" in it): they are told in our own words, quoting nothing.
_PERCENT_ERRORS = {
    "invalid percent-encoded token": (
        'invalid percent-encoded token: a "%" in the URI must start a %XX escape; write a literal "%" as %25'
    ),
    "forbidden value %00": "a percent-escape in the URI decodes to a NUL byte, which no connection value may hold",
}


def libpq_reason(libpq_message: str, dsn: str) -> str:
    """libpq's parse error, first line, with every quoted DSN fragment checked for secrets."""
    first = (libpq_message.strip().splitlines() or ["cannot be parsed"])[0]
    for prefix, ours in _PERCENT_ERRORS.items():
        if first.startswith(prefix):
            return ours
    if first.startswith('invalid connection option ""'):
        first = 'a "=" without a key name before it'
    first = re.sub(r'"([^"]*)"', lambda m: f'"{safe_fragment(m.group(1), dsn, malformed=True)}"', first)
    return scrub(first.removesuffix(" in connection info string"), dsn)


def dsn_problem(dsn: str) -> str | None:
    """Why a DSN cannot work, found before any network traffic (None when nothing is wrong): libpq syntax
    errors, bad ports, empty values, '@' that should have been %40, host names no resolver accepts."""
    if is_sqlite(dsn):
        return None
    parsed = parse_dsn(dsn)
    if parsed.unicode_error:
        # Quoting the offending character would quote the field it sits in, the password as likely as not.
        return "it holds bytes that are not UTF-8 text (a mistyped or mis-encoded character?)"
    if parsed.parse_error is not None:
        return libpq_reason(parsed.parse_error, dsn)
    rest = parsed.uri_rest
    if rest is not None:
        span = _uri_password_span(rest)
        region = rest[span[0] : span[1]] if span else ""
        # `postgresql://u:p@ss@h/db` makes libpq read host "ss@h"; `u:p/ss@h/db` host "u", port "p".
        if "@" in region or "/" in region or "@" in (parsed.host or ""):
            return 'the URI has an unencoded "@" or "/" in its user or password: write them as %40 and %2F'
    for key in _NON_EMPTY_KEYS:
        if re.search(rf"(?:^|\s){key}\s*=\s*(?:''|\"\")?(?=\s|$)", dsn) or re.search(rf"[?&]{key}=(?=&|#|$)", dsn):
            return f'"{key}" is given with an empty value (an unset variable?)'
    port = parsed.effective("port", "PGPORT")
    for one in (port or "").split(","):
        if one and not (one.isdigit() and 0 < int(one) < 65536):
            return f'invalid port "{safe_fragment(one, dsn)}" (expected a number from 1 to 65535)'
    host = parsed.effective("host", "PGHOST")
    for one in (host or "").split(","):
        if one and not one.startswith("/") and not one.startswith("@") and ":" not in one:
            try:
                one.encode("idna")
            except UnicodeError:
                return f'invalid host name "{safe_fragment(one, dsn)}"'
    return None
