"""The app's only door to the database: thin, blocking calls into dlq_tui.db and dlq_tui.migrate.

Every method opens its own pooled connection, so screens can run them concurrently in thread workers.
Tests subclass DataSource to make a call slow or failing without touching the screens.
The ui never writes SQL: everything here delegates to the db layer or the migration runner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from dlq_tui.db.connect import is_sqlite, make_engine
from dlq_tui.db.models import EventDetail, EventFilter, EventPage, HealthSnapshot, PageCursor

if TYPE_CHECKING:
    from dlq_tui.config import Settings
    from dlq_tui.db.models import ActionResult
    from dlq_tui.db.sources import SourceOverview, SourceSelection
    from dlq_tui.db.triage import Operator

# A backstop: a thread worker cannot cancel its query, so the server does it after this long.
STATEMENT_TIMEOUT_MS = 30_000
# A health refresh runs in the background while the screen keeps showing the last figures, so it may take longer
# than the backstop above: at 10M events one refresh takes 16-20 s (bench/BENCHMARKS.md), and with the 30 s
# backstop a larger queue would time out on every poll and never show figures at all.
HEALTH_TIMEOUT_MS = 300_000
PAGE_SIZE = 200


class DataSource:
    # The online migration's pace (the CLI's --batch-size / --max-rate defaults); tests slow it down.
    online_batch_size: int = 10_000
    online_max_rate: float | None = None
    # At most this many sources in the per-source view (None: dlq_tui.db.sources.SOURCE_LIMIT); tests lower it.
    source_limit: int | None = None

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.dsn = settings.dsn
        self.engine = engine or make_engine(
            settings.dsn, read_only=settings.read_only, statement_timeout_ms=STATEMENT_TIMEOUT_MS
        )
        self._migration_engine: Engine | None = None
        self._operator: Operator | None = None
        self._health_in_flight: set[Any] = set()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.dsn)

    def close(self) -> None:
        # A thread worker's query outlives the app; cancel a running health refresh so that quitting does not
        # leave a long aggregate running on the server (a relaunch would queue behind it).
        for raw in list(self._health_in_flight):
            with contextlib.suppress(Exception):
                raw.cancel_safe(timeout=1.0)
        self.engine.dispose()
        if self._migration_engine is not None:
            self._migration_engine.dispose()

    # --- read side -------------------------------------------------------------------------------
    def health(self) -> HealthSnapshot:
        from dlq_tui.db.queries import fetch_health

        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {HEALTH_TIMEOUT_MS}")
            raw = conn.connection.dbapi_connection
            self._health_in_flight.add(raw)
            try:
                return fetch_health(conn)
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
        from dlq_tui.db.queries import fetch_page

        with self.engine.connect() as conn:
            return fetch_page(conn, flt, after=after, before=before, limit=limit)

    def page_at(self, flt: EventFilter, event_id: int, limit: int = PAGE_SIZE) -> EventPage | None:
        from dlq_tui.db.queries import page_starting_at

        with self.engine.connect() as conn:
            return page_starting_at(conn, flt, event_id, limit=limit)

    def event(self, event_id: int, payload_chars: int) -> EventDetail | None:
        from dlq_tui.db.queries import fetch_event

        with self.engine.connect() as conn:
            return fetch_event(conn, event_id, payload_chars=payload_chars)

    def payload_slice(self, event_id: int, start_char: int, length: int) -> str:
        from dlq_tui.db.queries import fetch_payload_slice

        with self.engine.connect() as conn:
            return fetch_payload_slice(conn, event_id, start_char, length)

    def reasons(self) -> list[str]:
        from dlq_tui.db.queries import known_reasons

        with self.engine.connect() as conn:
            return known_reasons(conn)

    # --- per source file (dlq_tui.db.sources) --------------------------------------------------------
    def sources(self) -> SourceOverview:
        """Pending events grouped by source file. A GROUP BY over every pending row, like health: its timeout."""
        from dlq_tui.db.sources import SOURCE_LIMIT, fetch_sources

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

        with self.engine.connect() as conn:
            return source_selection(conn, source, mine=self.operator.lock_token)

    def resolve_for_reingest(self, selection: SourceSelection) -> ActionResult:
        from dlq_tui.db.sources import resolve_for_reingest

        return resolve_for_reingest(self.engine, self.operator, selection)

    # --- schema and migration ---------------------------------------------------------------------
    def _migrator(self) -> Engine:
        # Migrations may run for minutes and must write: no statement timeout, never read-only.
        if self._migration_engine is None:
            self._migration_engine = make_engine(self.dsn)
        return self._migration_engine

    def schema_status(self) -> Any:
        from dlq_tui.migrate.runner import check

        return check(self.engine)

    # --- link and access (issue 4) ----------------------------------------------------------------
    def ping(self) -> None:
        """One round trip on a fresh connection; raises the driver's error when the server is away."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def reset_pool(self) -> None:
        """Drop pooled connections after a lost link, so the next call dials anew (pre-ping is the backstop)."""
        self.engine.dispose()

    def access_problem(self) -> Any:
        """An AccessProblem when the role may not SELECT what the screens read, else None."""
        from dlq_tui.db.access import unreadable_objects

        if self.is_sqlite:
            return None
        with self.engine.connect() as conn:
            return unreadable_objects(conn)

    def plan(self) -> list[str]:
        from dlq_tui.migrate.runner import plan

        return plan(self.engine)

    def dry_run(self) -> Iterator[Any]:
        from dlq_tui.migrate.runner import dry_run

        return dry_run(self._migrator())

    def upgrade(self) -> Iterator[Any]:
        from dlq_tui.migrate.runner import upgrade

        return upgrade(self._migrator())

    def online_dry_run(self) -> Iterator[Any]:
        from dlq_tui.migrate.online import online_dry_run

        return online_dry_run(self._migrator())

    def online_upgrade(self) -> Iterator[Any]:
        """Short locks, batched backfill, resumable; repeated "running" events carry progress."""
        from dlq_tui.migrate.online import online_upgrade

        return online_upgrade(self._migrator(), batch_size=self.online_batch_size, max_rate=self.online_max_rate)

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

        return triage.claim(self.engine, self.operator, ids)

    def release(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        return triage.release(self.engine, self.operator, ids)

    def classify(self, ids: Sequence[int], classification: str | None) -> ActionResult:
        from dlq_tui.db import triage

        return triage.classify(self.engine, self.operator, ids, classification)

    def set_priority(self, ids: Sequence[int], priority: int) -> ActionResult:
        from dlq_tui.db import triage

        return triage.set_priority(self.engine, self.operator, ids, priority)

    def resolve(self, ids: Sequence[int], method: str, note: str | None = None) -> ActionResult:
        from dlq_tui.db import triage

        return triage.resolve(self.engine, self.operator, ids, method, note)

    def reopen(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        return triage.reopen(self.engine, self.operator, ids)

    def requeue(self, ids: Sequence[int]) -> ActionResult:
        from dlq_tui.db import triage

        return triage.requeue(self.engine, self.operator, ids)

    def export(self, ids: Sequence[int], path: Path, *, overwrite: bool = False) -> int:
        from dlq_tui.db import triage

        return triage.export_jsonl(self.engine, ids, path, overwrite=overwrite)
