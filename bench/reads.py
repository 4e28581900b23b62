"""Read-side measurements on a seeded v7 database: pages of pending events and one health refresh.

The pages are fetched with dlq_tui.db.queries.fetch_page, exactly what the events screen runs; the
EXPLAIN ANALYZE excerpts come from queries.page_query, the same SELECT.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects import postgresql

from bench.stats import Spread, repeat_ms
from dlq_tui.db import queries
from dlq_tui.db.models import EventFilter, PageCursor

PAGE_ROWS = 200  # the events screen's page size
DEEP_PAGES = 100


@dataclass
class PageResults:
    first: Spread
    deep: Spread
    first_all: Spread  # include resolved (the `v` toggle)
    deep_all: Spread
    middle: Spread  # a page half way through the pending events (the `end` key / a jump lands there)
    explain_first: str
    explain_deep: str
    explain_middle: str


def cursor_after(conn: Connection, flt: EventFilter, pages: int) -> PageCursor | None:
    """The cursor a user reaches by scrolling `pages` pages down from the top."""
    cursor = None
    for _ in range(pages):
        page = queries.fetch_page(conn, flt, after=cursor, limit=PAGE_ROWS)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return cursor


def middle(conn: Connection) -> PageCursor | None:
    """The key half way through the pending events (found once with OFFSET: setup, not timed)."""
    row = conn.execute(
        text(
            "SELECT priority, created_at, id FROM dead_letter_events WHERE NOT resolved "
            "ORDER BY priority, created_at, id OFFSET (SELECT count(*) / 2 FROM dead_letter_events WHERE NOT resolved) "
            "LIMIT 1"
        )
    ).first()
    return PageCursor(row.priority, row.created_at, row.id) if row else None


def explain(conn: Connection, flt: EventFilter, after: PageCursor | None) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact page SELECT."""
    compiled = queries.page_query(flt, after=after, limit=PAGE_ROWS).compile(dialect=postgresql.psycopg.dialect())
    rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(compiled), compiled.params).all()
    return "\n".join(r[0] for r in rows)


def _page_timing(conn: Connection, flt: EventFilter, after: PageCursor | None, repeats: int) -> Spread:
    def one() -> None:
        page = queries.fetch_page(conn, flt, after=after, limit=PAGE_ROWS)
        assert page.rows, "a benchmark page came back empty"
        conn.rollback()  # each page in its own transaction, as the screen's worker does

    return repeat_ms(one, repeats)


def measure_pages(engine: Engine, repeats: int, *, before_timing: Callable[[], None] | None = None) -> PageResults:
    """First, deep (after DEEP_PAGES pages), middle pages; `before_timing` runs after the cursors were
    found (with whatever indexes exist) and before anything is timed, e.g. to drop indexes."""
    pending, everything = EventFilter(), EventFilter(include_resolved=True)
    with engine.connect() as conn:
        deep_cursor = cursor_after(conn, pending, DEEP_PAGES)
        deep_all_cursor = cursor_after(conn, everything, DEEP_PAGES)
        middle_cursor = middle(conn)
        conn.rollback()
        if before_timing is not None:
            before_timing()
        return PageResults(
            first=_page_timing(conn, pending, None, repeats),
            deep=_page_timing(conn, pending, deep_cursor, repeats),
            first_all=_page_timing(conn, everything, None, repeats),
            deep_all=_page_timing(conn, everything, deep_all_cursor, repeats),
            middle=_page_timing(conn, pending, middle_cursor, repeats),
            explain_first=explain(conn, pending, None),
            explain_deep=explain(conn, pending, deep_cursor),
            explain_middle=explain(conn, pending, middle_cursor),
        )


def measure_health(engine: Engine, repeats: int) -> tuple[Spread, dict[str, Any]]:
    """One refresh = queries.fetch_health in one transaction (what the health screen's worker runs)."""
    figures: dict[str, Any] = {}

    def one() -> None:
        with engine.connect() as conn:
            snap = queries.fetch_health(conn)
            figures["pending"] = snap.figures.pending_events
            figures["processed"] = snap.figures.processed_events
            figures["locked"] = snap.figures.locked_events
            conn.rollback()

    spread = repeat_ms(one, repeats)
    return spread, figures


def measure_health_tiers(engine: Engine, repeats: int) -> dict[str, Spread]:
    """The health screen's two tiers beside the refresh before the split, interleaved in one run (same load):
    `fast` = queries.fetch_health_fast (every --refresh), `view` = queries.fetch_view_reading (every 60 s),
    `before` = queries.fetch_health on the indexes before v7_2 (the screen's refresh until now; the v7_2 indexes are
    dropped inside its transaction and come back with the rollback), `one_read` = fetch_health with them (what
    `dlq-tui health` reads now)."""
    from dlq_tui.db.schema import HEALTH_INDEXES

    readers: dict[str, tuple[Callable[[Connection], object], bool]] = {
        "fast": (queries.fetch_health_fast, False),
        "before": (queries.fetch_health, True),
        "one_read": (queries.fetch_health, False),
        "view": (queries.fetch_view_reading, False),
    }
    samples: dict[str, list[float]] = {name: [] for name in readers}
    for round_ in range(repeats + 1):
        for name, (reader, without_v7_2) in readers.items():
            with engine.connect() as conn:
                if without_v7_2:
                    for index in HEALTH_INDEXES:
                        conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
                started = time.perf_counter()
                reader(conn)
                elapsed = (time.perf_counter() - started) * 1000
                conn.rollback()
            if round_:  # the first round warms the caches
                samples[name].append(elapsed)
    return {name: Spread("ms", tuple(values)) for name, values in samples.items()}


def measure_insert_cost(engine: Engine, *, batches: int, batch: int = 1000) -> dict[str, Spread]:
    """The pipeline's INSERT of `batch` new (pending) rows with and without dlq-tui's health indexes (v7_2),
    alternating so both see the same load; every batch is rolled back, so the table does not grow."""
    from dlq_tui.db.schema import HEALTH_INDEXES
    from dlq_tui.migrate.sql import paging_index_sql

    copy = (
        "INSERT INTO dead_letter_events (source, source_offset, reason, payload, created_at, payload_checksum, "
        "retry_count, priority, classification, idempotency_key) "
        "SELECT source, source_offset + 1000000000, reason, payload, now(), payload_checksum, 0, priority, "
        "classification, md5(random()::text || id::text) FROM dead_letter_events WHERE id > :start ORDER BY id LIMIT :n"
    )
    samples: dict[str, list[float]] = {"with_health_indexes": [], "without_health_indexes": []}
    for i in range(2 * batches + 2):
        present = i % 2 == 0
        with engine.connect() as conn:
            if not present:
                for name in HEALTH_INDEXES:
                    conn.execute(text(f"DROP INDEX {name}"))  # inside the transaction: rolled back below
            started = time.perf_counter()
            conn.execute(text(copy), {"start": (i * batch) % 500_000, "n": batch})
            elapsed = (time.perf_counter() - started) * 1000
            conn.rollback()
        if i >= 2:
            samples["with_health_indexes" if present else "without_health_indexes"].append(elapsed)
    with engine.connect() as conn:
        missing = [n for n in HEALTH_INDEXES if conn.execute(text("SELECT to_regclass(:n)"), {"n": n}).scalar() is None]
    assert not missing, f"{missing} should be back after the rollbacks ({paging_index_sql(missing[0])})"
    return {name: Spread("ms", tuple(values)) for name, values in samples.items()}
