"""Forensic search over the payloads: a SearchQuery (dlq_tui.search.query) run as a chunked keyset scan.

The view's rows are walked in its key order (ORDER_KEYS, the same keyset as a page) one chunk of keys at a time:
a cheap index-only step finds where the chunk ends, then one statement returns the chunk's matches. So matches
come in key order and a page of them is a keyset page like any other; between chunks the caller sees progress
and can stop, and no statement runs longer than one chunk (the statement timeout is only a backstop).

Every value of the query is a bound parameter. Free text is ILIKE over payload::text (the payload as stored).
A field term is decided in Python (any depth, and the event inside malformed_content, parsed or repaired), after
the server has kept only the rows whose text contains the term's key and value wherever JSON cannot have escaped
them: a necessary condition, so the narrowing never loses a match.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Text, cast, func, literal, select, text, tuple_
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.db.errors import QUERY_CANCELED, sqlstate
from dlq_tui.db.models import EventFilter, EventPage, EventRow, PageCursor
from dlq_tui.db.queries import _ROW_COLUMNS, ORDER_KEYS, _key_of, _to_row, escape_like, filter_conditions
from dlq_tui.search.query import SearchQuery, field_snippet, text_snippet

ev = schema.dead_letter_events
payload_text = cast(ev.c.payload, Text)

# Rows per chunk: adapted so that one chunk takes about CHUNK_TARGET_S (progress every quarter second, esc is
# answered within one chunk), within these bounds.
CHUNK_TARGET_S = 0.25
CHUNK_MIN_ROWS = 1_000
CHUNK_MAX_ROWS = 200_000
CHUNK_START_ROWS = 5_000
# How much of the payload around the match the server sends back (the snippet is cut from it in Python).
SNIPPET_WINDOW = 160
# Characters JSON never escapes (printable ASCII except quote, backslash and the solidus, which `\/` may escape):
# a run of them in a key or value is in the stored text exactly as typed.
_VERBATIM_RUN = re.compile(r"[ !#-.0-\[\]-~]+")


class SearchCancelled(Exception):
    """The caller asked the scan to stop; `partial` holds what was found until then (None before any chunk)."""

    def __init__(self, partial: SearchPage | None = None) -> None:
        super().__init__("search cancelled")
        self.partial = partial


class SearchHandle:
    """Stops one search from another thread: the scan ends before its next statement, and the statement running
    now is cancelled on the server (a cancelled search leaves no query running)."""

    def __init__(self) -> None:
        self.cancelled = False
        self._lock = threading.Lock()
        self._connections: set[Any] = set()  # driver connections running this search's statements

    def __call__(self) -> bool:
        return self.cancelled

    def attach(self, raw: Any) -> None:
        with self._lock:
            self._connections.add(raw)
        if self.cancelled:  # cancelled before it started
            raise SearchCancelled

    def detach(self, raw: Any) -> None:
        with self._lock:
            self._connections.discard(raw)

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            running = list(self._connections)
        for raw in running:
            with contextlib.suppress(Exception):
                raw.cancel_safe(timeout=2.0)


@dataclass(frozen=True)
class SearchMatch:
    row: EventRow
    snippet: str  # raw payload text around the match: show it through dlq_tui.text


@dataclass(frozen=True)
class ScanProgress:
    scanned: int  # rows of the view walked so far
    total: int  # rows of the view, the planner's estimate (never below scanned)
    matches: int  # matches found so far
    done: bool  # the scan reached the end of the view

    @property
    def percent(self) -> int:
        if self.done:
            return 100
        return min(99, int(100 * self.scanned / self.total)) if self.total else 0


Progress = Callable[[ScanProgress], None]
Stop = Callable[[], bool]


@dataclass(frozen=True)
class SearchPage:
    matches: list[SearchMatch]
    next_cursor: PageCursor | None  # where the following page continues; None: the scan reached the end
    progress: ScanProgress

    @property
    def page(self) -> EventPage:
        return EventPage(rows=[m.row for m in self.matches], next_cursor=self.next_cursor)


def _longest_verbatim(value: str) -> str:
    runs = _VERBATIM_RUN.findall(value)
    return max(runs, key=len) if runs else ""


def payload_conditions(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The server's part of the query beyond the filter: free text and source/checksum exactly, a necessary
    condition for field terms."""

    def contains(fragment: str) -> ColumnElement[bool]:
        return payload_text.ilike(f"%{escape_like(fragment)}%", escape="\\")

    conds = [contains(term) for term in query.terms]
    if query.source is not None:
        conds.append(ev.c.source == query.source)
    if query.checksum is not None:
        conds.append(ev.c.payload_checksum == query.checksum)
    for term in query.fields:
        for part in (*term.path, term.value):
            if fragment := _longest_verbatim(part):
                conds.append(contains(fragment))
    return conds


def estimate_rows(conn: Connection, flt: EventFilter) -> int:
    """The planner's estimate of the view's row count (instant at any size; a count would be a scan of its own)."""
    statement = select(ev.c.id).where(*filter_conditions(flt))
    compiled = statement.compile(dialect=conn.dialect)
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class _Walk:
    """One direction of the view's keyset: which comparison is "further" and how to order."""

    def __init__(self, flt: EventFilter, backwards: bool) -> None:
        self.columns, descending = ORDER_KEYS[flt.order]
        self.key = tuple_(*self.columns)
        self.reverse = descending != backwards

    def beyond(self, cursor: PageCursor) -> ColumnElement[bool]:
        value = _key_of(self.columns, cursor)
        return self.key < value if self.reverse else self.key > value

    def up_to(self, cursor: PageCursor) -> ColumnElement[bool]:
        value = _key_of(self.columns, cursor)
        return self.key >= value if self.reverse else self.key <= value

    def order_by(self) -> list[Any]:
        return [c.desc() if self.reverse else c.asc() for c in self.columns]


def _cursor(r: Any) -> PageCursor:
    return PageCursor(r.priority, r.created_at, r.id, r.retry_count)


def _boundary(conn: Connection, conds: list[ColumnElement[bool]], walk: _Walk, rows: int) -> PageCursor | None:
    """The key of the rows-th row of the chunk (None: fewer rows are left): an index-only walk of the keys."""
    found = conn.execute(
        select(ev.c.priority, ev.c.created_at, ev.c.id, ev.c.retry_count)
        .where(*conds)
        .order_by(*walk.order_by())
        .offset(rows - 1)
        .limit(1)
    ).first()
    return None if found is None else _cursor(found)


def _match_query(query: SearchQuery, conds: list[ColumnElement[bool]], walk: _Walk, limit: int | None) -> Select[Any]:
    extra: list[Any] = []
    if query.fields:
        extra.append(payload_text.label("payload_text"))  # decided in Python: the whole text
    elif query.terms:
        at = func.strpos(func.lower(payload_text), func.lower(literal(query.terms[0])))
        start = func.greatest(1, at - SNIPPET_WINDOW // 2)
        extra.append(func.substr(payload_text, start, SNIPPET_WINDOW + len(query.terms[0])).label("payload_text"))
    else:
        extra.append(func.left(payload_text, SNIPPET_WINDOW).label("payload_text"))
    statement = select(*_ROW_COLUMNS, func.now().label("db_now"), *extra).where(*conds).order_by(*walk.order_by())
    # With field terms the server's rows are candidates only: every one of them must be looked at.
    return statement.limit(limit) if limit is not None and not query.fields else statement


def _snippet(query: SearchQuery, text: str) -> str | None:
    if query.fields:
        return field_snippet(query, text)
    if query.terms:
        return text_snippet(text, query.terms[0])
    return text_snippet(text, "")


def _chunk(
    conn: Connection,
    query: SearchQuery,
    walk: _Walk,
    base: list[ColumnElement[bool]],
    lower: list[ColumnElement[bool]],
    upper: PageCursor | None,
    searched: list[ColumnElement[bool]],
    limit: int | None,
    matches: list[SearchMatch],
    found: int,
) -> int:
    """One chunk's matches appended to `matches` (counted only, with limit None); returns the new match count."""
    within = [*base, *lower, *([walk.up_to(upper)] if upper is not None else [])]
    if limit is None and not query.fields:
        # Counting only: the server counts, nothing crosses the wire but the number.
        return found + conn.execute(select(func.count()).select_from(ev).where(*within, *searched)).scalar_one()
    wanted = None if limit is None else limit - len(matches)
    for r in conn.execute(_match_query(query, [*within, *searched], walk, wanted)):
        snippet = _snippet(query, r.payload_text)
        if snippet is None:
            continue
        found += 1
        if limit is not None:
            matches.append(SearchMatch(_to_row(r), snippet))
            if len(matches) >= limit:
                break
    return found


def scan(
    conn: Connection,
    query: SearchQuery,
    *,
    after: PageCursor | None = None,
    before: PageCursor | None = None,
    limit: int | None = 200,
    on_progress: Progress | None = None,
    stop: Stop | None = None,
    scanned_before: int = 0,
    matches_before: int = 0,
) -> SearchPage:
    """The next `limit` matches after `after` (or the `limit` matches just before `before`, returned in order);
    limit=None walks to the end. on_progress is called after every chunk; stop() is asked before every chunk and
    raises SearchCancelled when it says yes. scanned_before / matches_before continue a scan's progress figures.
    """
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    flt = query.filter
    # The driver prepares a statement run five times on one connection, and the server's generic plan for a key
    # range with unknown bounds walks the whole priority group of the spec's (priority, resolved) index on every
    # chunk (measured: a 1M-row scan went quadratic, minutes instead of seconds). Each chunk is planned with its
    # bounds instead.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    walk = _Walk(flt, backwards=before is not None)
    base = filter_conditions(flt)
    searched = payload_conditions(query)
    total = max(estimate_rows(conn, flt), scanned_before)
    position = before if before is not None else after
    chunk = CHUNK_START_ROWS
    scanned, found = scanned_before, matches_before
    matches: list[SearchMatch] = []
    progress = ScanProgress(scanned=scanned, total=total, matches=found, done=False)

    def cancelled() -> SearchCancelled:
        shown = list(reversed(matches)) if before is not None else list(matches)
        return SearchCancelled(SearchPage(shown, None, progress))

    while True:
        if stop is not None and stop():
            raise cancelled()
        started = time.perf_counter()
        lower = [walk.beyond(position)] if position is not None else []
        try:
            upper = _boundary(conn, [*base, *lower], walk, chunk)
            if stop is not None and stop():
                raise cancelled()
            found = _chunk(conn, query, walk, base, lower, upper, searched, limit, matches, found)
        except DBAPIError as exc:
            if stop is not None and stop() and sqlstate(exc) == QUERY_CANCELED:
                raise cancelled() from None
            raise
        scanned = scanned + chunk if upper is not None else max(scanned, total)
        done = upper is None and (limit is None or len(matches) < limit)
        progress = ScanProgress(scanned=scanned, total=max(total, scanned), matches=found, done=done)
        if on_progress is not None:
            on_progress(progress)
        full = limit is not None and len(matches) >= limit
        if full or upper is None:
            if before is not None:
                matches.reverse()  # read backwards from the cursor: put back in the view's order
            # A `before` page is always followed (by its cursor); an `after` page only when it filled up.
            more = full or before is not None
            return SearchPage(matches, matches[-1].row.cursor if more and matches else None, progress)
        position = upper
        elapsed = time.perf_counter() - started
        if elapsed < CHUNK_TARGET_S / 2:
            chunk = min(CHUNK_MAX_ROWS, chunk * 2)
        elif elapsed > CHUNK_TARGET_S * 2:
            chunk = max(CHUNK_MIN_ROWS, chunk // 2)


def count_in_table_order(
    conn: Connection,
    query: SearchQuery,
    *,
    on_progress: Progress | None = None,
    stop: Stop | None = None,
    blocks: int = 256,
) -> ScanProgress:
    """Every match of the view counted in the table's physical order, a range of heap blocks at a time (a TID range
    scan: the same sequential read as a plain count, so counting costs what the naive query costs, while the
    pages of matches still come in key order from scan()). Progress is the share of the table's blocks covered."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    flt = query.filter
    walk = _Walk(flt, backwards=False)
    base = [*filter_conditions(flt), *payload_conditions(query)]
    pages = conn.execute(
        text(f"SELECT CAST(pg_relation_size('{ev.name}') / current_setting('block_size')::int AS bigint)")
    ).scalar_one()
    total = estimate_rows(conn, flt)
    found, start = 0, 0
    progress = ScanProgress(scanned=0, total=total, matches=0, done=False)
    matches: list[SearchMatch] = []
    while start < pages:
        if stop is not None and stop():
            raise SearchCancelled(SearchPage([], None, progress))
        began = time.perf_counter()
        end = start + blocks
        in_blocks = text("ctid >= CAST(:lo_tid AS tid) AND ctid < CAST(:hi_tid AS tid)").bindparams(
            lo_tid=f"({start},0)", hi_tid=f"({end},0)"
        )
        try:
            found = _chunk(conn, query, walk, base, [in_blocks], None, [], None, matches, found)  # type: ignore[list-item]
        except DBAPIError as exc:
            if stop is not None and stop() and sqlstate(exc) == QUERY_CANCELED:
                raise SearchCancelled(SearchPage([], None, progress)) from None
            raise
        start = end
        covered = min(1.0, start / pages) if pages else 1.0
        done = start >= pages
        progress = ScanProgress(scanned=int(total * covered), total=total, matches=found, done=done)
        if on_progress is not None:
            on_progress(progress)
        elapsed = time.perf_counter() - began
        if elapsed < CHUNK_TARGET_S / 2:
            blocks = min(blocks * 2, 1 << 20)
        elif elapsed > CHUNK_TARGET_S * 2:
            blocks = max(blocks // 2, 16)
    if not pages:
        progress = ScanProgress(scanned=0, total=total, matches=0, done=True)
        if on_progress is not None:
            on_progress(progress)
    return progress


def count_matches(
    conn: Connection,
    query: SearchQuery,
    *,
    after: PageCursor | None = None,
    on_progress: Progress | None = None,
    stop: Stop | None = None,
    scanned_before: int = 0,
    matches_before: int = 0,
) -> ScanProgress:
    """Walk on from `after` to the end of the view counting matches (the figures include the *_before ones)."""
    last: list[ScanProgress] = []

    def seen(progress: ScanProgress) -> None:
        last[:] = [progress]
        if on_progress is not None:
            on_progress(progress)

    scan(
        conn,
        query,
        after=after,
        limit=None,
        on_progress=seen,
        stop=stop,
        scanned_before=scanned_before,
        matches_before=matches_before,
    )
    return last[0]
