"""Settings resolved from flags, the environment, the config file's profile and the processor's sensors.toml."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dlq_tui.health_rules import Thresholds

if TYPE_CHECKING:
    from dlq_tui.profiles import ConfigFile, Profile
    from dlq_tui.sensors import SensorsLookup


@dataclass(frozen=True)
class DsnChoice:
    """Where the DSN came from; `dsn` is None when the embedded default must be started."""

    dsn: str | None
    origin: str  # "--dsn", "DLQ_TUI_DSN", "DATABASE_URL", "PG* environment", "embedded"

    @property
    def embedded(self) -> bool:
        return self.dsn is None


def resolve_dsn(
    flag: str | None,
    env: dict[str, str] | None = None,
    *,
    profile: Profile | None = None,
    explicit_profile: bool = False,
    sensors: SensorsLookup | None = None,
) -> DsnChoice:
    """The first of: --dsn, the --profile named on the command line, --sensors/--sensor, DLQ_TUI_DSN,
    COWRIEPROC_DB_URL, COWRIEPROC_DB_PATH, DATABASE_URL, PG* variables, the default profile, sensors.toml
    found in the working directory, the embedded server.

    A profile or sensors file named on the command line is a flag: it outranks the environment, so a stale
    DLQ_TUI_DSN in the shell cannot send `--profile staging` to another database.
    Empty variables count as unset (as libpq treats them), but an explicitly empty --dsn is refused:
    it is almost always `--dsn "$VAR"` with VAR unset, and silently starting the embedded server
    instead would show an operator an empty queue rather than the one they meant.
    """
    from dlq_tui import sensors as processor

    env = dict(os.environ) if env is None else env
    if flag is not None:
        if not flag.strip():
            from dlq_tui.db.errors import ConnectionFault

            raise ConnectionFault("--dsn was given an empty value (an unset variable?)")
        return DsnChoice(flag, "--dsn")
    from_profile = DsnChoice(profile.dsn, f"profile {profile.name}") if profile and profile.dsn else None
    if explicit_profile and from_profile is not None:
        return from_profile
    if sensors is not None and sensors.explicit and (found := _sensors(sensors)) is not None:
        return found
    if env.get("DLQ_TUI_DSN"):
        return DsnChoice(env["DLQ_TUI_DSN"], "DLQ_TUI_DSN")
    if (theirs := _guarded(lambda: processor.from_environment(env))) is not None:
        return DsnChoice(*theirs)
    if env.get("DATABASE_URL"):
        return DsnChoice(env["DATABASE_URL"], "DATABASE_URL")
    if env.get("PGHOST") or env.get("PGDATABASE"):
        # An empty conninfo lets libpq read PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself.
        return DsnChoice("", "PG* environment")
    if from_profile is not None:
        return from_profile
    if sensors is not None and (found := _sensors(sensors)) is not None:
        return found
    return DsnChoice(None, "embedded")


def resolve_start(
    args: Any, *, binding_ids: Callable[[], Collection[str]] | None = None
) -> tuple[ConfigFile | None, Profile | None, DsnChoice]:
    """The config file (when there is one), its profile in use, and where the DSN comes from, for the
    command line's --config, --profile, --sensors, --sensor and --dsn (attributes of `args`, None when not given).
    `binding_ids` checks the ids [keys] remaps (the app's; the one-shot commands skip the check)."""
    from pathlib import Path

    from dlq_tui.profiles import ConfigFault, default_path, load_checked
    from dlq_tui.sensors import SensorsLookup

    flag_path, name = getattr(args, "config", None), getattr(args, "profile", None)
    config_path = Path(flag_path).expanduser() if flag_path else default_path()
    config = None
    if flag_path or config_path.is_file():
        config = load_checked(config_path, binding_ids=binding_ids() if binding_ids else None)
    if config is None and name is not None:
        raise ConfigFault(f"--profile {name[:40]!r}: there is no config file ({config_path})")
    profile = config.profile(name) if config is not None else None
    sensors_flag, sensor_flag = getattr(args, "sensors", None), getattr(args, "sensor", None)
    path = sensors_flag or (profile.sensors if profile else None)
    lookup = SensorsLookup(
        path=Path(path).expanduser() if path else None,
        sensor=sensor_flag or (profile.sensor if profile else None),
        explicit=bool(sensors_flag or sensor_flag or (name is not None and profile and profile.sensors)),
    )
    choice = resolve_dsn(getattr(args, "dsn", None), profile=profile, explicit_profile=name is not None, sensors=lookup)
    return config, profile, choice


def _guarded(read: Callable[[], tuple[str, str] | None]) -> tuple[str, str] | None:
    from dlq_tui.sensors import SensorsFault

    try:
        return read()
    except SensorsFault as exc:
        raise SettingFault(str(exc)) from None


def _sensors(lookup: SensorsLookup) -> DsnChoice | None:
    found = _guarded(lookup.dsn)
    return DsnChoice(*found) if found is not None else None


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
    profile: str | None = None  # the config file's profile in use (the header shows it)
    production: bool = False  # the profile says production = true: the header badge is red
    thresholds: Thresholds = field(default_factory=Thresholds)
    keys: Mapping[str, str] = field(default_factory=dict)  # binding id -> key, from the config file's [keys]
    searches: Mapping[str, str] = field(default_factory=dict)  # the config file's [searches]: `@name` in /


@dataclass(frozen=True)
class Overrides:
    """What the command line said about the app (None: not given): kept, so a profile switch keeps it too."""

    read_only: bool = False
    operator: str | None = None
    refresh: float | None = None
    lock_ttl: int | None = None
    thresholds: Mapping[str, Any] = field(default_factory=dict)  # the --warn-*/--crit-* flags given, over the profile's


DEFAULT_REFRESH_S = 5.0
DEFAULT_LOCK_TTL_MIN = 30


def settings_for(
    dsn: str,
    *,
    embedded: bool = False,
    profile: Profile | None = None,
    overrides: Overrides | None = None,
    config: ConfigFile | None = None,
    standby: bool = False,
) -> Settings:
    """Flags over the profile over the defaults (a flag can make a profile read-only, never the reverse)."""
    o = overrides or Overrides()
    refresh = o.refresh if o.refresh is not None else (profile.refresh if profile else None)
    lock_ttl = o.lock_ttl if o.lock_ttl is not None else (profile.lock_ttl if profile else None)
    return Settings(
        dsn=dsn,
        embedded=embedded,
        read_only=o.read_only or standby or bool(profile and profile.read_only),
        standby=standby,
        operator=o.operator or (profile.operator if profile else None) or default_operator(),
        refresh_seconds=max(0.5, refresh if refresh is not None else DEFAULT_REFRESH_S),
        lock_ttl_minutes=lock_ttl if lock_ttl is not None else DEFAULT_LOCK_TTL_MIN,
        profile=profile.name if profile else None,
        production=bool(profile and profile.production),
        thresholds=replace(profile.thresholds if profile else Thresholds(), **o.thresholds),
        keys=dict(config.keys) if config else {},
        searches=dict(config.searches) if config else {},
    )


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
