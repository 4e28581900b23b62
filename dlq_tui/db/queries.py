"""Read side: health figures, breakers, runs, analysis, keyset pages of pending events, one event in full.

Plain synchronous functions over a SQLAlchemy Connection; the CLI and the UI (in workers) call the same
ones. Nothing here interprets database text: records carry raw values and rendering is text.py's job.

Paging never uses OFFSET or a count: rows are ordered by the view's sort key (by default (priority,
created_at, id)) and a page continues from the last row's key with a row comparison, so a page costs the
same at any depth when an index on that key exists (see ORDER_KEYS for which index serves which order).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Select, and_, false, func, or_, select, text, true, tuple_

from dlq_tui.db import schema
from dlq_tui.db.models import (
    Analysis,
    Breaker,
    EventDetail,
    EventFilter,
    EventPage,
    EventRow,
    FastFigures,
    FastSnapshot,
    HealthFigures,
    HealthSnapshot,
    JsonText,
    PageCursor,
    ProcessingRun,
    ReasonStat,
    Trends,
    TrendSeries,
    ViewReading,
)
from dlq_tui.migrate.sql import checksum_sql
from dlq_tui.text import json_nesting_exceeds, utf8_len

ev = schema.dead_letter_events

# Caps for the JSONB audit columns in fetch_event: they are normally small arrays, but a hostile or runaway
# writer can make them huge or deeply nested; beyond either cap they are returned as (cut) text, not parsed.
# Parsing only what nests at most AUDIT_JSON_MAX_DEPTH deep means no parsed value handed out can make a
# recursive consumer (json.loads here, json.dumps or repr anywhere later) overflow.
AUDIT_JSON_MAX_CHARS = 1_000_000
AUDIT_JSON_MAX_DEPTH = 64

# Columns EventRow needs, in its field order (never the payload: a page must not drag megabytes along).
_ROW_COLUMNS = (
    ev.c.id,
    ev.c.priority,
    ev.c.classification,
    ev.c.reason,
    ev.c.source,
    ev.c.source_offset,
    ev.c.retry_count,
    ev.c.created_at,
    ev.c.resolved,
    ev.c.processing_lock,
    ev.c.lock_expires_at,
)


# --------------------------------------------------------------------------------------------- health


def fetch_health_figures(conn: Connection) -> HealthFigures:
    """Every field of the dlq_health view, plus the true oldest pending event.

    The view's "oldest_unresolved_event" is MAX(created_at) (the newest); MIN() is computed here as
    ORDER BY created_at LIMIT 1 over NOT resolved, which ix_dead_letter_events_resolved_created serves.
    """
    row = conn.execute(text(f"SELECT * FROM {schema.HEALTH_VIEW}")).mappings().one()
    oldest = conn.execute(
        select(ev.c.created_at).where(ev.c.resolved == false()).order_by(ev.c.created_at).limit(1)
    ).scalar()
    avg = row["avg_resolution_time_seconds"]
    return HealthFigures(
        pending_events=int(row["pending_events"] or 0),
        processed_events=int(row["processed_events"] or 0),
        avg_resolution_time_seconds=None if avg is None else float(avg),
        newest_unresolved_event=row["oldest_unresolved_event"],
        oldest_pending_at=oldest,
        high_retry_events=int(row["high_retry_events"] or 0),
        locked_events=int(row["locked_events"] or 0),
        malicious_events=int(row["malicious_events"] or 0),
        high_priority_events=int(row["high_priority_events"] or 0),
    )


def fetch_fast_figures(conn: Connection) -> FastFigures:
    """The view's figures that indexes answer, in one statement (one plan per figure, one round trip).

    Each counts exactly the rows the view's column counts (same rule, schema.py's names); what serves it:
    pending: an index-only count over a partial pending index; oldest/newest pending: the two ends of
    (resolved, created_at); retry > 5, live locks, malicious, priority 1-3: range scans over their own indexes.
    Processed and the average resolution time need every resolved row: those stay the view's (slow tier).
    """
    pending = ev.c.resolved == false()

    def count(*where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(ev).where(*where).scalar_subquery()

    def pending_end(order: Any) -> Any:
        return select(ev.c.created_at).where(pending).order_by(order).limit(1).scalar_subquery()

    row = conn.execute(
        select(
            count(pending).label("pending"),
            pending_end(ev.c.created_at.asc()).label("oldest"),
            pending_end(ev.c.created_at.desc()).label("newest"),
            count(ev.c.retry_count > schema.HIGH_RETRY_ABOVE).label("high_retry"),
            count(_lock_held()).label("locked"),
            count(ev.c.classification == schema.MALICIOUS).label("malicious"),
            count(ev.c.priority <= schema.HIGH_PRIORITY_UP_TO).label("high_priority"),
        )
    ).one()
    return FastFigures(
        pending_events=int(row.pending),
        oldest_pending_at=row.oldest,
        newest_unresolved_event=row.newest,
        high_retry_events=int(row.high_retry),
        locked_events=int(row.locked),
        malicious_events=int(row.malicious),
        high_priority_events=int(row.high_priority),
    )


HOURS = 24
DAYS = 30


def _bucket_counts(conn: Connection, column: str, start: datetime, width: timedelta, n: int) -> list[int]:
    """Rows whose `column` falls in each of n buckets of `width` from `start`: one range scan over its index."""
    end = start + n * width
    rows = conn.execute(
        text(
            f"SELECT floor(extract(epoch FROM {column} - :start) / :width)::int AS b, count(*) AS n "
            f"FROM {ev.name} WHERE {column} >= :start AND {column} < :end GROUP BY 1"
        ),
        {"start": start, "end": end, "width": width.total_seconds()},
    ).all()
    counts = [0] * n
    for bucket, number in rows:
        if 0 <= bucket < n:
            counts[bucket] = int(number)
    return counts


def _series(conn: Connection, bucket: Literal["hour", "day"], last_start: datetime, n: int) -> TrendSeries:
    width = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = last_start - (n - 1) * width
    return TrendSeries(
        bucket=bucket,
        starts=[start + i * width for i in range(n)],
        arrived=_bucket_counts(conn, ev.c.created_at.name, start, width, n),
        resolved=_bucket_counts(conn, ev.c.resolved_at.name, start, width, n),
    )


def fetch_trends(conn: Connection, now: datetime | None = None) -> Trends:
    """Events arriving and resolved per hour over the last 24 h and per UTC day over the last 30 days.

    Range scans over created_at and resolved_at (ix_dead_letter_events_created, ix_dlq_tui_resolved_at); an event
    resolved without a resolved_at is not counted as resolved in any bucket. `now` (default the server's clock)
    ends the last bucket.
    """
    at = (now or fetch_db_now(conn)).astimezone(UTC)
    hour = at.replace(minute=0, second=0, microsecond=0)
    return Trends(
        hourly=_series(conn, "hour", hour, HOURS),
        daily=_series(conn, "day", hour.replace(hour=0), DAYS),
    )


def fetch_breakers(conn: Connection) -> list[Breaker]:
    cb = schema.dlq_circuit_breaker_state
    rows = conn.execute(select(cb).order_by(cb.c.breaker_name)).mappings()
    return [
        Breaker(
            name=r["breaker_name"],
            state=r["state"],
            failure_count=r["failure_count"],
            failure_threshold=r["failure_threshold"],
            timeout_seconds=r["timeout_seconds"],
            last_failure_time=r["last_failure_time"],
            next_attempt_time=r["next_attempt_time"],
            updated_at=r["updated_at"],
        )
        for r in rows
    ]


def fetch_recent_runs(conn: Connection, limit: int = 10) -> list[ProcessingRun]:
    """The last processing runs, newest first (ix_dlq_metrics_started serves the order)."""
    m = schema.dlq_processing_metrics
    rows = conn.execute(select(m).order_by(m.c.started_at.desc(), m.c.id.desc()).limit(limit)).mappings()
    return [
        ProcessingRun(
            session_id=r["processing_session_id"],
            method=r["processing_method"],
            batch_size=r["batch_size"],
            processed=r["processed_count"],
            repaired=r["repaired_count"],
            failed=r["failed_count"],
            skipped=r["skipped_count"],
            duration_ms=r["processing_duration_ms"],
            circuit_breaker_triggered=r["circuit_breaker_triggered"],
            started_at=r["started_at"],
            completed_at=r["completed_at"],
        )
        for r in rows
    ]


def fetch_analysis(conn: Connection, top: int = 10) -> Analysis:
    """Failure patterns among pending events: top reasons (count, average retries), by priority, by class."""
    pending = ev.c.resolved == false()
    n = func.count().label("n")
    reasons = conn.execute(
        select(ev.c.reason, n, func.avg(ev.c.retry_count).label("avg_retries"))
        .where(pending)
        .group_by(ev.c.reason)
        .order_by(n.desc(), ev.c.reason)
        .limit(top)
    ).all()
    by_priority = conn.execute(
        select(ev.c.priority, n).where(pending).group_by(ev.c.priority).order_by(ev.c.priority)
    ).all()
    by_class = conn.execute(
        select(ev.c.classification, n)
        .where(pending)
        .group_by(ev.c.classification)
        .order_by(n.desc(), ev.c.classification.asc().nulls_last())
    ).all()
    return Analysis(
        top_reasons=[ReasonStat(r.reason, int(r.n), float(r.avg_retries or 0)) for r in reasons],
        pending_by_priority=[(int(p), int(c)) for p, c in by_priority],
        pending_by_classification=[(cls, int(c)) for cls, c in by_class],
    )


def fetch_db_now(conn: Connection) -> datetime:
    return conn.execute(select(func.now())).scalar_one()


def fetch_health(conn: Connection, *, runs: int = 10, top: int = 10, trends: bool = False) -> HealthSnapshot:
    """Everything `dlq-tui health` shows (the view's row as the reference), read in one transaction (one clock)."""
    return HealthSnapshot(
        figures=fetch_health_figures(conn),
        breakers=fetch_breakers(conn),
        recent_runs=fetch_recent_runs(conn, runs),
        analysis=fetch_analysis(conn, top),
        db_now=fetch_db_now(conn),
        trends=fetch_trends(conn) if trends else None,
    )


def fetch_health_fast(conn: Connection, *, runs: int = 10, top: int = 10) -> FastSnapshot:
    """The health screen's frequent refresh: every figure an index answers, breakers, runs, the breakdowns."""
    return FastSnapshot(
        figures=fetch_fast_figures(conn),
        breakers=fetch_breakers(conn),
        recent_runs=fetch_recent_runs(conn, runs),
        analysis=fetch_analysis(conn, top),
        db_now=fetch_db_now(conn),
    )


def fetch_view_reading(conn: Connection, trends_now: datetime | None = None) -> ViewReading:
    """The health screen's slow tier: the dlq_health row (a pass over the table) and the trends."""
    return ViewReading(
        figures=fetch_health_figures(conn), trends=fetch_trends(conn, trends_now), db_now=fetch_db_now(conn)
    )


# ----------------------------------------------------------------------------------------------- pages


def escape_like(value: str) -> str:
    """User text as a literal LIKE pattern fragment: %, _ and the escape character itself match literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _lock_held() -> ColumnElement[bool]:
    # Same rule as the view's locked_events and as triage: a lock whose expiry has passed is free.
    return and_(ev.c.processing_lock.is_not(None), ev.c.lock_expires_at > func.now())


def filter_conditions(flt: EventFilter) -> list[ColumnElement[bool]]:
    """WHERE conditions for a filter (shared by pages, page_starting_at and anyone counting matches)."""
    conds: list[ColumnElement[bool]] = []
    if not flt.include_resolved:
        conds.append(ev.c.resolved == false())
    if flt.max_priority is not None:
        conds.append(ev.c.priority <= flt.max_priority)
    if flt.classification is not None:
        conds.append(
            ev.c.classification.is_(None) if flt.classification == "" else ev.c.classification == flt.classification
        )
    if flt.reason is not None:
        conds.append(ev.c.reason == flt.reason)
    if flt.text:
        pattern = f"%{escape_like(flt.text)}%"
        conds.append(or_(ev.c.source.ilike(pattern, escape="\\"), ev.c.reason.ilike(pattern, escape="\\")))
    if flt.lock == "locked":
        conds.append(_lock_held())
    elif flt.lock == "free":
        conds.append(
            or_(ev.c.processing_lock.is_(None), ev.c.lock_expires_at.is_(None), ev.c.lock_expires_at <= func.now())
        )
    return conds


# Sort order -> (key columns, descending). One direction for every column, so that the keyset predicate is a
# single row comparison that matches the ORDER BY exactly (mixed directions would need an OR chain).
# Measured on 1M rows (700k pending), a 200-row page at any depth: "priority" 3-5 ms (ix_dlq_tui_pending_order),
# "newest" 3-4 ms (the created_at index backwards, ties sorted incrementally), "retries" 250-360 ms: the
# retry_count index only presorts, so each page sorts a whole retry group. An index on (retry_count, created_at,
# id) WHERE NOT resolved made it 3.7 ms (27 MB, 1.5 s to build); not added: the UI runs pages in a worker.
ORDER_KEYS: dict[str, tuple[tuple[Any, ...], bool]] = {
    "priority": ((ev.c.priority, ev.c.created_at, ev.c.id), False),
    "newest": ((ev.c.created_at, ev.c.id), True),
    "retries": ((ev.c.retry_count, ev.c.created_at, ev.c.id), True),
}


def _key_of(columns: tuple[Any, ...], cursor: PageCursor) -> Any:
    return tuple_(*(getattr(cursor, column.name) for column in columns))


def page_query(
    flt: EventFilter,
    *,
    after: PageCursor | None = None,
    before: PageCursor | None = None,
    start_at: PageCursor | None = None,
    limit: int = 200,
) -> Select[Any]:
    """The SELECT behind fetch_page (exposed so tests and benchmarks can EXPLAIN exactly what runs).

    "after" means later in flt.order, whatever its direction: the comparison flips with the order.
    """
    columns, descending = ORDER_KEYS[flt.order]
    key = tuple_(*columns)
    conds = filter_conditions(flt)
    if after is not None:
        cursor = _key_of(columns, after)
        conds.append(key < cursor if descending else key > cursor)
    if before is not None:
        cursor = _key_of(columns, before)
        conds.append(key > cursor if descending else key < cursor)
    if start_at is not None:
        cursor = _key_of(columns, start_at)
        conds.append(key <= cursor if descending else key >= cursor)
    # A `before` page reads backwards from its cursor (then fetch_page puts it back in order).
    reverse = descending != (before is not None)
    order_by = [c.desc() if reverse else c.asc() for c in columns]
    return select(*_ROW_COLUMNS, func.now().label("db_now")).where(*conds).order_by(*order_by).limit(limit + 1)


def _to_row(r: Any) -> EventRow:
    return EventRow(
        id=r.id,
        priority=r.priority,
        classification=r.classification,
        reason=r.reason,
        source=r.source,
        source_offset=r.source_offset,
        retry_count=r.retry_count,
        created_at=r.created_at,
        resolved=r.resolved,
        processing_lock=r.processing_lock,
        lock_expires_at=r.lock_expires_at,
        db_now=r.db_now,
    )


def fetch_page(
    conn: Connection,
    flt: EventFilter,
    *,
    after: PageCursor | None = None,
    before: PageCursor | None = None,
    limit: int = 200,
) -> EventPage:
    """One page of events matching flt, in flt.order (by default (priority, created_at, id)).

    after=None, before=None: the first page. after=c: the rows following c. before=c: the `limit` rows
    just preceding c (still returned in ascending order), for scrolling back up a bounded window.
    next_cursor is the key of the page's last row when more rows follow it, else None; for a `before`
    page rows always follow (c itself), so next_cursor is its last row's key. A `before` page shorter
    than `limit` means the top has been reached.
    """
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    return _run_page(
        conn, page_query(flt, after=after, before=before, limit=limit), limit, backwards=before is not None
    )


def _run_page(conn: Connection, query: Select[Any], limit: int, *, backwards: bool) -> EventPage:
    rows = [_to_row(r) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return EventPage(rows=rows, next_cursor=rows[-1].cursor if rows else None)
    return EventPage(rows=rows, next_cursor=rows[-1].cursor if more and rows else None)


def page_starting_at(conn: Connection, flt: EventFilter, event_id: int, limit: int = 200) -> EventPage | None:
    """The page whose first row is event_id (jump to id); None when it does not exist or flt excludes it."""
    found = conn.execute(
        select(ev.c.priority, ev.c.created_at, ev.c.id, ev.c.retry_count).where(
            ev.c.id == event_id, *filter_conditions(flt)
        )
    ).first()
    if found is None:
        return None
    start = PageCursor(found.priority, found.created_at, found.id, found.retry_count)
    return _run_page(conn, page_query(flt, start_at=start, limit=limit), limit, backwards=False)


def matching_ids(conn: Connection, flt: EventFilter) -> list[int]:
    """The ids of every event flt selects, right now, in flt's order (an explicit set to export)."""
    columns, descending = ORDER_KEYS[flt.order]
    order_by = [c.desc() if descending else c.asc() for c in columns]
    return list(conn.execute(select(ev.c.id).where(*filter_conditions(flt)).order_by(*order_by)).scalars())


def view_showing(conn: Connection, flt: EventFilter, event_id: int) -> EventFilter | None:
    """The narrowest view that lists event_id: flt itself, flt with resolved events too, no filter (pending
    only, then with resolved events), always in flt's order. None when there is no such event."""
    views = [
        flt,
        replace(flt, include_resolved=True),
        EventFilter(order=flt.order),
        EventFilter(include_resolved=True, order=flt.order),
    ]
    shows = [and_(true(), *filter_conditions(view)).label(f"v{i}") for i, view in enumerate(views)]
    found = conn.execute(select(*shows).where(ev.c.id == event_id)).first()
    if found is None:
        return None
    return next((view for view, listed in zip(views, found, strict=True) if listed), None)


def locate_event(
    conn: Connection, flt: EventFilter, event_id: int, limit: int = 200
) -> tuple[EventFilter, EventPage] | None:
    """Jump to any event: the page that starts at it, in the narrowest view that lists it (see view_showing)."""
    view = view_showing(conn, flt, event_id)
    if view is None:
        return None
    page = page_starting_at(conn, view, event_id, limit)
    return None if page is None else (view, page)


def known_reasons(conn: Connection, limit: int = 50) -> list[str]:
    """Distinct reasons of pending events, most frequent first (choices for the reason filter)."""
    n = func.count().label("n")
    rows = conn.execute(
        select(ev.c.reason, n)
        .where(ev.c.resolved == false())
        .group_by(ev.c.reason)
        .order_by(n.desc(), ev.c.reason)
        .limit(limit)
    )
    return [r.reason for r in rows]


# ---------------------------------------------------------------------------------------------- detail


def _audit_json(raw: str | None, total_bytes: int | None, cut: bool | None) -> Any:
    """Parse an audit column's text; a value cut, too deep or unparseable comes back as JsonText."""
    if raw is None:
        return None
    stored = JsonText(raw, utf8_len(raw) if total_bytes is None else total_bytes)
    if cut or json_nesting_exceeds(raw, AUDIT_JSON_MAX_DEPTH):
        return stored
    try:
        return json.loads(raw)
    except ValueError:  # not JSON after all, or a number too long for int(): show what is stored
        return stored


_DETAIL_SQL = text(
    f"""
    SELECT e.id, e.priority, e.classification, e.reason, e.source, e.source_offset, e.retry_count,
           e.created_at, e.resolved, e.processing_lock, e.lock_expires_at, now() AS db_now,
           e.ingest_id, e.resolved_at, e.payload_checksum, e.idempotency_key, e.resolution_method,
           e.updated_at, e.last_processed_at,
           left(p.t, :chars) AS payload_text,
           length(p.t) AS payload_total_chars,
           octet_length(p.t) AS payload_total_bytes,
           {checksum_sql("p.t")} AS computed_checksum,
           left(j.metadata, :chars) AS metadata_text,
           octet_length(j.metadata) AS metadata_total_bytes,
           left(j.errors, :audit) AS error_history,
           octet_length(j.errors) AS error_history_bytes,
           length(j.errors) > :audit AS error_history_cut,
           left(j.attempts, :audit) AS processing_attempts,
           octet_length(j.attempts) AS processing_attempts_bytes,
           length(j.attempts) > :audit AS processing_attempts_cut
    FROM dead_letter_events e
    CROSS JOIN LATERAL (SELECT e.payload::text AS t) p
    CROSS JOIN LATERAL (
        SELECT e.metadata_json::text AS metadata, e.error_history::text AS errors,
               e.processing_attempts::text AS attempts
    ) j
    WHERE e.id = :id
    """
)


def fetch_event(conn: Connection, event_id: int, *, payload_chars: int = 20_000) -> EventDetail | None:
    """Every column of one event, the payload cut to payload_chars server-side (metadata too).

    The checksum is recomputed by the server over payload::text (the text as stored), exactly like the
    migration computed it, so a match proves the stored payload is the one that was checksummed.
    Every JSON column is fetched as text (psycopg's own json loader recurses and overflows on deep values);
    the audit columns are parsed here only when small and shallow enough, else handed over as JsonText, so a
    pathological value (megabytes, thousands of levels deep) is shown by the bounded printer instead of raising.
    """
    r = conn.execute(_DETAIL_SQL, {"id": event_id, "chars": payload_chars, "audit": AUDIT_JSON_MAX_CHARS}).first()
    if r is None:
        return None
    return EventDetail(
        row=_to_row(r),
        ingest_id=r.ingest_id,
        resolved_at=r.resolved_at,
        payload_text=r.payload_text,
        payload_total_chars=r.payload_total_chars,
        payload_total_bytes=r.payload_total_bytes,
        metadata_text=r.metadata_text,
        metadata_total_bytes=r.metadata_total_bytes,
        payload_checksum=r.payload_checksum,
        computed_checksum=r.computed_checksum,
        idempotency_key=r.idempotency_key,
        # Cut or not is decided by the server, in its own units: characters, but bytes in a SQL_ASCII database.
        error_history=_audit_json(r.error_history, r.error_history_bytes, r.error_history_cut),
        processing_attempts=_audit_json(r.processing_attempts, r.processing_attempts_bytes, r.processing_attempts_cut),
        resolution_method=r.resolution_method,
        updated_at=r.updated_at,
        last_processed_at=r.last_processed_at,
    )


def fetch_payload_slice(conn: Connection, event_id: int, start_char: int, length: int) -> str:
    """Characters [start_char, start_char + length) of payload::text (0-based), cut server-side.

    Returns "" past the end or for an unknown id; for paging through a payload too big to fetch whole.
    """
    value = conn.execute(
        text("SELECT substr(payload::text, :start, :len) FROM dead_letter_events WHERE id = :id"),
        {"start": max(0, start_char) + 1, "len": max(0, length), "id": event_id},
    ).scalar()
    return value or ""
