"""Step events and the machinery that runs (or, in a dry run, only records) each step's SQL.

The same step code serves the alembic revisions and the online path (execute) and both dry runs
(record only), so the SQL a dry run prints is the SQL a run executes. How it runs is the Policy:
the atomic path runs everything in the caller's one transaction; the online path runs each unit of
work in a short transaction of its own under lock_timeout, retried with backoff while a lock is busy,
and builds indexes CONCURRENTLY on an autocommit connection. Step numbers are fixed by STEP_NAMES, so
a UI can lay out the whole list up front; the events arrive in the order the steps really run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Result, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError

from dlq_tui.db.errors import DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE, first_line, sqlstate
from dlq_tui.migrate import sql
from dlq_tui.migrate.catalog import Catalog, inspect_catalog, invalid_indexes

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
    "paging_indexes": "create dlq-tui indexes (v7_1, v7_2)",
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


class Cancelled(MigrationError):
    """The caller stopped listening (Ctrl-C, a closed screen): the work stops at its next event."""


RESUME = "the database is consistent; run `dlq-tui --migrate --online` again to resume"
RETRYABLE = {LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED}
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class Policy:
    """How a run executes its statements.

    Not resumable (the atomic path): in the caller's one transaction, everything or nothing.
    Resumable (the online path): `Steps.transaction` bodies each in a short transaction of their own
    under lock_timeout (share_lock_timeout_ms for statements that only take SHARE UPDATE EXCLUSIVE,
    which writers pass), retried `retries` times with backoff while a lock is busy; concurrent index
    builds in autocommit; an interrupted run leaves a consistent database the next run finishes.
    """

    resumable: bool = False
    lock_timeout_ms: int = 5000
    share_lock_timeout_ms: int = 30_000
    retries: int = 0
    batch_size: int = 10_000
    max_rate: float | None = None


ATOMIC = Policy()


@dataclass
class Outcome:
    """What a step body sets: its detail line, and `skipped` when there was nothing to do."""

    detail: str = ""
    skipped: bool = False


Hook = Callable[[Any], None]
Report = Callable[[StepEvent], None]
T = TypeVar("T")


def _unwired(event: StepEvent) -> None:
    raise AssertionError(f"Steps.report is not wired (a {event.name} event was lost)")


@dataclass
class Steps:
    """Runs step bodies under a Policy, reporting StepEvents as they go (records only, in a dry run)."""

    conn: Connection
    report: Report = _unwired  # stream() wires a run's in its worker thread
    execute: bool = True
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    catalog: Catalog | None = None
    policy: Policy = ATOMIC
    ddl: Connection | None = None  # autocommit: CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction
    reported: set[str] = field(default_factory=set)
    simulated: set[str] = field(default_factory=set)  # tables (and table.column) a dry run pretends exist
    statuses: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    current: str | None = None  # the step running (still set after it failed)
    current_since: float = 0.0
    lock_retries: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    _sql: list[str] = field(default_factory=list)

    # --- the catalog and read-only queries ---------------------------------------------------------
    def inspect(self) -> Catalog:
        self.catalog = self._read(inspect_catalog)
        return self.catalog

    @property
    def cat(self) -> Catalog:
        return self.catalog if self.catalog is not None else self.inspect()

    def fresh(self) -> Catalog:
        """The catalog as a step of a resumable run starts from (re-read); a dry run keeps what it simulates."""
        return self.inspect() if self.execute or self.catalog is None else self.catalog

    @property
    def postgres(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def query(self, statement: str, params: Mapping[str, Any] | None = None) -> Result[Any]:
        """A read-only query that informs the plan (runs in dry runs too, not shown as step SQL)."""
        return self._read(lambda conn: conn.execute(text(statement), dict(params or {})).freeze()())

    def _read(self, read: Callable[[Connection], T]) -> T:
        if self.policy.resumable and not self.conn.in_transaction():
            with self.conn.begin():
                return read(self.conn)
        return read(self.conn)

    # --- statements --------------------------------------------------------------------------------
    def sql(
        self, statement: str, params: Mapping[str, Any] | None = None, *, repeated: bool = False
    ) -> CursorResult[Any] | None:
        """Record the statement for the step's event; run it unless this is a dry run.

        Bound values are shown in place. A `repeated` statement (a batch loop's, run with new values
        each time) is shown once, with its placeholders.
        """
        self.record(statement if repeated else self.shown(statement, params), once=repeated)
        if not self.execute:
            return None
        return self.conn.execute(text(statement), dict(params or {}))

    def shown(self, statement: str, params: Mapping[str, Any] | None) -> str:
        """The statement as it runs: bound values rendered as SQL literals (a dry run's SQL can be pasted)."""
        if not params:
            return statement.strip()
        bound = text(statement.strip()).bindparams(**params)
        return str(bound.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))

    def record(self, statement: str, *, once: bool = False) -> None:
        shown = statement.strip() + ";"
        if not (once and shown in self._sql):
            self._sql.append(shown)

    def note(self, comment: str) -> None:
        """A comment in the step's SQL (what is not a statement: an alembic stamp, a condition)."""
        self._sql.append(f"-- {comment}")

    def transaction(self, body: Callable[[], T], *, share: bool = False) -> T:
        """body() as one unit: in the caller's transaction, or (resumable) a short one of its own.

        The short transaction runs under lock_timeout and is retried with backoff while a lock is
        busy. share=True: its statements only take SHARE UPDATE EXCLUSIVE (writers pass): the long timeout.
        """
        if not (self.execute and self.policy.resumable):
            return body()
        timeout = self.policy.share_lock_timeout_ms if share else self.policy.lock_timeout_ms
        shown = len(self._sql)
        for attempt in range(self.policy.retries + 1):
            try:
                with self.conn.begin():
                    self.conn.exec_driver_sql(sql.lock_timeout_sql(timeout))
                    return body()
            except DBAPIError as exc:
                if sqlstate(exc) not in RETRYABLE or attempt == self.policy.retries:
                    raise
                del self._sql[shown:]
                self._wait(attempt, exc)
        raise AssertionError("unreachable")

    def concurrently(self, index: str, statement: str) -> None:
        """A CREATE INDEX CONCURRENTLY, retried; a failed build leaves an INVALID index: drop it first."""
        self.record(statement)
        if not self.execute:
            return
        assert self.ddl is not None, "concurrent builds need the autocommit connection"
        for attempt in range(self.policy.retries + 1):
            self.hook("before_index", index)
            try:
                self.ddl.exec_driver_sql(statement)
                return
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                self.drop_if_invalid(index)
                if sqlstate(exc) not in RETRYABLE or attempt == self.policy.retries:
                    raise
                self._wait(attempt, exc)

    def drop_if_invalid(self, index: str) -> bool:
        """Drop the index if an interrupted concurrent build left it INVALID; True if it did."""
        if not self.execute:  # a dry run drops it from the catalog it simulates
            if index not in self.cat.invalid_indexes:
                return False
            self.record(sql.drop_index_sql(index))
            self.cat.invalid_indexes.remove(index)
            self.cat.indexes.pop(index, None)
            return True
        assert self.ddl is not None, "dropping an INVALID index needs the autocommit connection"
        for attempt in range(self.policy.retries + 1):
            if index not in invalid_indexes(self.ddl):
                return False
            try:
                self.ddl.exec_driver_sql(sql.drop_index_sql(index))
                self.record(sql.drop_index_sql(index))
                return True
            except DBAPIError as exc:
                if sqlstate(exc) not in RETRYABLE or attempt == self.policy.retries:
                    raise
                self._wait(attempt, exc)
        return False

    def _wait(self, attempt: int, exc: BaseException) -> None:
        self.lock_retries += 1
        delay = min(BACKOFF_START_S * 2**attempt, BACKOFF_MAX_S)
        self.progress(f"lock busy ({one_line(exc)}); retry {attempt + 1}/{self.policy.retries} in {delay:.2f} s")
        self.sleep(delay)

    def sleep(self, seconds: float) -> None:
        """Wait (a backoff, a rate limit), but stop at once when the caller has stopped listening."""
        if self.cancel.wait(seconds):
            raise Cancelled("migration cancelled")

    def throttle(self, rows: int, since: float) -> None:
        """Hold a batch loop to the policy's max_rate (rows per second since `since`)."""
        if self.policy.max_rate:
            ahead = rows / self.policy.max_rate - (time.perf_counter() - since)
            if ahead > 0:
                self.sleep(ahead)

    def interrupt(self) -> None:
        """Cancel the statement running now, server-side (Ctrl-C: a resumable run stops at once)."""
        for conn in (self.conn, self.ddl):
            if conn is not None and not (conn.closed or conn.invalidated):  # never reconnect just to cancel
                with contextlib.suppress(Exception):
                    conn.connection.dbapi_connection.cancel()  # type: ignore[union-attr]

    # --- events --------------------------------------------------------------------------------------
    def hook(self, point: str, value: Any) -> None:
        """Tests interrupt a run here ("after_step", "after_batch", "before_index", "after_index")."""
        fn = self.hooks.get(point)
        if fn is not None and self.execute:
            fn(value)

    def progress(self, detail: str) -> None:
        """A "running" event with news for the step in progress (rows done, the index being built, a retry)."""
        name = self.current or "commit"
        self.report(StepEvent(step_number(name), name, "running", None, detail))

    def emit(self, name: str, status: Status, duration: float | None = None, detail: str = "") -> None:
        self.reported.add(name)
        self.statuses[name], self.details[name] = status, detail
        self.report(StepEvent(step_number(name), name, status, duration, detail, None))

    def fail(self, exc: BaseException) -> BaseException:
        """The error a failed run ends with (migration_error), reported as one "failed" event.

        Atomic: step() reported the step that failed; anything else lands on the next step not reported.
        Resumable: the step that was running, or commit between steps; an exception that is no database
        or migration error (a hook, Ctrl-C) is reported as an interruption and re-raised as it is.
        """
        if self.policy.resumable and not isinstance(exc, MigrationError | DBAPIError):
            if self.current is not None:
                self._failed(self.current, f"interrupted ({type(exc).__name__}); {RESUME}")
            return exc
        error = migration_error(exc, self)
        if self.policy.resumable:
            self._failed(self.current or "commit", str(error) if error is not exc else self._lost(exc))
        elif (error is not exc or isinstance(exc, MigrationError)) and "failed" not in self.statuses.values():
            self._failed(next((n for n in STEP_NAMES if n not in self.reported), "commit"), str(error))
        return error

    @staticmethod
    def _lost(exc: BaseException) -> str:
        return f"lost the connection ({one_line(exc)}); {RESUME}"

    def _failed(self, name: str, message: str) -> None:
        duration = time.perf_counter() - self.current_since if name == self.current else None
        with contextlib.suppress(MigrationError):  # cancelled: nobody listens any more
            self.emit(name, "failed", duration, message)

    def interrupted(self, exc: BaseException) -> StepEvent | None:
        """The "failed" event for a Ctrl-C in the caller's thread, which the work can no longer report."""
        if self.current is None or not self.policy.resumable:
            return None
        duration = time.perf_counter() - self.current_since
        message = f"interrupted ({type(exc).__name__}); {RESUME}"
        return StepEvent(step_number(self.current), self.current, "failed", duration, message)

    def run(self, name: str, body: Callable[[Steps, Outcome], None]) -> None:
        """One step: body(steps, outcome) between its "running" and its "done"/"skipped" event."""
        with self.step(name) as out:
            body(self, out)

    @contextmanager
    def step(self, name: str) -> Iterator[Outcome]:
        outcome = Outcome()
        self._sql = []
        self.current, self.current_since = name, time.perf_counter()
        self.report(StepEvent(step_number(name), name, "running"))
        started = self.current_since
        try:
            yield outcome
            self.hook("after_step", name)
        except BaseException as exc:
            if not self.policy.resumable:  # a resumable run's driver reports the failure, mapped (migration_error)
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
        self.current = None
        self.report(
            StepEvent(step_number(name), name, status, time.perf_counter() - started, outcome.detail, self._joined())
        )

    def _joined(self) -> str | None:
        return "\n".join(self._sql) if self._sql else None


def one_line(exc: BaseException) -> str:
    """What a failed step says: our own MigrationError as written, a database error's primary message."""
    return " ".join(str(exc).split()) if isinstance(exc, MigrationError) else first_line(exc)


def migration_error(exc: BaseException, steps: Steps) -> BaseException:
    """The one line a failed run ends with, for either policy; `exc` itself where the caller must see it.

    A connection that could not be opened (atomic) or was lost (resumable) stays the driver's error, so
    the CLI explains it as a connection fault (exit 2).
    """
    policy, name = steps.policy, steps.current
    where = f" at step {step_number(name)} {name}" if name else ""
    state = sqlstate(exc)
    if policy.resumable:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return exc
        if state in RETRYABLE:
            message = (
                f"another transaction kept a lock the online migration needs{where} "
                f"({policy.retries + 1} attempts, {policy.lock_timeout_ms} ms each); {RESUME} when it ends"
            )
        elif isinstance(exc, MigrationError):
            message = f"{exc}" if "resume" in str(exc) or "nothing changed" in str(exc) else f"{exc}; {RESUME}"
        else:
            message = f"online migration failed{where}: {one_line(exc)}; {RESUME} once that is fixed"
        return MigrationError(message)
    if isinstance(exc, MigrationError):
        return exc
    if not steps.reported and isinstance(exc, DBAPIError) and exc.connection_invalidated is False:
        return exc  # could not even start: let the caller explain the connection error
    if state == "55P03":  # lock_not_available: lock_timeout expired
        message = (
            f"another transaction holds a lock the migration needs (waited {policy.lock_timeout_ms} ms{where}); "
            "rolled back, nothing changed; retry when that transaction ends"
        )
    else:
        message = f"migration failed{where}: {one_line(exc)}; rolled back, nothing changed"
    return MigrationError(message)


# --- streaming -----------------------------------------------------------------------------------------
_END = object()


@dataclass
class _Failure:
    exc: BaseException


def stream(
    work: Callable[[Report], None],
    *,
    cancel: threading.Event | None = None,
    cancelled: str = "migration cancelled",
    interrupt: Callable[[], None] | None = None,
    interrupted: Callable[[BaseException], StepEvent | None] | None = None,
    lockstep: bool = False,
) -> Iterator[StepEvent]:
    """Run work(report) in a thread and yield the events it reports while it runs.

    When the caller stops listening (closes the generator, or Ctrl-C arrives while it waits), the
    work's next report raises Cancelled(`cancelled`); `interrupt` is called to stop what it is running
    now, and `interrupted(exc)` may give one last event to yield before the Ctrl-C propagates.
    lockstep: the work waits in each report until the caller asks for the next event, as the body of
    a generator would (it never runs while the caller handles an event, and a slow caller slows it).
    """
    events: queue.Queue[Any] = queue.Queue()
    stop = cancel if cancel is not None else threading.Event()
    taken = threading.Semaphore(0) if lockstep else None

    def report(event: StepEvent) -> None:
        if stop.is_set():
            raise Cancelled(cancelled)
        events.put(event)
        if taken is not None:
            taken.acquire()
            if stop.is_set():
                raise Cancelled(cancelled)

    def target() -> None:
        try:
            work(report)
            events.put(_END)
        except BaseException as exc:
            events.put(_Failure(exc))

    worker = threading.Thread(target=target, name="dlq-tui-migrate", daemon=True)

    def halt() -> None:
        stop.set()
        if taken is not None:
            taken.release()
        if interrupt is not None and worker.is_alive():
            interrupt()
        worker.join()

    worker.start()
    try:
        while True:
            try:
                item = events.get()
            except BaseException as exc:  # Ctrl-C while the work runs: stop it, then say where it stopped
                halt()
                last = interrupted(exc) if interrupted is not None else None
                if last is not None:
                    yield last
                raise
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
            if taken is not None:
                taken.release()
    finally:
        halt()
