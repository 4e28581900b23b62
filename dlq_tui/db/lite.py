"""The DLQ of a SQLite database: the Cowrie processor's default, whose dead_letter_events keeps the legacy shape.

Schema v7 is PostgreSQL-only (the processor skips it on SQLite and only moves the marker to 7), so here there are
the ten legacy columns and nothing else. What they can answer works like on PostgreSQL and returns the same records
(db/models.py): health figures, keyset pages in created order, one event in full, filters, resolve/reopen, export.
Everything v7 adds (locks, priority, classification, retry counts, the audit timelines, redrive, purge, online
migration) raises Unavailable with the one reason V7_ONLY.

Storage facts this module is built on, all from SQLite itself and SQLAlchemy's way of writing to it:
* created_at / resolved_at are text ("2024-03-01 10:00:00.000000", naive UTC). The columns have NUMERIC affinity,
  so a hand-written value may also be an integer or garbage text: such a value reads as "no timestamp" (None in
  the figures, UNDATED on a row) and never raises. Sort and page keys use the stored value itself, so the
  created_at index serves every page and the order is the processor's (its values all have one format).
* payload / metadata_json are JSON text, but a value with NUMERIC affinity may come back as a number: every read
  casts to TEXT. Bytes that are not UTF-8 come back as surrogateescape stand-ins (text.py shows them as \\xNN).
* Concurrency is SQLite's own: one writer at a time. Every connection waits up to a busy timeout for a lock; a
  write that still finds the database locked is retried a few times (on_busy hears LOCKED_RETRYING each time)
  and then refused with one line, nothing changed.
* No audit column exists: resolve and reopen append their audit entry to metadata_json under AUDIT_KEY (an array),
  when metadata_json is NULL or a JSON object. Any other stored value is left exactly as it is (no audit then).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    false,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import NullType

from dlq_tui.db import schema
from dlq_tui.db.models import (
    ActionResult,
    Analysis,
    EventDetail,
    EventFilter,
    EventPage,
    EventRow,
    FastFigures,
    FastSnapshot,
    HealthFigures,
    HealthSnapshot,
    PageCursor,
    ReasonStat,
    Trends,
    TrendSeries,
    ViewReading,
)
from dlq_tui.db.queries import escape_like
from dlq_tui.db.triage import (
    BATCH_SIZE,
    BUSY,
    NO_SUCH_EVENT,
    ActionRefused,
    Operator,
    checked_resolution,
    unique_ids,
    write_jsonl,
)

T = TypeVar("T")

# The one reason every v7-only feature gives on SQLite.
V7_ONLY = "v7 is PostgreSQL-only"
LOCKED_RETRYING = "database is locked, retrying"
BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another connection's lock (sqlite3's busy handler)
BUSY_ATTEMPTS = 3  # a write that still finds the database locked is tried this often in all
AUDIT_KEY = "operator_audit"
# What an event row says for a created_at that is not a timestamp (it still sorts by its stored value).
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)
# The v7 defaults a legacy row reads as (what the migration would give it): Normal priority, no retries, no lock.
LEGACY_PRIORITY = 5
HOURLY_BUCKETS = 24  # trends: the last 24 hours, the current one last
DAILY_BUCKETS = 30  # and the last 30 UTC days, today last (the PostgreSQL health's trends)


class Unavailable(Exception):
    """A v7-only feature asked of a SQLite database; str(exc) is one line ending in the reason."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} unavailable: {V7_ONLY}")
        self.feature = feature


# The legacy columns, typed for reading SQLite as it is: no conversion that could raise on a stored value.
_LEGACY = tuple(c.name for c in schema.dead_letter_events.c if c.name not in schema.V7_COLUMNS)
_meta = MetaData()
ev = Table(
    schema.dead_letter_events.name,
    _meta,
    Column("id", Integer, primary_key=True),
    Column("ingest_id", NullType),
    Column("source", NullType),
    Column("source_offset", NullType),
    Column("reason", NullType),
    Column("payload", NullType),
    Column("metadata_json", NullType),
    Column("created_at", NullType),
    Column("resolved", Integer),
    Column("resolved_at", NullType),
)
assert tuple(c.name for c in ev.c) == _LEGACY, "lite.ev must name exactly the legacy columns of schema.py"


# ------------------------------------------------------------------------------------------------ engine


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any, *, read_only: bool) -> None:
    # Hostile payloads may hold bytes that are not UTF-8; the default text factory would raise on the whole page.
    dbapi_conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    if read_only:
        dbapi_conn.execute("PRAGMA query_only = ON")


def lite_engine(dsn: str, *, read_only: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_S, **kwargs: Any) -> Engine:
    """An engine for a sqlite:/// DSN: the busy timeout on every connection, text decoded leniently."""
    connect_args = {"timeout": busy_timeout_s, **kwargs.pop("connect_args", {})}
    engine = create_engine(dsn, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", lambda c, r: _on_connect(c, r, read_only=read_only))
    return engine


def database_path(dsn: str) -> Path | None:
    """The file a sqlite:/// DSN names; None for an in-memory database."""
    raw = dsn.split("///", 1)[-1].split("?", 1)[0]
    return None if raw in ("", ":memory:") else Path(raw)


def is_locked(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED, as the sqlite3 driver reports them."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig).lower()


def has_events_table(conn: Connection) -> bool:
    found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"), {"n": ev.name}).first()
    return found is not None


# ----------------------------------------------------------------------------------------------- values


def parse_time(raw: Any) -> datetime | None:
    """A stored timestamp as an aware UTC datetime; None for NULL, numbers and text that is not ISO 8601."""
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """How SQLAlchemy's DateTime writes to SQLite (naive UTC, microseconds): the processor's own format."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _julian(column: Any) -> ColumnElement[Any]:
    """julianday() of a stored timestamp, NULL when it is not one (a number would read as a Julian day)."""
    return case((func.typeof(column) == "text", func.julianday(column)), else_=None)


_NOW_SQL = func.strftime("%Y-%m-%d %H:%M:%f", "now")


def fetch_db_now(conn: Connection) -> datetime:
    now = parse_time(conn.execute(select(_NOW_SQL)).scalar_one())
    assert now is not None  # SQLite's own clock always parses
    return now


# ----------------------------------------------------------------------------------------------- health


@dataclass(frozen=True)
class LiteSeries:
    """Events arriving (created_at) and resolved (resolved_at) per bucket, oldest bucket first.

    The fields of the PostgreSQL health's trend series, so either can be drawn and documented the same way.
    """

    bucket: Literal["hour", "day"]
    starts: list[datetime]  # each bucket's start (UTC); a bucket covers [start, start + one bucket)
    arrived: list[int]
    resolved: list[int]


@dataclass(frozen=True)
class LiteHealth:
    """The figures the legacy columns can answer (v7's are unavailable: V7_ONLY)."""

    pending_events: int
    processed_events: int
    avg_resolution_time_seconds: float | None
    oldest_pending_at: datetime | None
    newest_pending_at: datetime | None
    undated_pending: int  # pending events whose created_at is not a timestamp (not in oldest/newest)
    pending_by_reason: list[tuple[str, int]]  # most first
    hourly: LiteSeries  # events arriving / resolved per hour, the last HOURLY_BUCKETS hours
    daily: LiteSeries  # per UTC day, the last DAILY_BUCKETS days
    db_now: datetime


# The dlq_health figures a legacy table cannot answer (HealthFigures names), all for V7_ONLY.
V7_ONLY_FIGURES: tuple[str, ...] = ("high_retry_events", "locked_events", "malicious_events", "high_priority_events")


def _counts(conn: Connection, column: Any, fmt: str, starts: list[datetime]) -> list[int]:
    """Rows per bucket of a timestamp column (a value that is not a timestamp is in none)."""
    bucket = func.strftime(fmt, column).label("bucket")
    rows = conn.execute(
        select(bucket, func.count().label("n"))
        .where(_julian(column) >= func.julianday(format_time(starts[0])))
        .group_by(bucket)
    ).all()
    counts = {parse_time(r.bucket): int(r.n) for r in rows}
    return [counts.get(start, 0) for start in starts]


def _series(conn: Connection, bucket: Literal["hour", "day"], last_start: datetime, count: int) -> LiteSeries:
    width, fmt = (timedelta(hours=1), "%Y-%m-%d %H:00:00") if bucket == "hour" else (timedelta(days=1), "%Y-%m-%d")
    starts = [last_start - (count - 1 - i) * width for i in range(count)]
    return LiteSeries(
        bucket, starts, _counts(conn, ev.c.created_at, fmt, starts), _counts(conn, ev.c.resolved_at, fmt, starts)
    )


def fetch_lite_health(conn: Connection, *, top: int = 10) -> LiteHealth:
    """Every figure (call it in one read transaction): counts, ages, pending by reason, the trends."""
    pending = ev.c.resolved == false()
    created = _julian(ev.c.created_at)
    row = conn.execute(
        select(
            func.count().filter(pending).label("pending"),
            func.count().filter(ev.c.resolved != false()).label("processed"),
            func.avg(
                case((ev.c.resolved != false(), (_julian(ev.c.resolved_at) - created) * 86400.0), else_=None)
            ).label("avg_resolution"),
            func.min(case((pending, created), else_=None)).label("oldest"),
            func.max(case((pending, created), else_=None)).label("newest"),
            func.count().filter(pending, created.is_(None)).label("undated"),
        )
    ).one()
    n = func.count().label("n")
    reasons = conn.execute(
        select(cast(ev.c.reason, Text).label("reason"), n)
        .where(pending)
        .group_by(ev.c.reason)
        .order_by(n.desc(), ev.c.reason)
        .limit(top)
    ).all()
    now = fetch_db_now(conn)
    hour = now.replace(minute=0, second=0, microsecond=0)
    return LiteHealth(
        pending_events=int(row.pending or 0),
        processed_events=int(row.processed or 0),
        avg_resolution_time_seconds=None if row.avg_resolution is None else float(row.avg_resolution),
        oldest_pending_at=_from_julian(row.oldest),
        newest_pending_at=_from_julian(row.newest),
        undated_pending=int(row.undated or 0),
        pending_by_reason=[(str(r.reason), int(r.n)) for r in reasons],
        hourly=_series(conn, "hour", hour, HOURLY_BUCKETS),
        daily=_series(conn, "day", hour.replace(hour=0), DAILY_BUCKETS),
        db_now=now,
    )


_JULIAN_EPOCH = 2440587.5  # julianday('1970-01-01 00:00:00')


def _from_julian(value: float | None) -> datetime | None:
    if value is None:
        return None
    # Rounded to the millisecond: julianday() has about that precision, and the figure is shown, never compared.
    seconds = round((float(value) - _JULIAN_EPOCH) * 86400.0, 3)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def as_snapshot(health: LiteHealth) -> HealthSnapshot:
    """The figures in the shape PostgreSQL's health has, for the shared rules and screens.

    The v7-only figures read 0 here (no priority, lock or classification exists to count); whoever shows them
    says V7_ONLY instead (V7_ONLY_FIGURES), and no breaker or processing run is recorded on SQLite.
    """
    pending = health.pending_events
    return HealthSnapshot(
        figures=HealthFigures(
            pending_events=pending,
            processed_events=health.processed_events,
            avg_resolution_time_seconds=health.avg_resolution_time_seconds,
            newest_unresolved_event=health.newest_pending_at,
            oldest_pending_at=health.oldest_pending_at,
            high_retry_events=0,
            locked_events=0,
            malicious_events=0,
            high_priority_events=0,
        ),
        breakers=[],
        recent_runs=[],
        analysis=Analysis(
            top_reasons=[ReasonStat(reason, n, 0.0) for reason, n in health.pending_by_reason],
            pending_by_priority=[(LEGACY_PRIORITY, pending)] if pending else [],
            pending_by_classification=[(None, pending)] if pending else [],
        ),
        db_now=health.db_now,
        trends=as_trends(health),
    )


def as_trends(health: LiteHealth) -> Trends:
    """The trend series as the PostgreSQL health has them (the same fields)."""
    return Trends(hourly=TrendSeries(**asdict(health.hourly)), daily=TrendSeries(**asdict(health.daily)))


def as_fast_snapshot(health: LiteHealth) -> FastSnapshot:
    """The health screen's frequent tier from the legacy figures (the v7-only ones 0: see as_snapshot)."""
    snapshot = as_snapshot(health)
    f = snapshot.figures
    return FastSnapshot(
        figures=FastFigures(
            pending_events=f.pending_events,
            oldest_pending_at=f.oldest_pending_at,
            newest_unresolved_event=f.newest_unresolved_event,
            high_retry_events=0,
            locked_events=0,
            malicious_events=0,
            high_priority_events=0,
        ),
        breakers=[],
        recent_runs=[],
        analysis=snapshot.analysis,
        db_now=health.db_now,
    )


def as_view_reading(health: LiteHealth) -> ViewReading:
    """The health screen's slow tier: every figure and the trends."""
    return ViewReading(figures=as_snapshot(health).figures, trends=as_trends(health), db_now=health.db_now)


def read_consistent(engine: Engine, reader: Callable[[Connection], T]) -> T:
    """reader in one read transaction (every figure from one state of the file), retried while locked."""

    def run() -> T:
        with engine.connect() as conn:
            # The driver opens no transaction for a SELECT: without BEGIN each statement would see its own state.
            conn.exec_driver_sql("BEGIN")
            try:
                return reader(conn)
            finally:
                conn.rollback()

    return retry_read(run)


# ------------------------------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class LiteCursor(PageCursor):
    """PageCursor plus the stored created_at value, which is the page key here (it may not be a timestamp)."""

    created_raw: Any = None


@dataclass(frozen=True)
class LiteRow(EventRow):
    """EventRow with the stored created_at value (the page key) next to its parsed form."""

    created_raw: Any = None

    @property
    def cursor(self) -> LiteCursor:
        return LiteCursor(self.priority, self.created_at, self.id, self.retry_count, self.created_raw)


def _check_filter(flt: EventFilter) -> None:
    if flt.max_priority is not None:
        raise Unavailable("the priority filter")
    if flt.classification is not None:
        raise Unavailable("the classification filter")
    if flt.lock != "any":
        raise Unavailable("the lock filter")
    if flt.order == "retries":
        raise Unavailable("the retries order")


def filter_conditions(flt: EventFilter) -> list[ColumnElement[bool]]:
    """WHERE conditions over the legacy columns; text matches source, reason and the payload (LIKE, escaped)."""
    _check_filter(flt)
    conds: list[ColumnElement[bool]] = []
    if not flt.include_resolved:
        conds.append(ev.c.resolved == false())
    if flt.reason is not None:
        conds.append(ev.c.reason == flt.reason)
    if flt.text:
        pattern = f"%{escape_like(flt.text)}%"
        conds.append(
            or_(*(cast(column, Text).like(pattern, escape="\\") for column in (ev.c.source, ev.c.reason, ev.c.payload)))
        )
    return conds


def _descending(flt: EventFilter) -> bool:
    return flt.order == "newest"  # "priority" is created order here: every legacy event has the same priority


def _key_of(cursor: PageCursor) -> ColumnElement[Any]:
    raw = cursor.created_raw if isinstance(cursor, LiteCursor) else format_time(cursor.created_at)
    return tuple_(type_coerce(literal(raw), NullType), literal(cursor.id))


def page_query(
    flt: EventFilter,
    *,
    after: PageCursor | None = None,
    before: PageCursor | None = None,
    start_at: PageCursor | None = None,
    limit: int = 200,
) -> Select[Any]:
    """Keyset over (created_at, id) as stored: the legacy created_at index (which holds the rowid) serves it."""
    descending = _descending(flt)
    key = tuple_(ev.c.created_at, ev.c.id)
    conds = filter_conditions(flt)
    if after is not None:
        conds.append(key < _key_of(after) if descending else key > _key_of(after))
    if before is not None:
        conds.append(key > _key_of(before) if descending else key < _key_of(before))
    if start_at is not None:
        conds.append(key <= _key_of(start_at) if descending else key >= _key_of(start_at))
    reverse = descending != (before is not None)
    order_by = [c.desc() if reverse else c.asc() for c in (ev.c.created_at, ev.c.id)]
    return select(*_ROW_COLUMNS, _NOW_SQL.label("db_now")).where(*conds).order_by(*order_by).limit(limit + 1)


_ROW_COLUMNS = (
    ev.c.id,
    cast(ev.c.reason, Text).label("reason"),
    cast(ev.c.source, Text).label("source"),
    ev.c.source_offset,
    ev.c.created_at,
    ev.c.resolved,
)


def _source_offset(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_row(r: Any) -> LiteRow:
    return LiteRow(
        id=r.id,
        priority=LEGACY_PRIORITY,
        classification=None,
        reason=r.reason if r.reason is not None else "",
        source=r.source,
        source_offset=_source_offset(r.source_offset),
        retry_count=0,
        created_at=parse_time(r.created_at) or UNDATED,
        resolved=bool(r.resolved),
        processing_lock=None,
        lock_expires_at=None,
        db_now=parse_time(r.db_now) or UNDATED,
        created_raw=r.created_at,
    )


def _run_page(conn: Connection, query: Select[Any], limit: int, *, backwards: bool) -> EventPage:
    rows: list[EventRow] = [_to_row(r) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return EventPage(rows=rows, next_cursor=rows[-1].cursor if rows else None)
    return EventPage(rows=rows, next_cursor=rows[-1].cursor if more and rows else None)


def fetch_page(
    conn: Connection,
    flt: EventFilter,
    *,
    after: PageCursor | None = None,
    before: PageCursor | None = None,
    limit: int = 200,
) -> EventPage:
    """queries.fetch_page's contract (after / before / next_cursor) over the legacy table."""
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    query = page_query(flt, after=after, before=before, limit=limit)
    return _run_page(conn, query, limit, backwards=before is not None)


def page_starting_at(conn: Connection, flt: EventFilter, event_id: int, limit: int = 200) -> EventPage | None:
    found = conn.execute(select(ev.c.created_at, ev.c.id).where(ev.c.id == event_id, *filter_conditions(flt))).first()
    if found is None:
        return None
    start = LiteCursor(LEGACY_PRIORITY, UNDATED, found.id, 0, found.created_at)
    return _run_page(conn, page_query(flt, start_at=start, limit=limit), limit, backwards=False)


def matching_ids(conn: Connection, flt: EventFilter) -> list[int]:
    descending = _descending(flt)
    order_by = [c.desc() if descending else c.asc() for c in (ev.c.created_at, ev.c.id)]
    return list(conn.execute(select(ev.c.id).where(*filter_conditions(flt)).order_by(*order_by)).scalars())


def locate_event(
    conn: Connection, flt: EventFilter, event_id: int, limit: int = 200
) -> tuple[EventFilter, EventPage] | None:
    """queries.locate_event's rule: the narrowest of flt, flt with resolved, no filter, no filter with resolved."""
    from dataclasses import replace

    views = [
        flt,
        replace(flt, include_resolved=True),
        EventFilter(order=flt.order),
        EventFilter(include_resolved=True, order=flt.order),
    ]
    for view in views:
        page = page_starting_at(conn, view, event_id, limit)
        if page is not None:
            return view, page
    return None


def known_reasons(conn: Connection, limit: int = 50) -> list[str]:
    n = func.count().label("n")
    rows = conn.execute(
        select(cast(ev.c.reason, Text).label("reason"), n)
        .where(ev.c.resolved == false(), ev.c.reason.is_not(None))
        .group_by(ev.c.reason)
        .order_by(n.desc(), ev.c.reason)
        .limit(limit)
    )
    return [r.reason for r in rows]


# ------------------------------------------------------------------------------------------------ detail


def _utf8_bytes(value: str) -> int:
    return len(value.encode("utf-8", "surrogateescape"))


def fetch_event(conn: Connection, event_id: int, *, payload_chars: int = 20_000) -> EventDetail | None:
    """Every legacy column of one event; the v7 columns are None (the UI shows them as absent)."""
    r = conn.execute(
        select(
            *_ROW_COLUMNS,
            _NOW_SQL.label("db_now"),
            cast(ev.c.ingest_id, Text).label("ingest_id"),
            ev.c.resolved_at,
            cast(ev.c.payload, Text).label("payload"),
            cast(ev.c.metadata_json, Text).label("metadata"),
        ).where(ev.c.id == event_id)
    ).first()
    if r is None:
        return None
    payload = r.payload if r.payload is not None else ""
    metadata = r.metadata
    return EventDetail(
        row=_to_row(r),
        ingest_id=r.ingest_id,
        resolved_at=parse_time(r.resolved_at),
        payload_text=payload[:payload_chars],
        payload_total_chars=len(payload),
        payload_total_bytes=_utf8_bytes(payload),
        metadata_text=None if metadata is None else metadata[:payload_chars],
        metadata_total_bytes=None if metadata is None else _utf8_bytes(metadata),
        payload_checksum=None,
        # What v7 would store for this text (SHA-256 of the stored payload text, lowercase hex).
        computed_checksum=hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest(),
        idempotency_key=None,
        error_history=None,
        processing_attempts=None,
        resolution_method=None,
        updated_at=None,
        last_processed_at=None,
    )


def fetch_payload_slice(conn: Connection, event_id: int, start_char: int, length: int) -> str:
    value = conn.execute(
        select(func.substr(cast(ev.c.payload, Text), max(0, start_char) + 1, max(0, length))).where(ev.c.id == event_id)
    ).scalar()
    return value or ""


# ------------------------------------------------------------------------------------------------ writes


@contextmanager
def write_transaction(
    engine: Engine, partial: ActionResult | None = None, on_busy: Callable[[str], None] | None = None
) -> Iterator[Connection]:
    """BEGIN IMMEDIATE (the write lock up front, so nothing half-done can meet a lock), retried while locked.

    Each attempt waits the busy timeout inside SQLite; after BUSY_ATTEMPTS the action is refused with one line.
    """
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        conn = engine.connect()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as exc:
            conn.close()
            if not is_locked(exc):
                raise ActionRefused(f"not done: {_first_line(exc)}; nothing was changed", partial) from exc
            if attempt == BUSY_ATTEMPTS:
                raise ActionRefused(
                    f"{BUSY}: the SQLite database is locked by another connection; nothing was changed", partial
                ) from exc
            if on_busy is not None:
                on_busy(LOCKED_RETRYING)
            continue
        break
    with conn:
        try:
            yield conn
        except OperationalError as exc:
            conn.rollback()
            raise ActionRefused(f"not done: {_first_line(exc)}; nothing was changed", partial) from exc
        conn.commit()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


# The audit entry appended to metadata_json[AUDIT_KEY]: NULL metadata becomes an object, a JSON object gets the key
# (an array; a non-array there is replaced, the key is ours), anything else is kept untouched and gets no entry.
_WITH_AUDIT = text(
    "CASE"
    " WHEN metadata_json IS NULL THEN json_object(:key, json_array(json(:entry)))"
    " WHEN typeof(metadata_json) = 'text' AND json_valid(metadata_json)"
    "  AND json_type(metadata_json) = 'object' THEN json_set(metadata_json, '$.' || :key, json(CASE"
    "   WHEN json_type(metadata_json, '$.' || :key) = 'array'"
    "   THEN json_insert(json_extract(metadata_json, '$.' || :key), '$[#]', json(:entry))"
    "   ELSE json_array(json(:entry)) END))"
    " ELSE metadata_json END"
)


def _update(
    engine: Engine,
    op: Operator,
    ids: Iterable[int],
    *,
    verb: str,
    to_resolved: bool,
    extra: dict[str, Any],
    why_not: str,
    on_busy: Callable[[str], None] | None,
) -> ActionResult:
    wanted = unique_ids(ids)
    result = ActionResult(verb)
    for start in range(0, len(wanted), BATCH_SIZE):
        batch = wanted[start : start + BATCH_SIZE]
        with write_transaction(engine, result, on_busy) as conn:
            now = fetch_db_now(conn)
            entry = {"timestamp": now.isoformat(), "method": f"operator:{verb}", "operator": op.name, **extra}
            done = conn.execute(
                text(
                    f"UPDATE {ev.name} SET resolved = :resolved, resolved_at = :resolved_at,"
                    f" metadata_json = {_WITH_AUDIT.text}"
                    " WHERE id IN :ids AND resolved = :was RETURNING id"
                ).bindparams(bindparam("ids", expanding=True)),
                {
                    "resolved": int(to_resolved),
                    "resolved_at": format_time(now) if to_resolved else None,
                    "was": int(not to_resolved),
                    "key": AUDIT_KEY,
                    "entry": json.dumps(entry, ensure_ascii=True),
                    "ids": batch,
                },
            ).scalars()
            changed = set(done)
            existing = set(conn.execute(select(ev.c.id).where(ev.c.id.in_(batch))).scalars())
        for event_id in batch:
            if event_id in changed:
                result.done.append(event_id)
            else:
                result.skipped[event_id] = why_not if event_id in existing else NO_SUCH_EVENT
    return result


def resolve(
    engine: Engine,
    op: Operator,
    ids: Iterable[int],
    method: str,
    note: str | None = None,
    *,
    on_busy: Callable[[str], None] | None = None,
) -> ActionResult:
    """resolved = 1, resolved_at = now; the method and note go into the audit entry (no column holds them)."""
    note = checked_resolution(method, note)
    extra: dict[str, Any] = {"resolution_method": method}
    if note is not None:
        extra["note"] = note
    return _update(
        engine, op, ids, verb="resolve", to_resolved=True, extra=extra, why_not="already resolved", on_busy=on_busy
    )


def reopen(
    engine: Engine, op: Operator, ids: Iterable[int], *, on_busy: Callable[[str], None] | None = None
) -> ActionResult:
    """Undo a resolve: pending again, resolved_at cleared (the audit keeps that it was resolved)."""
    return _update(engine, op, ids, verb="reopen", to_resolved=False, extra={}, why_not="not resolved", on_busy=on_busy)


# ------------------------------------------------------------------------------------------------ export

# Every legacy column; the JSON columns as their exact stored text, the timestamps as stored.
_EXPORT_COLUMNS = (
    ev.c.id,
    cast(ev.c.ingest_id, Text).label("ingest_id"),
    cast(ev.c.source, Text).label("source"),
    ev.c.source_offset,
    cast(ev.c.reason, Text).label("reason"),
    cast(ev.c.payload, Text).label("payload_text"),
    cast(ev.c.metadata_json, Text).label("metadata_json_text"),
    cast(ev.c.created_at, Text).label("created_at"),
    ev.c.resolved,
    cast(ev.c.resolved_at, Text).label("resolved_at"),
)


def export_jsonl(engine: Engine, ids: Iterable[int], path: Path, *, overwrite: bool = False) -> int:
    """triage.export_jsonl's file (the same safety: ASCII, temp file, never clobbered) from the legacy columns."""

    def rows_of(batch: list[int]) -> dict[int, dict[str, Any]]:
        with engine.connect() as conn:
            found = conn.execute(select(*_EXPORT_COLUMNS).where(ev.c.id.in_(batch))).mappings()
            return {r["id"]: {**r, "resolved": bool(r["resolved"])} for r in found}

    return write_jsonl(path, ids, rows_of, overwrite=overwrite)


# ------------------------------------------------------------------------------------------- busy reads


def retry_read(call: Callable[[], T], on_busy: Callable[[str], None] | None = None) -> T:
    """A read that met a write lock (SQLite's busy timeout ran out) is retried like a write, then re-raised."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            return call()
        except OperationalError as exc:
            if not is_locked(exc) or attempt == BUSY_ATTEMPTS:
                raise
            if on_busy is not None:
                on_busy(LOCKED_RETRYING)
            time.sleep(0.05)
    raise AssertionError("unreachable")


__all__ = [
    "LOCKED_RETRYING",
    "V7_ONLY",
    "V7_ONLY_FIGURES",
    "LiteCursor",
    "LiteHealth",
    "LiteRow",
    "Unavailable",
]
