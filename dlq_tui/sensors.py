"""The Cowrie processor's own settings: `sensors.toml` (`[global] db`, `[[sensor]]` entries) and its variables.

Found the way the processor finds it (`config/sensors.toml`, then `./sensors.toml`, from the working directory),
so dlq-tui started where the processor runs lands on the processor's database. Its `db` is a SQLAlchemy URL
(`postgresql://…`, `postgresql+psycopg://…`, `sqlite:///…`) or a bare path, which is a SQLite file. The file is
the processor's, not ours: its values are never echoed (a `db` URL often carries a password).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOKUP = (Path("config") / "sensors.toml", Path("sensors.toml"))
_URL = re.compile(r"^[A-Za-z][\w+.-]*://")
_POSTGRES = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://", re.I)


class SensorsFault(ValueError):
    """sensors.toml cannot give a database: one line, no traceback."""


def find(cwd: Path | None = None) -> Path | None:
    """The processor's lookup, relative to the working directory (and named so in messages)."""
    base = cwd or Path()
    return next((base / candidate for candidate in LOOKUP if (base / candidate).is_file()), None)


def as_dsn(value: str, what: str) -> str:
    """A processor database value as a DSN dlq-tui takes: URLs as they are, a bare path as a SQLite URL."""
    value = value.strip()
    if value.startswith("sqlite:") or _POSTGRES.match(value):
        return value
    if _URL.match(value):
        scheme = value.split("://", 1)[0]
        raise SensorsFault(f"{what} is a {scheme[:20]!r} URL: dlq-tui reads PostgreSQL and SQLite databases")
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def from_environment(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(DSN, variable) from the processor's COWRIEPROC_DB_URL, else COWRIEPROC_DB_PATH (a SQLite file)."""
    if env.get("COWRIEPROC_DB_URL", "").strip():
        return as_dsn(env["COWRIEPROC_DB_URL"], "COWRIEPROC_DB_URL"), "COWRIEPROC_DB_URL"
    if env.get("COWRIEPROC_DB_PATH", "").strip():
        path = env["COWRIEPROC_DB_PATH"].strip()
        return f"sqlite:///{Path(path).expanduser().absolute()}", "COWRIEPROC_DB_PATH"
    return None


@dataclass(frozen=True)
class SensorsLookup:
    """Where sensors.toml comes from: `path` given (--sensors, a profile's `sensors`) or the processor's lookup."""

    path: Path | None = None
    sensor: str | None = None
    explicit: bool = False  # named on the command line (or by the chosen profile): it outranks the environment
    cwd: Path | None = None

    def dsn(self) -> tuple[str, str] | None:
        """(DSN, origin), None when no file is named and the lookup finds none."""
        path = self.path if self.path is not None else find(self.cwd)
        if path is None:
            if self.sensor is not None:
                raise SensorsFault(
                    f"--sensor {self.sensor[:40]!r}: no sensors.toml in config/ or . of the working directory "
                    "(name one with --sensors PATH)"
                )
            return None
        return read_db(path, self.sensor), f"{path}" + (f" [[sensor]] {self.sensor}" if self.sensor else "")


def read_db(path: Path, sensor: str | None = None) -> str:
    """The `db` of the named `[[sensor]]` entry, else `[global] db`, as a DSN."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SensorsFault(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SensorsFault(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or 'not UTF-8 text'})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SensorsFault(f"{path}: not valid TOML: {exc}") from None
    glob: Any = data.get("global", {})
    entries: Any = data.get("sensor", [])
    if sensor is not None:
        named = (
            [e for e in entries if isinstance(e, dict) and e.get("name") == sensor] if isinstance(entries, list) else []
        )
        if not named:
            from dlq_tui.text import plain

            names = [plain(str(e.get("name")), limit=40) for e in entries if isinstance(e, dict) and "name" in e]
            listed = ", ".join(names) if names else "none"
            raise SensorsFault(f"{path}: no [[sensor]] named {plain(sensor, limit=40)!r} (sensors: {listed})")
        own = named[0].get("db")
        if isinstance(own, str) and own.strip():
            return as_dsn(own, f"{path} [[sensor]] {sensor} db")
    db = glob.get("db") if isinstance(glob, dict) else None
    if not isinstance(db, str) or not db.strip():
        from dlq_tui.text import plain

        whose = f"neither [[sensor]] {plain(sensor, limit=40)!r} nor [global] has a" if sensor else "[global] has no"
        raise SensorsFault(f"{path}: {whose} db")
    return as_dsn(db, f"{path} [global] db")
