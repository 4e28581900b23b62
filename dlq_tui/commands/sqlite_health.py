"""`dlq-tui health` on a SQLite database: the figures its legacy dead_letter_events can answer.

The same exit codes, plugin line and JSON keys as on PostgreSQL; the v7-only figures (retries, locks,
classification, priority, breakers, processing runs) are null and the document's `unavailable` names them with
the one reason (lite.V7_ONLY). Only the thresholds on pending events and on the oldest pending event apply.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dlq_tui.commands.health import (
    ReadFault,
    _iso,
    _when,
    dlq_health_row,
    health_document,
    report_unknown,
    thresholds_from_args,
)
from dlq_tui.db import lite
from dlq_tui.health_rules import Finding, Thresholds, evaluate, exit_code, format_age, overall, worst_first

# Beyond the figures: what a SQLite DLQ never has (all for lite.V7_ONLY).
_V7_ONLY_PARTS = ("breakers", "recent_runs")


def read_sqlite_health(dsn: str) -> lite.LiteHealth:
    """The figures, or ReadFault(one line): no such file, no DLQ table, not a database, locked for too long."""
    path = lite.database_path(dsn)
    if path is not None and not path.is_file():
        # sqlite3 would create an empty file there: a typo in the path must not leave one behind.
        raise ReadFault(f"no SQLite database at {path}: check the path in the DSN")
    engine = lite.lite_engine(dsn, read_only=True)
    try:

        def read(conn: Any) -> lite.LiteHealth | None:
            return lite.fetch_lite_health(conn) if lite.has_events_table(conn) else None

        figures = lite.read_consistent(engine, read)
    except SQLAlchemyError as exc:
        if lite.is_locked(exc):
            raise ReadFault("the SQLite database stayed locked by another connection: try again") from None
        orig = getattr(exc, "orig", exc)
        line = str(orig).strip().splitlines()[0] if isinstance(orig, sqlite3.Error) and str(orig).strip() else ""
        raise ReadFault(f"cannot read the SQLite database: {line or type(orig).__name__}") from None
    finally:
        engine.dispose()
    if figures is None:
        raise ReadFault("this database has no dead_letter_events table: wrong database?")
    return figures


def _findings(health: lite.LiteHealth, thresholds: Thresholds) -> list[Finding]:
    v7_only = set(lite.V7_ONLY_FIGURES)
    return [f for f in evaluate(lite.as_snapshot(health), thresholds) if f.field not in v7_only]


def sqlite_document(health: lite.LiteHealth, findings: list[Finding], thresholds: Thresholds) -> dict[str, Any]:
    """health_document's keys, the v7-only ones null, plus what only SQLite has (reasons, inflow, undated)."""
    doc = health_document(lite.as_snapshot(health), findings, thresholds)
    for name in lite.V7_ONLY_FIGURES:
        doc["figures"][name] = None
    doc["figures"]["undated_pending"] = health.undated_pending
    doc["dlq_health"] = dlq_health_row(doc["figures"])
    for part in _V7_ONLY_PARTS:
        doc[part] = None
    doc["database"] = "sqlite"
    doc["unavailable"] = {"fields": [*lite.V7_ONLY_FIGURES, *_V7_ONLY_PARTS], "reason": lite.V7_ONLY}
    doc["pending_by_reason"] = [{"reason": r, "count": n} for r, n in health.pending_by_reason]
    doc["trends"] = {"hourly": _series_document(health.hourly), "daily": _series_document(health.daily)}
    return doc


def _series_document(s: lite.LiteSeries) -> dict[str, Any]:
    """The shape of the PostgreSQL health's `trends` series."""
    return {
        "bucket": s.bucket,
        "starts": [_iso(x) for x in s.starts],
        "arrived": s.arrived,
        "resolved": s.resolved,
        "arrived_max": max(s.arrived, default=0),
        "resolved_max": max(s.resolved, default=0),
    }


def _perfdata(health: lite.LiteHealth, t: Thresholds) -> str:
    def item(label: str, value: float, warn: float | None, crit: float | None, unit: str = "") -> str:
        w = "" if warn is None else f"{warn:g}"
        c = "" if crit is None else f"{crit:g}"
        return f"{label}={value:g}{unit};{w};{c};0;"

    oldest = health.oldest_pending_at
    age = 0.0 if oldest is None else (health.db_now - oldest).total_seconds()
    hours = 3600
    return " ".join(
        [
            item("pending", health.pending_events, t.pending_warn, t.pending_crit),
            item("processed", health.processed_events, None, None),
            item(
                "oldest_age",
                round(age),
                None if t.oldest_warn_hours is None else t.oldest_warn_hours * hours,
                None if t.oldest_crit_hours is None else t.oldest_crit_hours * hours,
                "s",
            ),
        ]
    )


def _bars(counts: list[int]) -> str:
    """Counts as a one-line chart, oldest left (8 levels from zero; blank for none)."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(" " if n == 0 else "▁▂▃▄▅▆▇█"[min(7, (n * 8 - 1) // top)] for n in counts)


def sqlite_report(dsn: str, health: lite.LiteHealth, findings: list[Finding], thresholds: Thresholds) -> str:
    """The text report; database text (reasons) through text.plain."""
    from dlq_tui.text import plain

    level = overall(findings)
    now = health.db_now
    names = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}
    problems = [x for x in worst_first(findings) if x.level != "ok"]
    pending = f"{health.pending_events:,} pending event{'' if health.pending_events == 1 else 's'}"
    summary = "; ".join(plain(x.message, limit=200) for x in problems) or pending
    by_field = {x.field: x for x in findings}

    def mark(field: str) -> str:
        finding = by_field.get(field)
        return "" if finding is None or finding.level == "ok" else f"  {names[finding.level]}"

    avg = health.avg_resolution_time_seconds
    path = lite.database_path(dsn)
    lines = [
        f"DLQ {names[level]} - {summary} | {_perfdata(health, thresholds)}",
        f"SQLite database {plain(str(path) if path else ':memory:', limit=300)} (legacy schema)",
        f"server time {now:%Y-%m-%d %H:%M:%S %Z}",
        "",
        "Figures",
        f"  {'pending events':<28}{health.pending_events:>10,}{mark('pending_events')}",
        f"  {'processed events':<28}{health.processed_events:>10,}",
        f"  {'average resolution time':<28}{'-' if avg is None else format_age(avg):>10}",
        f"  {'oldest pending event':<28}{_when(health.oldest_pending_at, now)}{mark('oldest_pending_at')}",
        f"  {'newest pending event':<28}{_when(health.newest_pending_at, now)}",
    ]
    if health.undated_pending:
        lines.append(f"  {'pending without a timestamp':<28}{health.undated_pending:>10,}")
    lines += [
        f"  {'retries, locks, classes':<28}unavailable: {lite.V7_ONLY}",
        "",
        "Pending by reason",
    ]
    if not health.pending_by_reason:
        lines.append("  (none)")
    for reason, n in health.pending_by_reason:
        lines.append(f"  {plain(reason, limit=40):<40}{n:>10,}")
    lines += ["", "Trends"]
    for name, s in ((f"per hour, last {lite.HOURLY_BUCKETS} h", health.hourly),
                    (f"per day, last {lite.DAILY_BUCKETS} days", health.daily)):  # fmt: skip
        lines.append(f"  {name}")
        for label, values in (("arrived", s.arrived), ("resolved", s.resolved)):
            lines.append(f"    {label:<10}{sum(values):>10,} in all  |{_bars(values)}|")
    lines += ["", "Findings"]
    for x in worst_first(findings):
        lines.append(f"  {names[x.level]:<9} {plain(x.message, limit=300)}")
    return "\n".join(lines)


def run_sqlite_health(dsn: str, args: argparse.Namespace) -> int:
    thresholds = thresholds_from_args(args)
    try:
        health = read_sqlite_health(dsn)
    except ReadFault as exc:
        return report_unknown(str(exc), args, dsn)
    findings = _findings(health, thresholds)
    if getattr(args, "json", False):
        print(json.dumps(sqlite_document(health, findings, thresholds), ensure_ascii=True, indent=2))
    else:
        print(sqlite_report(dsn, health, findings, thresholds))
    return exit_code(overall(findings))
