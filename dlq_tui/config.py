"""Settings resolved from flags and the environment, in the order DESIGN.md gives."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DsnChoice:
    """Where the DSN came from; `dsn` is None when the embedded default must be started."""

    dsn: str | None
    origin: str  # "--dsn", "DLQ_TUI_DSN", "DATABASE_URL", "PG* environment", "embedded"

    @property
    def embedded(self) -> bool:
        return self.dsn is None


def resolve_dsn(flag: str | None, env: dict[str, str] | None = None) -> DsnChoice:
    """The first of: --dsn, DLQ_TUI_DSN, DATABASE_URL, PG* variables, the embedded server.

    Empty variables count as unset (as libpq treats them), but an explicitly empty --dsn is refused:
    it is almost always `--dsn "$VAR"` with VAR unset, and silently starting the embedded server
    instead would show an operator an empty queue rather than the one they meant.
    """
    env = dict(os.environ) if env is None else env
    if flag is not None:
        if not flag.strip():
            from dlq_tui.db.errors import ConnectionFault

            raise ConnectionFault("--dsn was given an empty value (an unset variable?)")
        return DsnChoice(flag, "--dsn")
    for name in ("DLQ_TUI_DSN", "DATABASE_URL"):
        if env.get(name):
            return DsnChoice(env[name], name)
    if env.get("PGHOST") or env.get("PGDATABASE"):
        # An empty conninfo lets libpq read PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself.
        return DsnChoice("", "PG* environment")
    return DsnChoice(None, "embedded")


def default_operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@dataclass(frozen=True)
class Settings:
    dsn: str
    embedded: bool = False
    read_only: bool = False
    standby: bool = False  # the server is a hot standby: read_only too, and the header says why
    operator: str = field(default_factory=default_operator)
    refresh_seconds: float = 5.0
    lock_ttl_minutes: int = 30


# Overall time limits (see dlq_tui/db/deadline.py). A monitoring check must end well inside its scheduler's
# own limit (often 60 s); health at 10M events takes ~20 s. A migration of a large table takes minutes.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MIGRATE_TIMEOUT_S = 3600.0


class SettingFault(ValueError):
    """A setting from the environment that cannot be used: one line, no traceback."""


def parse_seconds(raw: str) -> float:
    """A number of seconds >= 0 (0: no limit); ValueError with the reason otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"expected a number of seconds from 0 (no limit) up, got {raw!r}")
    return value


def resolve_timeout(
    flag: float | None, variable: str, default: float, env: dict[str, str] | None = None
) -> float | None:
    """The flag, else the environment variable (empty counts as unset), else the default; None for no limit."""
    env = dict(os.environ) if env is None else env
    value = flag
    if value is None and env.get(variable, "").strip():
        try:
            value = parse_seconds(env[variable])
        except ValueError as exc:
            raise SettingFault(f"{variable}: {exc}") from None
    if value is None:
        value = default
    return value or None
