"""The health screen's two tiers against a real PostgreSQL: every fast figure equals the dlq_health view's on the
same data (one snapshot), and the trends count what arrived and was resolved in each bucket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text

from dlq_tui.db import queries as q
from dlq_tui.db.models import FastFigures
from tests.support.factories import db_now, insert_event

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _nothing(conn: Connection, now: datetime) -> None:
    pass


def _all_resolved(conn: Connection, now: datetime) -> None:
    for i in range(4):
        insert_event(
            conn,
            now=now,
            age=(i + 1) * DAY,
            resolved=True,
            resolved_at=now - HOUR,
            retry_count=7 * i,
            priority=1 + i,
            classification="malicious" if i % 2 else None,
            lock="held" if i == 3 else None,  # a live lock on a resolved row: the view counts it
        )


def _expired_locks(conn: Connection, now: datetime) -> None:
    for i in range(3):
        insert_event(conn, now=now, age=i * HOUR, lock="expired")
    insert_event(conn, now=now, age=DAY, lock="held")
    # A lock id without an expiry, and an expiry without a lock id: neither is a live lock.
    insert_event(conn, now=now, processing_lock=None, lock_expires_at=now + HOUR)
    insert_event(conn, now=now, lock="held", lock_expires_at=None)


def _null_classification(conn: Connection, now: datetime) -> None:
    for cls in (None, None, "malicious", "corrupted", "format_error", None):
        insert_event(conn, now=now, classification=cls, priority=3 if cls is None else 4)
    insert_event(conn, now=now, classification="MALICIOUS")  # not the view's 'malicious'


def _mixed(conn: Connection, now: datetime) -> None:
    insert_event(conn, now=now, age=3 * DAY, priority=1, classification="malicious", retry_count=6)
    insert_event(conn, now=now, age=2 * DAY, retry_count=5, lock="held", priority=3)
    insert_event(conn, now=now, age=DAY, retry_count=100, lock="expired", priority=10)
    insert_event(conn, now=now, age=9 * DAY, resolved=True, resolved_at=now, classification="malicious", priority=2)
    insert_event(conn, now=now, age=-HOUR, priority=4)  # clock skew: created "in the future", still the newest


STATES: dict[str, Callable[[Connection, datetime], None]] = {
    "no rows": _nothing,
    "all resolved": _all_resolved,
    "expired locks": _expired_locks,
    "null classification": _null_classification,
    "mixed": _mixed,
}


@pytest.mark.parametrize("state", list(STATES))
def test_every_fast_figure_equals_the_view(v7_engine: Engine, state: str) -> None:
    with v7_engine.begin() as conn:
        STATES[state](conn, db_now(conn))
    with v7_engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        fast = q.fetch_fast_figures(conn)
        view = q.fetch_health_figures(conn)
    for f in fields(FastFigures):
        assert getattr(fast, f.name) == getattr(view, f.name), f.name
    if state != "no rows":  # the comparison is not vacuous: the state made the view count something
        assert any(getattr(view, f.name) for f in fields(FastFigures))


def test_fast_figures_are_served_by_indexes(v7_engine: Engine) -> None:
    """No figure of the fast tier reads the whole table: each is an index scan (at 10M rows that is the
    difference between a second and 15 s; see bench/BENCHMARKS.md)."""
    with v7_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table would be scanned whatever the indexes
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + _compiled(conn))))
    assert "Seq Scan" not in plan, plan


def _compiled(conn: Connection) -> str:
    captured: list[str] = []

    from sqlalchemy import event

    def before(conn_: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        captured.append(statement % _quoted(params))

    event.listen(conn.engine, "before_cursor_execute", before)
    try:
        q.fetch_fast_figures(conn)
    finally:
        event.remove(conn.engine, "before_cursor_execute", before)
    return captured[0]


def _quoted(params: object) -> object:
    if isinstance(params, dict):
        return {k: f"'{v}'" if isinstance(v, str) else v for k, v in params.items()}
    return params


def test_trends_count_each_hour_and_day_from_zero(v7_engine: Engine) -> None:
    now = datetime(2026, 5, 20, 14, 25, tzinfo=UTC)
    with v7_engine.begin() as conn:
        insert_event(conn, now=now, age=timedelta(minutes=20))  # this hour
        insert_event(conn, now=now, age=timedelta(minutes=24))  # 14:01, this hour
        insert_event(conn, now=now, age=timedelta(minutes=26))  # 13:59, the hour before
        insert_event(conn, now=now, age=23 * HOUR + timedelta(minutes=25))  # 15:00 yesterday: the first hour
        insert_event(conn, now=now, age=24 * HOUR + timedelta(minutes=30))  # before the first hour: not counted
        insert_event(conn, now=now, age=-HOUR)  # in the future: after the last bucket
        insert_event(conn, now=now, age=5 * DAY, resolved=True, resolved_at=now - timedelta(minutes=1))
        insert_event(conn, now=now, age=40 * DAY, resolved=True, resolved_at=now - 3 * DAY)
        insert_event(conn, now=now, age=DAY, resolved=True, resolved_at=None)  # resolved without a time
    with v7_engine.connect() as conn:
        trends = q.fetch_trends(conn, now)
    hourly, daily = trends.hourly, trends.daily
    assert len(hourly.starts) == 24 and hourly.starts[-1] == datetime(2026, 5, 20, 14, tzinfo=UTC)
    assert hourly.starts[0] == datetime(2026, 5, 19, 15, tzinfo=UTC)
    assert hourly.arrived[-1] == 2 and hourly.arrived[-2] == 1 and hourly.arrived[0] == 1
    assert sum(hourly.arrived) == 4
    assert hourly.resolved[-1] == 1 and sum(hourly.resolved) == 1
    assert len(daily.starts) == 30 and daily.starts[-1] == datetime(2026, 5, 20, tzinfo=UTC)
    assert daily.starts[0] == datetime(2026, 4, 21, tzinfo=UTC)
    # Today: 14:05, 14:01, 13:59 and the 15:25 one (later this day); yesterday: 15:00, 13:55 and 14:25.
    assert daily.arrived[-1] == 4 and daily.arrived[-2] == 3 and daily.arrived[-6] == 1
    assert sum(daily.arrived) == 8  # the 40-day-old event is outside
    assert daily.resolved[-1] == 1 and daily.resolved[-4] == 1 and sum(daily.resolved) == 2
