"""Retention: delete resolved dead letters older than a cutoff, in short batches that never hold a long lock.

Only rows with ``resolved = true AND resolved_at < cutoff`` are ever deleted: a pending row, a resolved row
without ``resolved_at`` and a row resolved at or after the cutoff stay. The cutoff is read once from the server's
clock at the start, so the plan (dry run) and the run mean the same rows, and a long run does not chase rows that
cross the boundary while it works.

Each batch is its own transaction: ``DELETE ... WHERE id IN (SELECT id ... ORDER BY id LIMIT n FOR UPDATE SKIP
LOCKED)``, under a short ``lock_timeout``. SKIP LOCKED means a row another transaction has locked (an operator
at work, the processor's batch) is passed over instead of waited for; a row whose processing lock is live is left
alone too (it belongs to its holder). Batches continue after the last id deleted (keyset), so each one costs the
same however much was deleted before it. A table lock that outlasts the lock_timeout (a migration running) is
retried a few times, then the purge stops with one line; batches committed before stay deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

from psycopg import errors as pg_errors
from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select, text, true
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.db.errors import first_line, sqlstate
from dlq_tui.db.models import EventFilter
from dlq_tui.db.queries import filter_conditions
from dlq_tui.db.triage import set_transaction_limits

ev = schema.dead_letter_events

BATCH_SIZE = 5_000  # rows per transaction
LOCK_TIMEOUT_MS = 2_000  # a batch waits at most this long for a table lock, then tries again
LOCK_RETRIES = 3  # attempts of one batch before the purge stops
RETRY_PAUSE_S = 1.0
STATEMENT_TIMEOUT_MS = 60_000  # one batch; the plan's count reads the whole table and has none
MAX_DAYS = 100_000  # beyond ~270 years the cutoff is no longer a sensible date


class PurgeFailed(Exception):
    """The database refused or could not run a batch; str(exc) is one line. `deleted` stays deleted."""

    def __init__(self, message: str, deleted: int = 0) -> None:
        super().__init__(message)
        self.deleted = deleted


@dataclass(frozen=True)
class PurgePlan:
    """What a purge with this cutoff would delete (read in one statement)."""

    cutoff: datetime
    count: int  # rows it would delete (resolved before the cutoff, no live processing lock)
    oldest_resolved_at: datetime | None
    newest_resolved_at: datetime | None
    held: int  # rows resolved before the cutoff that hold a live processing lock: left alone
    without_resolved_at: int  # resolved rows that have no resolved_at: never purged (their age is unknown)


@dataclass(frozen=True)
class PurgeProgress:
    deleted: int
    batches: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.deleted / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    batches: int
    elapsed_s: float
    left: int  # rows still matching after the run: locked or held while it ran (a second run takes them)

    @property
    def rate(self) -> float:
        return self.deleted / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _purgeable(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [ev.c.resolved == true(), ev.c.resolved_at < cutoff]


def _free() -> ColumnElement[bool]:
    # The events screen's "free" filter: no lock, or one whose expiry is unset or past.
    (condition,) = filter_conditions(EventFilter(lock="free", include_resolved=True))
    return condition


def validate_days(raw: str) -> int:
    """DAYS as given on the command line: a positive whole number (ValueError with the reason otherwise)."""
    value = raw.strip()
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"expected a positive whole number of days, got {raw!r}")
    days = int(value)
    if days < 1:
        raise ValueError(f"expected a positive whole number of days, got {raw!r}")
    if days > MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS:,} days, got {raw!r}")
    return days


@contextmanager
def _transaction(engine: Engine, deleted: int, *, statement_timeout_ms: int | None) -> Iterator[Connection]:
    """One short transaction with our session settings; database faults become PurgeFailed."""
    with engine.connect() as conn:
        try:
            conn.begin()
            set_transaction_limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS, statement_timeout_ms=statement_timeout_ms)
            yield conn
            conn.commit()
        except DBAPIError as exc:
            with suppress(Exception):
                conn.rollback()
            if isinstance(exc.orig, pg_errors.LockNotAvailable):
                raise  # the caller retries
            if exc.connection_invalidated or sqlstate(exc) is None:
                raise  # the link is gone: a connection fault for the caller, not a refusal
            raise PurgeFailed(_explain(exc, deleted), deleted) from exc


def _explain(exc: DBAPIError, deleted: int) -> str:
    orig = exc.orig
    primary = first_line(exc)
    if isinstance(orig, pg_errors.ReadOnlySqlTransaction):
        why = f"the database session is read-only ({primary})"
    elif isinstance(orig, pg_errors.InsufficientPrivilege):
        # SKIP LOCKED needs a row-locking clause, and PostgreSQL grants that with UPDATE, not with DELETE alone.
        why = (
            "your database role may not delete events: permission denied on dead_letter_events "
            "(purge needs SELECT, UPDATE and DELETE on it)"
        )
    elif isinstance(orig, pg_errors.QueryCanceled):
        why = "a batch took too long and was cancelled (statement_timeout)"
    elif isinstance(orig, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        why = f"the database is not at schema v7 ({primary}); run the migration first"
    else:
        why = f"the database refused the delete ({primary})"
    return f"{why}; {_kept(deleted)}"


def _kept(deleted: int) -> str:
    if not deleted:
        return "nothing was deleted"
    return f"{deleted:,} row{'' if deleted == 1 else 's'} deleted by earlier batches stay deleted"


def cutoff_for(engine: Engine, days: int) -> datetime:
    """The server's now() minus `days` days (the clock of the database, not of this machine)."""
    with _transaction(engine, 0, statement_timeout_ms=STATEMENT_TIMEOUT_MS) as conn:
        return conn.execute(text("SELECT now() - make_interval(days => :days)"), {"days": days}).scalar_one()


def plan(engine: Engine, cutoff: datetime) -> PurgePlan:
    """Count what a purge with this cutoff would delete; changes nothing."""
    free, held = _free(), ~_free()
    query = select(
        func.count().filter(*_purgeable(cutoff), free).label("count"),
        func.min(ev.c.resolved_at).filter(*_purgeable(cutoff), free).label("oldest"),
        func.max(ev.c.resolved_at).filter(*_purgeable(cutoff), free).label("newest"),
        func.count().filter(*_purgeable(cutoff), held).label("held"),
        func.count().filter(ev.c.resolved_at.is_(None)).label("without"),
    ).where(ev.c.resolved == true())
    for attempt in range(LOCK_RETRIES):
        try:
            with _transaction(engine, 0, statement_timeout_ms=None) as conn:
                r = conn.execute(query).mappings().one()
            return PurgePlan(cutoff, int(r["count"]), r["oldest"], r["newest"], int(r["held"]), int(r["without"]))
        except DBAPIError as exc:
            _lock_wait_or_raise(exc, attempt, 0)
    raise AssertionError("unreachable")


def _lock_wait_or_raise(exc: DBAPIError, attempt: int, deleted: int) -> None:
    """A lock timeout: pause and let the caller try again, or give up after LOCK_RETRIES. Anything else: raise."""
    if not isinstance(exc.orig, pg_errors.LockNotAvailable):
        raise exc
    if attempt + 1 >= LOCK_RETRIES:
        raise PurgeFailed(
            f"another transaction holds a lock on dead_letter_events (waited {LOCK_TIMEOUT_MS / 1000:g} s, "
            f"{LOCK_RETRIES} times); {_kept(deleted)}; run the purge again later",
            deleted,
        ) from None
    time.sleep(RETRY_PAUSE_S)


def purge(
    engine: Engine,
    cutoff: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[PurgeProgress], None] | None = None,
) -> PurgeResult:
    """Delete every purgeable row (see the module doc), batch after batch; on_batch is called after each commit."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    started = time.monotonic()
    deleted = batches = 0
    after: int | None = None
    while True:
        conditions = [*_purgeable(cutoff), _free()]
        if after is not None:
            conditions.append(ev.c.id > after)
        doomed = (
            select(ev.c.id).where(*conditions).order_by(ev.c.id).limit(batch_size).with_for_update(skip_locked=True)
        )
        statement = delete(ev).where(ev.c.id.in_(doomed.scalar_subquery())).returning(ev.c.id)
        for attempt in range(LOCK_RETRIES):
            try:
                with _transaction(engine, deleted, statement_timeout_ms=STATEMENT_TIMEOUT_MS) as conn:
                    ids = conn.execute(statement).scalars().all()
                break
            except DBAPIError as exc:
                _lock_wait_or_raise(exc, attempt, deleted)
        deleted += len(ids)
        batches += 1
        if ids:
            after = max(ids)
        if on_batch is not None:
            on_batch(PurgeProgress(deleted, batches, time.monotonic() - started))
        if len(ids) < batch_size:
            break
    after_run = plan(engine, cutoff)
    left = after_run.count + after_run.held
    return PurgeResult(deleted, batches, time.monotonic() - started, left)
