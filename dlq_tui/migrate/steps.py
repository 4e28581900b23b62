"""Step events and the machinery that runs (or, in a dry run, only records) each step's SQL.

The same step code serves the alembic revisions (execute) and `dry_run` (record only), so the SQL a
dry run prints is the SQL an upgrade runs. Step numbers are fixed by STEP_NAMES, so a UI can lay out
the whole list up front; the events arrive in the order the steps really run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, text
from sqlalchemy.engine import CursorResult

from dlq_tui.migrate.catalog import Catalog, inspect_catalog

# "planned": a dry run's step that has work to do (nothing ran, so it is not "done").
Status = Literal["pending", "running", "done", "planned", "skipped", "failed"]

# In the order they run (the fast order: backfill before indexes, constraints and triggers). Titles fit the
# step log's 36-character column at 80x24.
STEP_TITLES: dict[str, str] = {
    "acquire_lock": "take the migration lock",
    "baseline": "legacy tables (baseline)",
    "add_columns": "add the 12 v7 columns",
    "backfill": "fill checksums and idempotency keys",
    "duplicate_keys": "unique keys (oldest duplicate keeps)",
    "create_indexes": "create the 8 event indexes",
    "add_constraints": "add the check constraints",
    "create_tables": "create metrics and breaker tables",
    "create_view": "create the dlq_health view",
    "create_function": "create the updated_at function",
    "create_triggers": "create the 2 updated_at triggers",
    "set_marker": "set schema_state to 7",
    "paging_indexes": "create the paging indexes (v7_1)",
    "backfill_new_rows": "fill rows without checksum or key",
    "commit": "commit",
}
STEP_NAMES: tuple[str, ...] = tuple(STEP_TITLES)
V7_STEPS: tuple[str, ...] = STEP_NAMES[2:12]


def step_number(name: str) -> int:
    return STEP_NAMES.index(name) + 1


@dataclass(frozen=True)
class StepEvent:
    number: int
    name: str
    status: Status
    duration_s: float | None = None
    detail: str = ""
    sql: str | None = None

    @property
    def title(self) -> str:
        return STEP_TITLES.get(self.name, self.name)


class MigrationError(Exception):
    """A migration that did not happen, with one clear line; the database is unchanged."""


@dataclass
class Outcome:
    """What a step body sets: its detail line, and `skipped` when there was nothing to do."""

    detail: str = ""
    skipped: bool = False


Hook = Callable[[str], None]


@dataclass
class Steps:
    """Runs step bodies against one connection (one transaction), reporting StepEvents as they go."""

    conn: Connection
    report: Callable[[StepEvent], None]
    execute: bool = True
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    catalog: Catalog | None = None
    reported: set[str] = field(default_factory=set)
    simulated: set[str] = field(default_factory=set)  # tables a dry run pretends exist
    statuses: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    _sql: list[str] = field(default_factory=list)

    def inspect(self) -> Catalog:
        self.catalog = inspect_catalog(self.conn)
        return self.catalog

    @property
    def cat(self) -> Catalog:
        return self.catalog if self.catalog is not None else self.inspect()

    @property
    def postgres(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def sql(self, statement: str, params: Mapping[str, Any] | None = None) -> CursorResult[Any] | None:
        """Record the statement for the step's event; run it unless this is a dry run."""
        self._sql.append(self.shown(statement, params) + ";")
        if not self.execute:
            return None
        return self.conn.execute(text(statement), dict(params or {}))

    def shown(self, statement: str, params: Mapping[str, Any] | None) -> str:
        """The statement as it runs: bound values rendered as SQL literals (a dry run's SQL can be pasted)."""
        if not params:
            return statement.strip()
        bound = text(statement.strip()).bindparams(**params)
        return str(bound.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))

    def query(self, statement: str, params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
        """A read-only query that informs the plan (runs in dry runs too, not shown as step SQL)."""
        return self.conn.execute(text(statement), dict(params or {}))

    def emit(self, name: str, status: Status, duration: float | None = None, detail: str = "") -> None:
        self.reported.add(name)
        self.statuses[name], self.details[name] = status, detail
        self.report(StepEvent(step_number(name), name, status, duration, detail, None))

    @contextmanager
    def step(self, name: str) -> Iterator[Outcome]:
        outcome = Outcome()
        self._sql = []
        self.report(StepEvent(step_number(name), name, "running"))
        started = time.perf_counter()
        try:
            yield outcome
            hook = self.hooks.get("after_step")
            if hook is not None and self.execute:
                hook(name)
        except BaseException as exc:
            self.reported.add(name)
            self.statuses[name], self.details[name] = "failed", one_line(exc)
            self.report(
                StepEvent(
                    step_number(name), name, "failed", time.perf_counter() - started, one_line(exc), self._joined()
                )
            )
            raise
        status: Status = "skipped" if outcome.skipped else "done" if self.execute else "planned"
        self.reported.add(name)
        self.statuses[name], self.details[name] = status, outcome.detail
        self.report(
            StepEvent(step_number(name), name, status, time.perf_counter() - started, outcome.detail, self._joined())
        )

    def _joined(self) -> str | None:
        return "\n".join(self._sql) if self._sql else None


def one_line(exc: BaseException) -> str:
    """The primary message of a database error (never its DETAIL, which can quote hostile row data)."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    message = primary or str(orig).split("\n", 1)[0]
    if isinstance(exc, MigrationError):
        message = str(exc)
    return " ".join(message.split()) or type(exc).__name__
