"""The config file (`$XDG_CONFIG_HOME/dlq-tui/config.toml`): named profiles, the default one, key remapping.

Read with tomllib and checked whole, so `dlq-tui config check` can list every problem with its line. tomllib
gives line numbers for syntax errors only; the line of a value is found in the text (`locate`), by the table
headers and `key =` lines, which is exact for the plain files people write.

Passwords belong in libpq's password file (`.pgpass`, `PGPASSFILE`, `passfile=`), not here: a password in a
profile's DSN or `password` key is refused unless only the owner can read the file.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dlq_tui.health_rules import Thresholds

APP_DIR = "dlq-tui"
FILE_NAME = "config.toml"
OFF = "off"

TOP_KEYS = ("default_profile", "profiles", "keys", "searches")
PROFILE_KEYS = (
    "dsn",
    "password",
    "passfile",
    "sensors",
    "sensor",
    "read_only",
    "production",
    "operator",
    "refresh",
    "lock_ttl",
    "thresholds",
)
THRESHOLD_KEYS = tuple(f.name for f in fields(Thresholds))


class ConfigFault(ValueError):
    """The config file cannot be used: one line (the first problem), no traceback."""


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str
    unreadable: bool = False  # the file could not be read at all (missing, no permission, not UTF-8)

    def render(self, path: Path) -> str:
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Profile:
    name: str
    dsn: str | None = None  # with `password` / `passfile` folded in
    sensors: str | None = None
    sensor: str | None = None
    read_only: bool = False
    production: bool = False
    operator: str | None = None
    refresh: float | None = None
    lock_ttl: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    searches: Mapping[str, str] = field(default_factory=dict)  # [searches]: name -> query, `@name` in / and search

    def profile(self, name: str | None) -> Profile | None:
        """The named profile, else the default one (None when neither is set); ConfigFault for an unknown name."""
        name = name if name is not None else self.default_profile
        if name is None:
            return None
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigFault(f"no profile {_shown(name)} in {self.path} (profiles: {known})")
        return self.profiles[name]


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / APP_DIR / FILE_NAME


def _shown(value: object, limit: int = 40) -> str:
    """A value as TOML writes it (file text is still passed through plain(): no control sequences)."""
    from dlq_tui.text import plain

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return plain(str(value), limit=limit)
    if isinstance(value, str):
        return repr(plain(value, limit=limit))
    return type(value).__name__  # a table or an array: its type says enough


# ------------------------------------------------------------------------------------------ locating


def _header_path(header: str) -> tuple[str, ...]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s]+)', header)
    return tuple(a or b or c for a, b, c in parts)


def locate(text: str) -> dict[tuple[str, ...], int]:
    """Line numbers by key path: ("profiles", "prod") for a header, ("profiles", "prod", "dsn") for a key."""
    where: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header := re.match(r"^\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$", stripped):
            table = _header_path(header.group(1))
            where.setdefault(table, number)
        elif key := re.match(r'^("(?:[^"\\]|\\.)*"|\'[^\']*\'|[\w.-]+(?:\s*\.\s*[\w-]+)*)\s*=', stripped):
            path = table + _header_path(key.group(1))
            where.setdefault(path, number)
            for i in range(len(table) + 1, len(path)):
                where.setdefault(path[:i], number)  # a dotted key opens its tables on this line
    return where


class _Checker:
    def __init__(self, text: str) -> None:
        self.lines = locate(text)
        self.problems: list[Problem] = []

    def line(self, *path: str) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def add(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(self.line(*path), message))


# ------------------------------------------------------------------------------------------- reading


def load(path: Path, *, binding_ids: Collection[str] | None = None) -> tuple[ConfigFile, list[Problem]]:
    """The file and every problem in it (an unreadable or unparsable file: one problem, an empty ConfigFile)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path), [Problem(None, "no such file", unreadable=True)]
    except OSError as exc:
        return ConfigFile(path), [Problem(None, f"cannot be read: {exc.strerror or exc}", unreadable=True)]
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        return ConfigFile(path), [Problem(None, "is not UTF-8 text", unreadable=True)]
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        last = (len(text.splitlines()) or 1) if "end of document" in str(exc) else None
        message = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", str(exc))
        return ConfigFile(path), [Problem(int(found.group(1)) if found else last, f"not valid TOML: {message}")]
    check = _Checker(text)
    private = _owner_only(path)
    for key in data:
        if key not in TOP_KEYS:
            check.add((key,), f"unknown key {_shown(key)} (known: {', '.join(TOP_KEYS)})")
    profiles: dict[str, Profile] = {}
    table = data.get("profiles", {})
    if not isinstance(table, dict):
        check.add(("profiles",), "profiles must be a table: [profiles.NAME]")
        table = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            check.add(("profiles", name), f"profile {_shown(name)} must be a table: [profiles.{name}]")
            continue
        profile = _profile(check, name, body, private, path)
        if profile is not None:
            profiles[name] = profile
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        check.add(("default_profile",), "default_profile must be a profile's name (a string)")
        default = None
    elif default is not None and default not in table:
        known = ", ".join(sorted(table)) or "none"
        check.add(("default_profile",), f"default_profile names no profile: {_shown(default)} (profiles: {known})")
        default = None
    keys = _keys(check, data.get("keys", {}), binding_ids)
    searches = _searches(check, data.get("searches", {}))
    problems = sorted(check.problems, key=lambda p: p.line or 0)
    return ConfigFile(path, profiles, default, keys, searches), problems


def load_checked(path: Path, *, binding_ids: Collection[str] | None = None) -> ConfigFile:
    """The file, or ConfigFault with its first problem."""
    config, problems = load(path, binding_ids=binding_ids)
    if problems:
        more = f" ({len(problems) - 1} more: dlq-tui config check)" if len(problems) > 1 else ""
        raise ConfigFault(problems[0].render(path) + more)
    return config


def _owner_only(path: Path) -> bool:
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    except OSError:
        return False


def _password_refusal(path: Path) -> str:
    try:
        mode = f"mode {stat.S_IMODE(path.stat().st_mode):04o}"
    except OSError:
        mode = "its mode unknown"
    return (
        f"holds a password but the file can be read by others ({mode}): keep passwords in ~/.pgpass "
        f"(or PGPASSFILE, or passfile=), or chmod 600 {path}"
    )


def _profile(check: _Checker, name: str, body: dict[str, Any], private: bool, path: Path) -> Profile | None:
    from dlq_tui.db.dsn import dsn_problem, is_sqlite, parse_dsn

    at = ("profiles", name)
    before = len(check.problems)
    for key in body:
        if key not in PROFILE_KEYS:
            check.add(
                (*at, key), f"profile {_shown(name)}: unknown key {_shown(key)} (known: {', '.join(PROFILE_KEYS)})"
            )

    def text(key: str) -> str | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            check.add((*at, key), f"profile {_shown(name)}: {key} must be a non-empty string")
            return None
        return value

    def flag(key: str) -> bool:
        value = body.get(key, False)
        if not isinstance(value, bool):
            check.add((*at, key), f"profile {_shown(name)}: {key} must be true or false, got {_shown(value)}")
            return False
        return value

    dsn, password, passfile = text("dsn"), text("password"), text("passfile")
    if dsn is not None and not is_sqlite(dsn):
        problem = dsn_problem(dsn)
        if problem is not None:
            check.add((*at, "dsn"), f"profile {_shown(name)}: the dsn cannot work: {problem}")
        elif parse_dsn(dsn).secrets and not private:
            check.add((*at, "dsn"), f"profile {_shown(name)}: the dsn {_password_refusal(path)}")
    if password is not None and not private:
        check.add((*at, "password"), f"profile {_shown(name)}: password {_password_refusal(path)}")
    if (password or passfile) and dsn is None:
        check.add((*at, "password" if password else "passfile"), f"profile {_shown(name)}: goes with a dsn")
    refresh = _number(check, at, name, body, "refresh")
    if refresh is not None and refresh <= 0:
        check.add((*at, "refresh"), f"profile {_shown(name)}: refresh must be a number of seconds above 0")
        refresh = None
    lock_ttl = body.get("lock_ttl")
    if lock_ttl is not None:
        from dlq_tui.db.triage import LOCK_TTL_MAX_MINUTES

        if isinstance(lock_ttl, bool) or not isinstance(lock_ttl, int) or not 1 <= lock_ttl <= LOCK_TTL_MAX_MINUTES:
            check.add(
                (*at, "lock_ttl"),
                f"profile {_shown(name)}: lock_ttl must be whole minutes from 1 to {LOCK_TTL_MAX_MINUTES}, "
                f"got {_shown(lock_ttl)}",
            )
            lock_ttl = None
    thresholds = _thresholds(check, at, name, body.get("thresholds", {}))
    profile = Profile(
        name=name,
        dsn=_with_secrets(dsn, password, passfile) if dsn is not None else None,
        sensors=text("sensors"),
        sensor=text("sensor"),
        read_only=flag("read_only"),
        production=flag("production"),
        operator=text("operator"),
        refresh=refresh,
        lock_ttl=lock_ttl,
        thresholds=thresholds,
    )
    return profile if len(check.problems) == before else None


def _number(check: _Checker, at: tuple[str, ...], name: str, body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        check.add((*at, key), f"profile {_shown(name)}: {key} must be a number, got {_shown(value)}")
        return None
    return float(value)


def _with_secrets(dsn: str, password: str | None, passfile: str | None) -> str:
    if password is None and passfile is None:
        return dsn
    from psycopg.conninfo import make_conninfo

    from dlq_tui.db.dsn import parse_dsn

    extra = {"password": password, "passfile": str(Path(passfile).expanduser()) if passfile else None}
    return make_conninfo(parse_dsn(dsn).conninfo, **{k: v for k, v in extra.items() if v is not None})


def _thresholds(check: _Checker, at: tuple[str, ...], name: str, table: object) -> Thresholds:
    where = (*at, "thresholds")
    if not isinstance(table, dict):
        check.add(where, f"profile {_shown(name)}: thresholds must be a table: [profiles.{name}.thresholds]")
        return Thresholds()
    changes: dict[str, float | int | None] = {}
    for key, value in table.items():
        if key not in THRESHOLD_KEYS:
            check.add(
                (*where, key),
                f"profile {_shown(name)}: unknown threshold {_shown(key)} (known: {', '.join(THRESHOLD_KEYS)})",
            )
            continue
        hours = key.startswith("oldest")
        if value == OFF:
            changes[key] = None
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (not hours and value != int(value))
        ):
            kind = "a number of hours" if hours else "a whole number"
            check.add(
                (*where, key),
                f'profile {_shown(name)}: threshold {key} must be {kind} from 0 up or "off", got {_shown(value)}',
            )
        else:
            changes[key] = float(value) if hours else int(value)
    return Thresholds(**changes)  # type: ignore[arg-type]


def _threshold_ok(value: object, *, hours: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        return False
    return hours or value == int(value)


def _keys(check: _Checker, table: object, binding_ids: Collection[str] | None) -> dict[str, str]:
    if not isinstance(table, dict):
        check.add(("keys",), 'keys must be a table: [keys] with lines like "go.events" = "E"')
        return {}
    keys: dict[str, str] = {}
    for binding, value in table.items():
        if binding_ids is not None and binding not in binding_ids:
            check.add(
                ("keys", binding),
                f"[keys]: no binding has the id {_shown(binding)} (ids: {', '.join(sorted(binding_ids))})",
            )
        elif not isinstance(value, str) or not value.strip():
            check.add(("keys", binding), f'[keys]: {binding} must be a key name such as "E" or "ctrl+e"')
        else:
            keys[binding] = value.strip()
    return keys


def _searches(check: _Checker, table: object) -> dict[str, str]:
    """[searches]: each a name and a query that parses (a bad one is reported here, not when it is used)."""
    from dlq_tui.search.query import SAVED_NAME_RE, SAVED_PREFIX, QueryError, parse_query
    from dlq_tui.text import plain

    if not isinstance(table, dict):
        check.add(("searches",), '[searches] must be a table with lines like ssh-brute = "eventid:cowrie.login.failed"')
        return {}
    searches: dict[str, str] = {}
    for name, value in table.items():
        if not SAVED_NAME_RE.fullmatch(name):
            check.add(
                ("searches", name),
                f"[searches]: {_shown(name)} is not a search name (letters, digits, _ . -, at most 40)",
            )
        elif not isinstance(value, str) or not value.strip():
            check.add(("searches", name), f"[searches]: {name} must be a query (a non-empty string)")
        elif value.strip().startswith(SAVED_PREFIX):
            check.add(("searches", name), f"[searches]: {name} names another saved search: write its query out")
        else:
            try:
                parse_query(value)
            except QueryError as exc:
                check.add(("searches", name), f"[searches]: {name}: {plain(str(exc), limit=200)}")
            else:
                searches[name] = value.strip()
    return searches
