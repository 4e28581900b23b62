"""The app's only door to the database: thin, blocking calls into dlq_tui.db and dlq_tui.migrate.

Every method opens its own pooled connection, so screens can run them concurrently in thread workers.
Tests subclass DataSource to make a call slow or failing without touching the screens.
The ui never writes SQL: everything here delegates to the db layer or the migration runner.
Screens and widgets import dlq_tui.db.models / dlq_tui.db.schema and, for everything else from the data layers
(result types, refusals, wordings), the names re-exported here: lint-imports keeps it that way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Engine

from dlq_tui.db.access import AccessProblem
from dlq_tui.db.connect import is_hot_standby, make_engine
from dlq_tui.db.dsn import is_sqlite
from dlq_tui.db.errors import explain_connection_error
from dlq_tui.db.lite import V7_ONLY, Unavailable
from dlq_tui.db.models import (
    ActionResult,
    EventDetail,
    EventFilter,
    EventPage,
    FastSnapshot,
    HealthSnapshot,
    PageCursor,
    ViewReading,
)
from dlq_tui.db.redrive import Destination, RedriveRefused, RedriveResult, RepairPreview
from dlq_tui.db.search import ScanProgress, SearchCancelled, SearchHandle, SearchPage, count_in_table_order, scan
from dlq_tui.db.sources import REINGEST_METHOD, SourceOverview, SourceSelection, SourceStat
from dlq_tui.db.triage import (
    HELD_BY_YOU,
    NOTE_MAX_CHARS,
    RESOLUTION_METHODS,
    ActionRefused,
    Operator,
    describe,
    export_target_problem,
    unstorable,
)
from dlq_tui.migrate.runner import CURRENT_LINE, SchemaStatus
from dlq_tui.migrate.steps import STEP_TITLES, MigrationError, StepEvent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dlq_tui.config import Settings
    from dlq_tui.search.query import SearchQuery

# What screens and widgets use from the data layers (they import it from here, never from db/ or migrate/).
__all__ = [
    "CURRENT_LINE",
    "HELD_BY_YOU",
    "NOTE_MAX_CHARS",
    "REINGEST_METHOD",
    "RESOLUTION_METHODS",
    "STEP_TITLES",
    "V7_ONLY",
    "AccessProblem",
    "ActionRefused",
    "DataSource",
    "Destination",
    "MigrationError",
    "MigrationRun",
    "RedriveRefused",
    "RedriveResult",
    "RepairPreview",
    "ScanProgress",
    "SchemaStatus",
    "SearchCancelled",
    "SearchHandle",
    "SearchPage",
    "SourceOverview",
    "SourceSelection",
    "SourceStat",
    "StepEvent",
    "Unavailable",
    "describe",
    "explain_connection_error",
    "export_target_problem",
    "is_hot_standby",
    "unstorable",
]

# A backstop: a thread worker cannot cancel its query, so the server does it after this long.
STATEMENT_TIMEOUT_MS = 30_000
# A health read runs in the background while the screen keeps showing the last figures, so it may take longer
# than the backstop above: the view's row (the slow tier) is a pass over the whole table, 12-20 s at 10M events
# (bench/BENCHMARKS.md), and with the 30 s backstop a larger queue would time out on every read.
HEALTH_TIMEOUT_MS = 300_000
PAGE_SIZE = 200
T = TypeVar("T")
CANCEL_EVERY_S = 0.25  # while cancelling a migration: how often the statement it runs is cancelled again


class MigrationStopped(MigrationError):
    """Thrown into the online upgrade at its next step event: its own interrupt path stops it between batches."""


@dataclass
class MigrationRun:
    """The upgrade running now (quitting asks about it): which one, its current step, how it ended."""

    online: bool
    started: float = field(default_factory=time.monotonic)
    step: StepEvent | None = None  # the last one that said "running"
    cancel_requested: bool = False
    failed: bool = False
    error: str | None = None  # set when the run ended with an exception (one line)
    finished: bool = False  # the generator ran to its end (committed)

    @property
    def kind(self) -> str:
        return "online migration" if self.online else "migration"


class DataSource:
    # The online migration's pace (the CLI's --batch-size / --max-rate defaults); tests slow it down.
    online_batch_size: int = 10_000
    online_max_rate: float | None = None
    # How long the atomic upgrade waits for a table lock before it gives up (the runner's default); tests raise it.
    upgrade_lock_timeout_ms: int = 5_000
    # At most this many sources in the per-source view (None: dlq_tui.db.sources.SOURCE_LIMIT); tests lower it.
    source_limit: int | None = None
    # How long a SQLite statement waits for another connection's lock, per attempt (dlq_tui.db.lite); tests lower it.
    sqlite_busy_timeout_s: float = 5.0

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.dsn = settings.dsn
        sqlite: dict[str, Any] = {"busy_timeout_s": self.sqlite_busy_timeout_s} if is_sqlite(settings.dsn) else {}
        self.engine = engine or make_engine(
            settings.dsn, read_only=settings.read_only, statement_timeout_ms=STATEMENT_TIMEOUT_MS, **sqlite
        )
        self._migration_engine: Engine | None = None
        # Raw psycopg connections, here and below (Any: SQLAlchemy's DBAPI type has no cancel_safe, called on them).
        self._migration_connections: set[Any] = set()  # driver connections the migration engine has out
        self.migration: MigrationRun | None = None  # the upgrade running now
        self.last_migration: MigrationRun | None = None
        self._operator: Operator | None = None
        self._health_in_flight: set[Any] = set()
        self._searches: set[SearchHandle] = set()  # searches running now (cancelled on close)
        self.claimed = False  # a claim of this session succeeded: quitting checks for claims still held
        self.busy_listener: Callable[[str], None] | None = None  # hears "database is locked, retrying" (SQLite)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.dsn)

    # --- SQLite: the legacy table through dlq_tui.db.lite (v7 is PostgreSQL-only) ----------------------
    @property
    def unavailable_figures(self) -> tuple[str, ...]:
        """Health figures this database cannot have (HealthFigures names); shown as unavailable, for V7_ONLY."""
        from dlq_tui.db.lite import V7_ONLY_FIGURES

        return V7_ONLY_FIGURES if self.is_sqlite else ()

    def v7_only(self, what: str) -> str | None:
        """On SQLite the one-line refusal of a v7-only feature ("claim unavailable: v7 is PostgreSQL-only")."""
        return str(Unavailable(what)) if self.is_sqlite else None

    def _refuse_on_sqlite(self, what: str) -> None:
        if self.is_sqlite:
            raise ActionRefused(str(Unavailable(what)))

    def _on_busy(self, line: str) -> None:
        """A SQLite write found the database locked and retries: tell whoever listens (the app shows the line)."""
        if self.busy_listener is not None:
            self.busy_listener(line)

    def close(self) -> None:
        # A thread worker's query outlives the app; cancel a running health refresh so that quitting does not
        # leave a long aggregate running on the server (a relaunch would queue behind it).
        for handle in list(self._searches):
            handle.cancel()
        for raw in list(self._health_in_flight):
            with contextlib.suppress(Exception):
                raw.cancel_safe(timeout=1.0)
        self.engine.dispose()
        if self._migration_engine is not None:
            self._migration_engine.dispose()

    # --- read side -------------------------------------------------------------------------------
    def health(self) -> HealthSnapshot:
        """Everything in one read, the view's row as the reference (what `dlq-tui health` reads)."""
        from dlq_tui.db.queries import fetch_health

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.as_snapshot(lite.read_consistent(self.engine, lite.fetch_lite_health))
        return self._health_read(fetch_health)

    def health_fast(self) -> FastSnapshot:
        """The health screen's frequent refresh: only figures that indexes answer."""
        from dlq_tui.db.queries import fetch_health_fast

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.as_fast_snapshot(lite.read_consistent(self.engine, lite.fetch_lite_health))
        return self._health_read(fetch_health_fast)

    def health_view(self, trends_now: datetime | None = None) -> ViewReading:
        """The health screen's slow tier: the dlq_health row (a pass over the whole table) and the trends."""
        from dlq_tui.db.queries import fetch_view_reading

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.as_view_reading(lite.read_consistent(self.engine, lite.fetch_lite_health))
        return self._health_read(lambda conn: fetch_view_reading(conn, trends_now))

    def _health_read(self, reader: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {HEALTH_TIMEOUT_MS}")
            raw = conn.connection.dbapi_connection
            self._health_in_flight.add(raw)
            try:
                return reader(conn)
            finally:
                self._health_in_flight.discard(raw)

    def page(
        self,
        flt: EventFilter,
        *,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        limit: int = PAGE_SIZE,
    ) -> EventPage:
        fetch_page = self._reader().fetch_page

        with self.engine.connect() as conn:
            return fetch_page(conn, flt, after=after, before=before, limit=limit)

    def page_at(self, flt: EventFilter, event_id: int, limit: int = PAGE_SIZE) -> EventPage | None:
        page_starting_at = self._reader().page_starting_at

        with self.engine.connect() as conn:
            return page_starting_at(conn, flt, event_id, limit=limit)

    def locate(self, flt: EventFilter, event_id: int, limit: int = PAGE_SIZE) -> tuple[EventFilter, EventPage] | None:
        """Any event by id: (the view that lists it, its page); None when no event has that id."""
        locate_event = self._reader().locate_event

        with self.engine.connect() as conn:
            return locate_event(conn, flt, event_id, limit=limit)

    def matching_ids(self, flt: EventFilter) -> list[int]:
        matching_ids = self._reader().matching_ids

        with self.engine.connect() as conn:
            return matching_ids(conn, flt)

    def event(self, event_id: int, payload_chars: int) -> EventDetail | None:
        fetch_event = self._reader().fetch_event

        with self.engine.connect() as conn:
            return fetch_event(conn, event_id, payload_chars=payload_chars)

    def payload_slice(self, event_id: int, start_char: int, length: int) -> str:
        fetch_payload_slice = self._reader().fetch_payload_slice

        with self.engine.connect() as conn:
            return fetch_payload_slice(conn, event_id, start_char, length)

    def reasons(self) -> list[str]:
        known_reasons = self._reader().known_reasons

        with self.engine.connect() as conn:
            return known_reasons(conn)

    # --- forensic search (dlq_tui.db.search): a scan in chunks, stopped by its handle, on the server too ---------
    def search(
        self,
        query: SearchQuery,
        handle: SearchHandle,
        *,
        after: PageCursor | None = None,
        before: PageCursor | None = None,
        limit: int = PAGE_SIZE,
        on_progress: Callable[[ScanProgress], None] | None = None,
        scanned_before: int = 0,
    ) -> SearchPage:
        with self._searching(handle) as conn:
            return scan(
                conn,
                query,
                after=after,
                before=before,
                limit=limit,
                on_progress=on_progress,
                stop=handle,
                scanned_before=scanned_before,
            )

    def search_count(
        self, query: SearchQuery, handle: SearchHandle, *, on_progress: Callable[[ScanProgress], None] | None = None
    ) -> ScanProgress:
        """Count every match of the view in table order (the header's "N matches, X% of table scanned")."""
        with self._searching(handle) as conn:
            return count_in_table_order(conn, query, on_progress=on_progress, stop=handle)

    @contextlib.contextmanager
    def _searching(self, handle: SearchHandle) -> Iterator[Any]:
        from sqlalchemy.exc import DBAPIError

        from dlq_tui.db.errors import QUERY_CANCELED, sqlstate

        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            handle.attach(raw)
            self._searches.add(handle)
            try:
                yield conn
            except DBAPIError as exc:
                if handle.cancelled and sqlstate(exc) == QUERY_CANCELED:
                    raise SearchCancelled from None
                raise
            finally:
                handle.detach(raw)
                self._searches.discard(handle)

    def _reader(self) -> Any:
        """The read module for this database: dlq_tui.db.lite on SQLite (same functions, same records)."""
        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite
        from dlq_tui.db import queries

        return queries

    # --- per source file (dlq_tui.db.sources) --------------------------------------------------------
    def sources(self) -> SourceOverview:
        """Pending events grouped by source file. A GROUP BY over every pending row, like health: its timeout."""
        from dlq_tui.db.sources import SOURCE_LIMIT, fetch_sources

        if self.is_sqlite:
            raise Unavailable("the per-source view")
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {HEALTH_TIMEOUT_MS}")
            raw = conn.connection.dbapi_connection
            self._health_in_flight.add(raw)  # cancelled on close, like a health refresh
            try:
                return fetch_sources(conn, mine=self.operator.lock_token, limit=self.source_limit or SOURCE_LIMIT)
            finally:
                self._health_in_flight.discard(raw)

    def source_selection(self, source: str | None) -> SourceSelection:
        from dlq_tui.db.sources import source_selection

        if self.is_sqlite:
            raise Unavailable("the per-source view")
        with self.engine.connect() as conn:
            return source_selection(conn, source, mine=self.operator.lock_token)

    def resolve_for_reingest(self, selection: SourceSelection) -> ActionResult:
        from dlq_tui.db.sources import resolve_for_reingest

        self._refuse_on_sqlite("re-ingest")
        return resolve_for_reingest(self.engine, self.operator, selection)

    # --- schema and migration ---------------------------------------------------------------------
    def _migrator(self) -> Engine:
        # Migrations may run for minutes and must write: no statement timeout, never read-only.
        if self._migration_engine is None:
            from sqlalchemy import event

            engine = make_engine(self.dsn)
            out = self._migration_connections
            # Known so that cancel_migration can cancel whatever statement the migration is running or waiting in.
            event.listen(engine, "checkout", lambda dbapi, record, proxy: out.add(dbapi))
            event.listen(engine, "checkin", lambda dbapi, record: out.discard(dbapi))
            event.listen(engine, "close", lambda dbapi, record: out.discard(dbapi))
            self._migration_engine = engine
        return self._migration_engine

    def _tracked(self, online: bool, events: Iterator[StepEvent]) -> Iterator[StepEvent]:
        """The upgrade's step events, passed through while `migration` says what is running."""
        run = MigrationRun(online)
        self.migration = run
        stopping = False
        try:
            while True:
                try:
                    if run.online and run.cancel_requested and not stopping:
                        # Between two batches no statement runs, so cancelling statements alone can miss it.
                        stopping = True
                        step = cast(Generator[StepEvent, None, None], events).throw(
                            MigrationStopped("stopped at your request")
                        )
                    else:
                        step = next(events)
                except StopIteration:
                    break
                if step.status == "running":
                    run.step = step
                elif step.status == "failed":
                    run.failed = True
                yield step
            run.finished = True
        except Exception as exc:
            from dlq_tui.text import plain

            run.failed = True
            run.error = plain(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, limit=300)
            raise
        finally:
            self.last_migration = run
            self.migration = None

    def cancel_migration(self) -> bool:
        """Stop the running upgrade from another thread: its statements are cancelled until it gives up.

        The atomic upgrade then rolls back (nothing changes); the online one stops where it is (what it did stays,
        a rerun resumes). A cancel that arrives during the commit cannot undo it: the run's outcome says what
        happened. Returns False when no upgrade is running.
        """
        run = self.migration
        if run is None:
            return False
        if not run.cancel_requested:
            run.cancel_requested = True
            threading.Thread(target=self._keep_cancelling, args=(run,), name="dlq-tui-cancel", daemon=True).start()
        return True

    def _keep_cancelling(self, run: MigrationRun) -> None:
        # Between two statements a cancel finds nothing to cancel: repeat until the run has failed or ended.
        while self.migration is run and not run.failed:
            for raw in list(self._migration_connections):
                with contextlib.suppress(Exception):
                    raw.cancel_safe(timeout=2.0)
            time.sleep(CANCEL_EVERY_S)

    def schema_status(self) -> SchemaStatus:
        from dlq_tui.migrate.runner import check

        return check(self.engine)

    # --- link and access --------------------------------------------------------------------------
    def ping(self) -> None:
        """One round trip on a fresh connection; raises the driver's error when the server is away."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def reset_pool(self) -> None:
        """Drop pooled connections after a lost link, so the next call dials anew (pre-ping is the backstop)."""
        self.engine.dispose()

    def access_problem(self) -> AccessProblem | None:
        """An AccessProblem when the role may not SELECT what the screens read, else None."""
        from dlq_tui.db.access import unreadable_objects

        if self.is_sqlite:
            return None
        with self.engine.connect() as conn:
            return unreadable_objects(conn)

    def plan(self) -> list[str]:
        from dlq_tui.migrate.runner import plan

        return plan(self.engine)

    def dry_run(self) -> Iterator[StepEvent]:
        from dlq_tui.migrate.runner import dry_run

        return dry_run(self._migrator())

    def upgrade(self) -> Iterator[StepEvent]:
        from dlq_tui.migrate.runner import upgrade

        return self._tracked(False, upgrade(self._migrator(), lock_timeout_ms=self.upgrade_lock_timeout_ms))

    def online_dry_run(self) -> Iterator[StepEvent]:
        from dlq_tui.migrate.online import online_dry_run

        return online_dry_run(self._migrator())

    def online_upgrade(self) -> Iterator[StepEvent]:
        """Short locks, batched backfill, resumable; repeated "running" events carry progress."""
        from dlq_tui.migrate.online import online_upgrade

        events = online_upgrade(self._migrator(), batch_size=self.online_batch_size, max_rate=self.online_max_rate)
        return self._tracked(True, events)

    # --- triage (write side; each call is its own transaction per batch, see dlq_tui.db.triage) ------
    @property
    def operator(self) -> Operator:
        """Built once per app session: one lock token, so locks taken in this session read as "mine"."""
        if self._operator is None:
            from dlq_tui.config import default_operator
            from dlq_tui.db.triage import Operator

            name = (self.settings.operator or "").strip() or default_operator()
            self._operator = Operator(name, lock_ttl_minutes=self.settings.lock_ttl_minutes)
        return self._operator

    def claim(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("claim")
        return self._claimed(triage.claim(self.engine, self.operator, ids))

    def take_back(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("take back")
        return self._claimed(triage.take_back(self.engine, self.operator, ids))

    def _claimed(self, result: ActionResult) -> ActionResult:
        self.claimed = self.claimed or bool(result.done)
        return result

    def held_claims(self) -> list[int]:
        """The events this session still holds; no query when it never claimed one (its token is its own)."""
        if not self.claimed or self.is_sqlite:
            return []
        from dlq_tui.db import triage

        return triage.held_claims(self.engine, self.operator)

    def lock_holders(self, ids: Sequence[int]) -> dict[int, str | None]:
        from dlq_tui.db import triage

        if self.is_sqlite:
            return {}  # no locks on SQLite
        return triage.lock_holders(self.engine, ids)

    def release(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("release")
        return triage.release(self.engine, self.operator, ids)

    def classify(self, ids: Sequence[int], classification: str | None) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("classify")
        return triage.classify(self.engine, self.operator, ids, classification)

    def set_priority(self, ids: Sequence[int], priority: int) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("priority")
        return triage.set_priority(self.engine, self.operator, ids, priority)

    def resolve(self, ids: Sequence[int], method: str, note: str | None = None) -> ActionResult:
        from dlq_tui.db import triage

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.resolve(self.engine, self.operator, ids, method, note, on_busy=self._on_busy)
        return triage.resolve(self.engine, self.operator, ids, method, note)

    def reopen(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.reopen(self.engine, self.operator, ids, on_busy=self._on_busy)
        return triage.reopen(self.engine, self.operator, ids)

    def requeue(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        self._refuse_on_sqlite("requeue")
        return triage.requeue(self.engine, self.operator, ids)

    def export(self, ids: Sequence[int], path: Path, *, overwrite: bool = False) -> int:
        from dlq_tui.db import triage

        if self.is_sqlite:
            from dlq_tui.db import lite

            return lite.export_jsonl(self.engine, ids, path, overwrite=overwrite)
        return triage.export_jsonl(self.engine, ids, path, overwrite=overwrite)

    # --- repair and redrive (dlq_tui.db.redrive; the repair runs here, in the caller's thread worker) ----------
    def repair_preview(self, event_id: int) -> RepairPreview | None:
        from dlq_tui.db.redrive import preview

        self._refuse_on_sqlite("repair")
        with self.engine.connect() as conn:
            return preview(conn, self.operator, event_id)

    def redrive_plan(self, ids: Sequence[int]) -> RedriveResult:
        """A dry run: what a redrive of these events would do (writes nothing)."""
        from dlq_tui.db import redrive

        self._refuse_on_sqlite("redrive")
        return redrive.redrive(self.engine, self.operator, ids, dry_run=True)

    def redrive(self, ids: Sequence[int], accept_ambiguous: Mapping[int, str] | None = None) -> RedriveResult:
        from dlq_tui.db import redrive

        self._refuse_on_sqlite("redrive")
        return redrive.redrive(self.engine, self.operator, ids, accept_ambiguous=accept_ambiguous)
