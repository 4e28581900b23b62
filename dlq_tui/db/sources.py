"""Per-source view: pending dead letters grouped by the log file they came from, and resolving a whole file.

The pipeline's chore after a broken log file was fixed is to re-ingest that file and retire its dead letters.
`fetch_sources` gives the overview (count, top reasons, oldest and newest, locks held by others), biggest first,
at most `limit` sources in one bounded statement. Resolving "this file" works on an explicit set: the ids that
`source_selection` read when the operator was asked (events that arrive after the question stay pending), then
resolved by the triage machinery itself (lock rules, one audit entry per event, one transaction per batch).

Source paths are attacker-influenced text: they come back raw, and every screen renders them through text.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, Engine, and_, false, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from dlq_tui.db import schema
from dlq_tui.db.models import ActionResult
from dlq_tui.db.queries import _lock_held

if TYPE_CHECKING:
    from dlq_tui.db.triage import Operator

ev = schema.dead_letter_events

SOURCE_LIMIT = 200  # sources shown at most; the overview says "top N of M" beyond that
TOP_REASONS = 3  # reasons listed per source, most frequent first
REINGEST_METHOD = "operator_reingest"  # a key of triage.RESOLUTION_METHODS
REINGEST_NOTE = "resolved with every pending event of its source file, for re-ingest"


@dataclass(frozen=True)
class SourceStat:
    """One source file's pending events. `source` is None for events without a source."""

    source: str | None
    pending: int
    held_by_others: int  # live processing locks of other sessions: a resolve skips these
    oldest: datetime
    newest: datetime
    reason_count: int  # distinct reasons
    top_reasons: list[tuple[str, int]]  # (reason, count), most frequent first, at most TOP_REASONS


@dataclass(frozen=True)
class SourceOverview:
    sources: list[SourceStat]  # biggest first (pending desc, then source; no source last)
    total_sources: int  # distinct sources among pending events (no source counts as one)
    total_pending: int
    db_now: datetime

    @property
    def cut(self) -> bool:
        """More sources exist than are listed."""
        return self.total_sources > len(self.sources)


@dataclass(frozen=True)
class SourceSelection:
    """The explicit set a "resolve this file" question is about, read when the question is asked."""

    source: str | None
    ids: list[int]  # pending events of the source, ascending
    held_by_others: int  # of those, held by another session (they will be skipped)


def _held_by_others(mine: uuid.UUID | None) -> ColumnElement[bool]:
    held = _lock_held()
    return held if mine is None else and_(held, ev.c.processing_lock != mine)


def _same_source(source: str | None) -> ColumnElement[bool]:
    # `= NULL` matches nothing; `IS NOT DISTINCT FROM` would not use ix_dead_letter_events_source.
    return ev.c.source.is_(None) if source is None else ev.c.source == source


def fetch_sources(conn: Connection, *, mine: uuid.UUID | None = None, limit: int = SOURCE_LIMIT) -> SourceOverview:
    """Pending events grouped by source, biggest first, at most `limit` sources, in one statement (one snapshot).

    Grouped by (source, reason) first, then by source: the top reasons come from the same pass as the counts.
    `mine` is this session's lock token: its own locks are not "held by others".
    """
    n = func.count().label("n")
    per_reason = (
        select(
            ev.c.source,
            ev.c.reason,
            n,
            func.count().filter(_held_by_others(mine)).label("held"),
            func.min(ev.c.created_at).label("oldest"),
            func.max(ev.c.created_at).label("newest"),
        )
        .where(ev.c.resolved == false())
        .group_by(ev.c.source, ev.c.reason)
        .cte("per_reason")
    )
    r = per_reason.c
    pending = func.sum(r.n).label("pending")
    per_source = (
        select(
            r.source,
            pending,
            func.sum(r.held).label("held"),
            func.min(r.oldest).label("oldest"),
            func.max(r.newest).label("newest"),
            func.count().label("reason_count"),
            func.array_agg(aggregate_order_by(r.reason, r.n.desc(), r.reason))[1:TOP_REASONS].label("reasons"),
            func.array_agg(aggregate_order_by(r.n, r.n.desc(), r.reason))[1:TOP_REASONS].label("counts"),
        )
        .group_by(r.source)
        .subquery("per_source")
    )
    s = per_source.c
    query = (
        select(
            s.source,
            s.pending,
            s.held,
            s.oldest,
            s.newest,
            s.reason_count,
            s.reasons,
            s.counts,
            func.count().over().label("total_sources"),
            func.sum(s.pending).over().label("total_pending"),
            func.now().label("db_now"),
        )
        .order_by(s.pending.desc(), s.source.asc().nulls_last())
        .limit(max(1, limit))
    )
    rows = conn.execute(query).all()
    stats = [
        SourceStat(
            source=row.source,
            pending=int(row.pending),
            held_by_others=int(row.held),
            oldest=row.oldest,
            newest=row.newest,
            reason_count=int(row.reason_count),
            top_reasons=[(reason, int(count)) for reason, count in zip(row.reasons, row.counts, strict=True)],
        )
        for row in rows
    ]
    if rows:
        return SourceOverview(stats, int(rows[0].total_sources), int(rows[0].total_pending), rows[0].db_now)
    return SourceOverview([], 0, 0, conn.execute(select(func.now())).scalar_one())


def source_selection(conn: Connection, source: str | None, *, mine: uuid.UUID | None = None) -> SourceSelection:
    """The ids of the source's pending events right now, and how many of them someone else holds."""
    rows = conn.execute(
        select(ev.c.id, func.coalesce(_held_by_others(mine), literal(False)).label("held"))
        .where(ev.c.resolved == false(), _same_source(source))
        .order_by(ev.c.id)
    ).all()
    return SourceSelection(source, [row.id for row in rows], sum(1 for row in rows if row.held))


def resolve_for_reingest(engine: Engine, op: Operator, selection: SourceSelection) -> ActionResult:
    """Resolve exactly the selection's ids as `operator_reingest` (lock rules, audit and batches: triage.resolve).

    Raises triage.ActionRefused when the database refuses (read-only, no privilege, lock timeout).
    """
    from dlq_tui.db import triage

    return triage.resolve(engine, op, selection.ids, REINGEST_METHOD, REINGEST_NOTE)
