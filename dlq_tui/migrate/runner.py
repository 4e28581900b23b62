"""Migration runner: check(), plan(), upgrade(), dry_run(); the CLI and the TUI panel consume StepEvents.

upgrade() drives alembic from code (no ini file): one connection, one transaction on PostgreSQL
(everything or nothing), SET LOCAL lock_timeout so it never queues behind a long transaction, and
a session advisory lock polled with pg_try_advisory_lock on a separate connection so two migrators
cannot race (a blocking pg_advisory_lock can deadlock undetected). The work runs in
a thread so that events reach the caller while each step runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.migrate import paging, sql, work
from dlq_tui.migrate.catalog import Catalog, data_gaps, inspect_catalog
from dlq_tui.migrate.revision import STEPS_ATTRIBUTE
from dlq_tui.migrate.steps import (
    STEP_NAMES,
    V7_STEPS,
    Hook,
    MigrationError,
    Policy,
    Report,
    StepEvent,
    Steps,
    step_number,
    stream,
)

__all__ = [
    "CURRENT_LINE",
    "STEP_NAMES",
    "MigrationError",
    "SchemaStatus",
    "StepEvent",
    "check",
    "dry_run",
    "migrations_dir",
    "plan",
    "upgrade",
]

# pg_try_advisory_lock key shared by every dlq-tui migrator ("dlq-tui7" as a bigint).
ADVISORY_LOCK_KEY = int.from_bytes(b"dlq-tui7", "big")
LOCK_POLL_S = 0.2


def migrations_dir() -> Path:
    """migrations/ from the installed package (wheel or editable), else from the checkout."""
    try:
        path = Path(str(resources.files("dlq_tui.migrations")))
        if (path / "env.py").is_file():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise MigrationError("cannot find the migrations/ directory (is dlq-tui installed completely?)")


@functools.cache
def revisions() -> tuple[str, ...]:
    """This release's alembic revisions, base first, as its script directory (migrations/versions) chains them.

    The first creates the legacy objects (the baseline), the second is the spec's v7, later ones are
    dlq-tui's own additions on top (v7_1: the paging indexes, v7_2: the health indexes). Read once per
    process, and only where a revision matters: importing alembic costs ~0.3 s.
    """
    from alembic.script import ScriptDirectory

    chain = [script.revision for script in ScriptDirectory(str(migrations_dir())).walk_revisions()]
    return tuple(reversed(chain))


def head() -> str:
    return revisions()[-1]


def _at_v7(revision: str | None) -> bool:
    """The revision is the spec's v7 or one of this release's revisions after it."""
    return revision is not None and revision in revisions()[1:]


# --- check -----------------------------------------------------------------------------------------
CURRENT_LINE = "✓ Database schema is current (v7)"


@dataclass(frozen=True)
class SchemaStatus:
    """The schema verdict (`current`) and, apart from it, notes about the rows (`notes`).

    Rows without checksum or key are the normal state of a production database (the pipeline's writers
    never set them), so they are data notes printed under the verdict, never a reason the schema is not
    current; `dlq-tui check --strict` lets them fail for those who want that.
    """

    dialect: str
    marker: int | None
    alembic_revision: str | None
    catalog_version: int  # 0 no tables, 6 legacy objects only (or a partial v7), 7 every v7 object
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # schema problems: each one makes `current` False
    notes: list[str] = field(default_factory=list)  # data notes, each with what fixes it
    duplicate_idempotency_sources: int = 0
    rows_without_checksum: int = 0
    rows_without_key: int = 0

    @property
    def current(self) -> bool:
        if self.dialect != "postgresql":
            return not self.problems and self.marker is not None and self.marker >= schema.SCHEMA_VERSION
        return self.catalog_version == 7 and not self.missing and not self.problems

    @property
    def usable(self) -> bool:
        """Can health and events work? Every v7 object present on PostgreSQL; the events table on SQLite.

        Not `current`: that also wants the marker and the alembic stamp to agree, which the migration panel
        reports but which must not hide the queue from an operator.
        """
        if self.dialect == "sqlite":  # the legacy table is all a SQLite DLQ ever has (v7 is PostgreSQL-only)
            return f"table {schema.dead_letter_events.name}" not in self.missing and self.catalog_version > 0
        return self.dialect == "postgresql" and self.catalog_version == 7 and not self.missing


def _status_of(cat: Catalog, conn: Connection) -> SchemaStatus:
    gaps = data_gaps(conn, cat)
    marker = cat.marker
    problems: list[str] = []
    if cat.marker_raw is None:
        problems.append("schema_state has no schema_version row (marker reads 0)")
    elif marker is None:
        problems.append(f"schema_state.schema_version is not a number ({cat.marker_raw!r})")
    if not cat.postgres:
        missing = cat.missing_legacy()
        if marker is not None and marker < schema.SCHEMA_VERSION:
            problems.append(f"marker reads {marker}, expected 7 (run dlq-tui --migrate)")
        return SchemaStatus(cat.dialect, marker, cat.alembic_revision, cat.catalog_version(), missing, problems)
    missing = cat.missing_legacy() + [m for m in cat.missing_v7() if m not in cat.missing_legacy()]
    version = cat.catalog_version()
    if marker is not None:
        if marker >= schema.SCHEMA_VERSION and version < 7:
            problems.append(f"marker reads {marker} but the catalog lacks {len(missing)} v7 objects")
        elif marker < schema.SCHEMA_VERSION and version == 7:
            problems.append(f"marker reads {marker} but every v7 object exists (run dlq-tui --migrate to set it)")
        elif marker < schema.SCHEMA_VERSION:
            problems.append(f"marker reads {marker}: not migrated to v7 (run dlq-tui --migrate)")
    if cat.alembic_revision is not None and cat.alembic_revision not in revisions():
        problems.append(f"alembic_version holds an unknown revision {cat.alembic_revision!r}")
    elif _at_v7(cat.alembic_revision) and version < 7:
        problems.append("alembic_version says v7 but v7 objects are missing")
    problems += cat.drift()
    return SchemaStatus(
        dialect=cat.dialect,
        marker=marker,
        alembic_revision=cat.alembic_revision,
        catalog_version=version,
        missing=missing,
        problems=problems,
        notes=gaps.notes(),
        duplicate_idempotency_sources=gaps.duplicate_sources,
        rows_without_checksum=gaps.rows_without_checksum,
        rows_without_key=gaps.rows_without_key,
    )


def check(engine: Engine) -> SchemaStatus:
    """Inspect marker, alembic revision, catalog and data gaps; changes nothing."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            return _status_of(inspect_catalog(conn), conn)
        finally:
            conn.rollback()


# --- the sequence shared by upgrade and dry run ----------------------------------------------------
@dataclass(frozen=True)
class _Decision:
    stamp: str | None
    adopt_detail: str


def refuse_unknown_revision(cat: Catalog) -> None:
    """A revision this release does not know is a newer release's: stamping ours over it would lie."""
    if cat.alembic_revision is not None and cat.alembic_revision not in revisions():
        raise MigrationError(f"alembic_version holds an unknown revision {cat.alembic_revision!r}; nothing changed")


def refuse_drift(cat: Catalog, *, unchanged: str = "nothing changed") -> None:
    """Drift the migration must not paper over (a wrong type, an index on other columns), before any change."""
    refused = cat.unfixable_drift()
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise MigrationError(f"cannot migrate: {refused[0]}{more}; fix it by hand; {unchanged}")


def _decide(cat: Catalog) -> _Decision:
    rev = cat.alembic_revision
    marker = "missing" if cat.marker_raw is None else cat.marker_raw
    refuse_unknown_revision(cat)
    if rev is None:
        if cat.postgres and cat.v7_complete():  # stamped v7: the revisions after it (v7_1, v7_2) then run
            v7 = revisions()[1]
            return _Decision(v7, f"adopted: every v7 object already present (marker {marker}); stamped {v7}")
        if not cat.missing_legacy():
            base = revisions()[0]
            return _Decision(base, f"adopted existing legacy tables (marker {marker}); stamped {base}")
        return _Decision(None, "")
    if _at_v7(rev) and cat.postgres and not cat.v7_complete():
        return _Decision(revisions()[0], f"alembic says {rev} but v7 objects are missing: completing them")
    return _Decision(None, "")


def _sequence(steps: Steps, cfg: Any | None) -> None:
    """Baseline + v7 as needed (through alembic, or rendered for a dry run), then marker and late rows."""
    cat = steps.inspect()
    if cat.postgres:
        refuse_drift(cat)
    decision = _decide(cat)
    position = decision.stamp or cat.alembic_revision
    if decision.stamp and decision.stamp == revisions()[0] and _at_v7(cat.alembic_revision):
        position = decision.stamp
    if decision.stamp:  # adoption happens first: report it where it runs
        steps.emit("baseline", "skipped", 0.0, decision.adopt_detail)
    if cfg is not None:
        from alembic import command

        if decision.stamp:
            command.stamp(cfg, decision.stamp, purge=True)
        command.upgrade(cfg, "head")
    else:
        if position is None:
            steps.run("baseline", work.baseline)
        if not _at_v7(position):
            if not steps.simulated:
                steps.inspect()
            work.v7(steps)
    if "baseline" not in steps.reported:
        steps.emit("baseline", "skipped", 0.0, decision.adopt_detail or "legacy tables present")
    v7_ran = "add_columns" in steps.reported
    for name in V7_STEPS:
        if name not in steps.reported and name != "set_marker":
            steps.emit(name, "skipped", 0.0, "already at v7")
    if "set_marker" not in steps.reported:
        if not steps.simulated:
            steps.inspect()
        steps.run("set_marker", work.set_marker)
    if "paging_indexes" not in steps.reported:  # at head already, a dry run, or an index dropped by hand
        if not steps.simulated:
            steps.inspect()
        steps.run("paging_indexes", paging.create_paging_indexes)
    ran = ("done", "planned", "skipped")  # "planned": a dry run, where the backfill step stands for what it would do
    covered = v7_ran and steps.statuses.get("backfill") in ran
    steps.run("backfill_new_rows", partial(work.backfill_new_rows, covered=covered))


def _summary(steps: Steps, started: float) -> str:
    changed = [n for n in ("baseline", *V7_STEPS) if steps.statuses.get(n) == "done"]
    late = steps.details.get("backfill_new_rows", "") if steps.statuses.get("backfill_new_rows") == "done" else ""
    if changed == ["set_marker"] or not changed:
        text_ = "already at v7" if not changed else "already at v7 objects; marker set to 7"
        if steps.statuses.get("paging_indexes") == "done":
            text_ += "; paging indexes added"
            return text_ + (f"; {late}" if late else "")
        return text_ + (f"; {late}" if late else "; no schema change")
    return f"migrated to v7 in {time.perf_counter() - started:.1f} s"


# --- upgrade ---------------------------------------------------------------------------------------
def upgrade(
    engine: Engine,
    *,
    lock_wait_s: float = 30.0,
    lock_timeout_ms: int = 5000,
    hooks: Mapping[str, Hook] | None = None,
) -> Iterator[StepEvent]:
    """Migrate to v7, yielding StepEvents as the steps run.

    Raises MigrationError (one line) after a "failed" event; the database is then unchanged.
    Connection failures before the first step propagate as the driver's OperationalError.
    `hooks` is for tests: {"after_step": fn(step_name)} runs after each step (raise to inject a failure).
    """
    for name in STEP_NAMES:
        yield StepEvent(step_number(name), name, "pending")
    yield from stream(
        partial(_upgrade, engine, lock_wait_s=lock_wait_s, lock_timeout_ms=lock_timeout_ms, hooks=dict(hooks or {})),
        cancelled="migration cancelled; rolled back, nothing changed",
    )


def _upgrade(
    engine: Engine, report: Report, *, lock_wait_s: float, lock_timeout_ms: int, hooks: dict[str, Hook]
) -> None:
    started = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn:  # a connection failure here propagates as is (exit 2 in the CLI)
        steps = Steps(conn=conn, report=report, hooks=hooks, policy=Policy(lock_timeout_ms=lock_timeout_ms))
        lock_conn: Connection | None = None
        try:
            if pg:
                lock_conn = _take_lock(engine, steps, lock_wait_s)
            else:
                steps.emit("acquire_lock", "skipped", 0.0, "SQLite: no advisory locks")
            tx = conn.begin()
            try:
                if pg:
                    # Fail fast behind a long transaction instead of blocking every writer queued behind us.
                    conn.exec_driver_sql(sql.lock_timeout_sql(lock_timeout_ms))
                    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
                    conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
                _sequence(steps, _alembic_config(conn, steps))
                with steps.step("commit") as out:
                    out.detail = _summary(steps, started)
                    tx.commit()
            except BaseException:
                if tx.is_active:
                    tx.rollback()
                raise
        except BaseException as exc:
            raise steps.fail(exc) from exc
        finally:
            if lock_conn is not None:
                _release_lock(lock_conn)


def _take_lock(engine: Engine, steps: Steps, wait_s: float) -> Connection:
    with steps.step("acquire_lock") as out:
        conn, waited = take_advisory_lock(engine, wait_s)
        out.detail = f"waited {waited:.1f} s for another migration" if waited >= LOCK_POLL_S else "free"
    return conn


def take_advisory_lock(
    engine: Engine, wait_s: float, *, unchanged: str = "nothing changed"
) -> tuple[Connection, float]:
    """The migrators' advisory lock on a dedicated session, polled (never a blocking wait: it can deadlock undetected).

    Returns the connection holding it and the seconds waited; raises MigrationError after `wait_s`.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    try:
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar():
            waited = time.perf_counter() - started
            if waited >= wait_s:
                raise MigrationError(f"another migration is running (waited {waited:.1f} s for its lock); {unchanged}")
            time.sleep(min(LOCK_POLL_S, max(0.0, wait_s - waited)))
    except BaseException:
        conn.close()
        raise
    return conn, time.perf_counter() - started


def release_advisory_lock(conn: Connection) -> None:
    _release_lock(conn)


def stamp(conn: Connection, revision: str) -> None:
    """Record `revision` in alembic_version inside conn's current transaction (the online path stamps v7)."""
    from alembic import command

    command.stamp(_alembic_config(conn, None), revision, purge=True)


def _release_lock(conn: Connection) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        conn.close()
    except DBAPIError:
        conn.invalidate()  # never hand a connection that may still hold the lock back to the pool


def _alembic_config(conn: Connection, steps: Steps | None) -> Any:
    from alembic.config import Config  # imported only where migrations run (~0.3 s)

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    cfg.attributes[STEPS_ATTRIBUTE] = steps
    return cfg


# --- dry run and plan ------------------------------------------------------------------------------
def dry_run(engine: Engine) -> Iterator[StepEvent]:
    """The steps an upgrade would run now, each with its SQL; read-only, changes nothing."""
    collected: list[StepEvent] = []
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        steps = Steps(conn=conn, report=collected.append, execute=False)
        try:
            steps.emit("acquire_lock", "skipped", 0.0, "dry run: no lock taken")
            _sequence(steps, None)
            with steps.step("commit") as out:
                out.skipped, out.detail = True, "dry run: nothing changed"
        finally:
            conn.rollback()
    yield from (e for e in collected if e.status != "running")


def plan(engine: Engine) -> list[str]:
    """Names of the steps that still have work to do."""
    return [e.name for e in dry_run(engine) if e.status == "planned"]
