"""`dlq-tui health`: health figures, breakers and findings for scripts and alerting.

Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN when the
database cannot be read (unreachable, wrong password, below v7, view missing, no permission, no answer
within --timeout). In that case one line on stderr says why and what to do; never a traceback, never the
password. With --json stdout still carries one object of the usual shape (status UNKNOWN, the figures null, the
reason), so a monitoring system that parses stdout sees why instead of an empty document.

The first line of the text report is a plugin-style summary with perfdata after "|", so the command can
be used as a Nagios/Icinga check as is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from dlq_tui.db import schema
from dlq_tui.db.connect import make_engine
from dlq_tui.db.deadline import Deadline, passed_deadline
from dlq_tui.db.dsn import is_sqlite, scrub
from dlq_tui.db.errors import (
    INSUFFICIENT_PRIVILEGE,
    QUERY_CANCELED,
    SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
    ConnectionFault,
    explain_connection_error,
    first_line,
    sqlstate,
    sqlstate_class,
)
from dlq_tui.db.models import HealthSnapshot, Trends, TrendSeries
from dlq_tui.health_rules import Finding, Thresholds, evaluate, exit_code, format_age, overall, worst_first

EXIT_UNKNOWN = 3
STATUS_NAMES = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}
# A monitoring check must end: a query stuck behind a lock becomes UNKNOWN instead of hanging the scheduler
# (the command's --timeout, when set, replaces this).
STATEMENT_TIMEOUT_MS = 60_000

T = TypeVar("T")


class ReadFault(Exception):
    """The database could not be read: the message is one line saying why and what to do."""


# ------------------------------------------------------------------------------------------ thresholds

_OFF = "off"
# flag stem -> (Thresholds field stem, help)
_THRESHOLD_FLAGS: dict[str, tuple[str, str]] = {
    "pending": ("pending", "pending events"),
    "high-retry": ("high_retry", "events with retry_count > 5"),
    "locked": ("locked", "events with a live processing lock"),
    "oldest-hours": ("oldest", "age in hours of the oldest pending event"),
    "malicious": ("malicious", "pending events classified malicious"),
    "high-priority": ("high_priority", "pending events of priority 1-3"),
}


def _threshold_value(raw: str) -> float | str:
    if raw.strip().lower() == _OFF:
        return _OFF
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("thresholds cannot be negative")
    return value


def _field_name(stem: str, level: str) -> str:
    return f"{stem}_{level}_hours" if stem == "oldest" else f"{stem}_{level}"


def add_threshold_options(
    parser: argparse.ArgumentParser,
    title: str = "thresholds (a figure at or above a level trips it; 'off' disables a level)",
) -> None:
    """--warn-X / --crit-X for every checked figure; a value at or above the level trips it; 'off' disables."""
    group = parser.add_argument_group(title)
    defaults = Thresholds()
    for flag, (stem, what) in _THRESHOLD_FLAGS.items():
        for level, word in (("warn", "warning"), ("crit", "critical")):
            name = _field_name(stem, level)
            default = getattr(defaults, name)
            group.add_argument(
                f"--{level}-{flag}",
                dest=f"threshold_{name}",
                type=_threshold_value,
                default=None,
                metavar="N",
                help=f"{word} level for {what} (default {'off' if default is None else f'{default:g}'})",
            )


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    # Under the flags: the profile's thresholds (the config file), else the built-in ones.
    return replace(getattr(args, "base_thresholds", None) or Thresholds(), **threshold_flags(args))


def threshold_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The thresholds the command line set (None: a level turned off), by Thresholds field name."""
    changes: dict[str, Any] = {}
    for f in fields(Thresholds):
        value = getattr(args, f"threshold_{f.name}", None)
        if value is None:
            continue
        if value == _OFF:
            changes[f.name] = None
        else:
            changes[f.name] = value if f.name.startswith("oldest") else int(value)
    return changes


# ---------------------------------------------------------------------------------- reading, faults


def _schema_problem(conn: Connection) -> str | None:
    """Why a v7 read failed, from the catalog (needs no privilege on the tables themselves)."""
    names = (
        "schema_state",
        "dead_letter_events",
        schema.HEALTH_VIEW,
        "dlq_circuit_breaker_state",
        "dlq_processing_metrics",
    )
    present = {
        name: conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one() for name in names
    }
    if not present["dead_letter_events"]:
        return "this database has no dead_letter_events table: wrong database? (dlq-tui --migrate creates the schema)"
    marker = None
    if present["schema_state"]:
        marker = conn.execute(
            text("SELECT value FROM schema_state WHERE key = :k"), {"k": schema.SCHEMA_VERSION_KEY}
        ).scalar()
    has_v7_columns = conn.execute(
        text(
            "SELECT count(*) = 2 FROM information_schema.columns "
            "WHERE table_name = 'dead_letter_events' AND column_name IN ('priority', 'processing_lock') "
            "AND table_schema = current_schema()"
        )
    ).scalar_one()
    version = "0 (no marker)" if marker is None else marker
    below = marker is None or not marker.isdigit() or int(marker) < schema.SCHEMA_VERSION
    if below or not has_v7_columns:
        if not below:
            return (
                f"schema marker says v{version} but the v7 columns are missing: "
                "run dlq-tui check, then dlq-tui --migrate"
            )
        return f"schema is v{version}, below v7: run dlq-tui --migrate"
    missing = [name for name in names[2:] if not present[name]]
    if missing:
        return f"schema v7 is incomplete ({', '.join(missing)} missing): run dlq-tui check, then dlq-tui --migrate"
    return None


def _explain_query_error(exc: DBAPIError, dsn: str, engine: Any, timeout_ms: int = STATEMENT_TIMEOUT_MS) -> str:
    code = sqlstate(exc)
    line = scrub(first_line(exc), dsn)
    if code == QUERY_CANCELED:  # statement_timeout
        return f"a query did not finish within {timeout_ms / 1000:g}s: the database is overloaded or a lock blocks it"
    if code == INSUFFICIENT_PRIVILEGE:
        user = _current_user(engine)
        return (
            f"no permission to read the DLQ tables ({line}): grant SELECT on dead_letter_events, "
            f"{schema.HEALTH_VIEW}, dlq_circuit_breaker_state and dlq_processing_metrics to {user}"
        )
    # Undefined table/column/function and friends: the schema is not what v7 promises.
    if sqlstate_class(exc) == SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
        try:
            with engine.connect() as conn:
                problem = _schema_problem(conn)
        except SQLAlchemyError:
            problem = None
        if problem:
            return problem
    return f"cannot read the database: {line}"


def _current_user(engine: Any) -> str:
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT current_user")).scalar_one())
    except SQLAlchemyError:
        return "this role"


def read_database(dsn: str, reader: Callable[[Connection], T], deadline: Deadline | None = None) -> T:
    """Run reader on a fresh connection; any fault an operator can fix becomes ReadFault(one line)."""
    if is_sqlite(dsn):
        raise ReadFault("this command needs PostgreSQL: v7 is PostgreSQL-only")
    timeout_ms = (deadline.statement_timeout_ms() if deadline else None) or STATEMENT_TIMEOUT_MS
    try:
        engine = make_engine(dsn, statement_timeout_ms=timeout_ms, pool_size=1, deadline=deadline)
    except ConnectionFault as exc:
        raise ReadFault(str(exc)) from None
    try:
        try:
            conn = engine.connect()
        except (SQLAlchemyError, ConnectionFault) as exc:
            raise ReadFault(explain_connection_error(exc, dsn)) from None
        try:
            # REPEATABLE READ READ ONLY: every figure from one snapshot (pending counts and the analysis
            # agree), without ever waiting on or blocking writers.
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                return reader(conn)
        except DBAPIError as exc:
            if exc.connection_invalidated or sqlstate(exc) is None or passed_deadline(exc):
                raise ReadFault(explain_connection_error(exc, dsn)) from None
            raise ReadFault(_explain_query_error(exc, dsn, engine, timeout_ms)) from None
        finally:
            conn.close()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- output


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# The view's columns that HealthFigures carries under another name (the view's "oldest" is MAX(created_at)).
_FIGURE_OF_VIEW_COLUMN = {"oldest_unresolved_event": "newest_unresolved_event"}


def dlq_health_row(figures: dict[str, Any]) -> dict[str, Any]:
    """The dlq_health row under the view's own column names, so monitoring set up against the view finds
    its fields (`figures` keeps the honest names)."""
    return {col: figures[_FIGURE_OF_VIEW_COLUMN.get(col, col)] for col in schema.HEALTH_VIEW_COLUMNS}


def trends_document(trends: Trends) -> dict[str, Any]:
    """Arrived / resolved per bucket, oldest first, with each bucket's start (the health screen's bars)."""

    def series(s: TrendSeries) -> dict[str, Any]:
        return {
            "bucket": s.bucket,
            "starts": [x.isoformat() for x in s.starts],
            "arrived": s.arrived,
            "resolved": s.resolved,
            "arrived_max": max(s.arrived, default=0),
            "resolved_max": max(s.resolved, default=0),
        }

    return {"hourly": series(trends.hourly), "daily": series(trends.daily)}


def trends_report(trends: Trends) -> list[str]:
    """Text lines: per series its total, its peak bucket and the time range it covers."""
    lines = []
    for name, s, unit in (("per hour, last 24 h", trends.hourly, "h"), ("per day, last 30 days", trends.daily, "d")):
        stamp = "%Y-%m-%d %H:%M" if unit == "h" else "%Y-%m-%d"
        lines.append(f"  {name} ({s.starts[0]:{stamp}} .. {s.starts[-1]:{stamp}} UTC)")
        for label, values in (("arrived", s.arrived), ("resolved", s.resolved)):
            lines.append(f"    {label:<10}{sum(values):>10,} in all, max {max(values, default=0):,}/{unit}")
    return lines


def health_document(snapshot: HealthSnapshot, findings: list[Finding], thresholds: Thresholds) -> dict[str, Any]:
    level = overall(findings)
    f = snapshot.figures
    oldest_age = None if f.oldest_pending_at is None else (snapshot.db_now - f.oldest_pending_at).total_seconds()
    figures = _jsonable(asdict(f))
    view_row = dlq_health_row(figures)
    figures["oldest_pending_age_seconds"] = oldest_age
    return {
        "status": STATUS_NAMES[level],
        "exit_code": exit_code(level),
        "db_now": _iso(snapshot.db_now),
        "figures": figures,
        schema.HEALTH_VIEW: view_row,
        "breakers": [_jsonable(asdict(b)) for b in snapshot.breakers],
        "recent_runs": [_jsonable(asdict(r)) for r in snapshot.recent_runs],
        "findings": [asdict(x) for x in findings],
        "thresholds": asdict(thresholds),
        "trends": None if snapshot.trends is None else trends_document(snapshot.trends),
        "reason": None,  # why the status is UNKNOWN: see unknown_document
    }


def unknown_document(reason: str, thresholds: Thresholds) -> dict[str, Any]:
    """health_document's shape when nothing could be read: the same keys, the figures null, the reason."""
    return {
        "status": "UNKNOWN",
        "exit_code": EXIT_UNKNOWN,
        "db_now": None,
        "figures": None,
        "breakers": None,
        "recent_runs": None,
        "findings": None,
        "thresholds": asdict(thresholds),
        "trends": None,
        "dlq_health": None,
        "reason": reason,
    }


def report_unknown(reason: str, args: argparse.Namespace, dsn: str | None = None, *, plugin_line: bool = True) -> int:
    """UNKNOWN: one line on stderr, and with --json also the document on stdout, so a script reading only the JSON
    sees why. One line of reason, never the password. plugin_line=False: a fault before any database was chosen
    (no DSN, bad settings) reads as the other commands' faults do."""
    line = " ".join(reason.split())
    line = scrub(line, dsn) if dsn else line
    print(f"dlq-tui: DLQ UNKNOWN - {line}" if plugin_line else f"dlq-tui: {line}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(unknown_document(line, thresholds_from_args(args)), ensure_ascii=True, indent=2))
    return EXIT_UNKNOWN


def _perfdata(snapshot: HealthSnapshot, t: Thresholds) -> str:
    f = snapshot.figures

    def item(label: str, value: float, warn: float | None, crit: float | None, unit: str = "") -> str:
        w = "" if warn is None else f"{warn:g}"
        c = "" if crit is None else f"{crit:g}"
        return f"{label}={value:g}{unit};{w};{c};0;"

    age = 0.0 if f.oldest_pending_at is None else (snapshot.db_now - f.oldest_pending_at).total_seconds()
    scale = 3600
    return " ".join(
        [
            item("pending", f.pending_events, t.pending_warn, t.pending_crit),
            item("processed", f.processed_events, None, None),
            item("high_retry", f.high_retry_events, t.high_retry_warn, t.high_retry_crit),
            item("locked", f.locked_events, t.locked_warn, t.locked_crit),
            item(
                "oldest_age",
                round(age),
                None if t.oldest_warn_hours is None else t.oldest_warn_hours * scale,
                None if t.oldest_crit_hours is None else t.oldest_crit_hours * scale,
                "s",
            ),
            item("malicious", f.malicious_events, None, None),
            item("high_priority", f.high_priority_events, None, None),
        ]
    )


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    delta = (value - now).total_seconds()
    relative = f"in {format_age(delta)}" if delta > 0 else f"{format_age(-delta)} ago"
    return f"{value.astimezone(now.tzinfo):%Y-%m-%d %H:%M:%S %Z} ({relative})"


def health_report(snapshot: HealthSnapshot, findings: list[Finding], thresholds: Thresholds) -> str:
    """The text report. Every database-derived string goes through text.plain()."""
    from dlq_tui.text import plain

    level = overall(findings)
    f = snapshot.figures
    now = snapshot.db_now
    problems = [x for x in worst_first(findings) if x.level != "ok"]
    pending = f"{f.pending_events:,} pending event{'' if f.pending_events == 1 else 's'}"
    summary = "; ".join(plain(x.message, limit=200) for x in problems) or pending
    by_field = {x.field: x for x in findings}

    def mark(field: str) -> str:
        finding = by_field.get(field)
        return "" if finding is None or finding.level == "ok" else f"  {STATUS_NAMES[finding.level]}"

    avg = "-" if f.avg_resolution_time_seconds is None else format_age(f.avg_resolution_time_seconds)
    lines = [
        f"DLQ {STATUS_NAMES[level]} - {summary} | {_perfdata(snapshot, thresholds)}",
        f"server time {now:%Y-%m-%d %H:%M:%S %Z}",
        "",
        "Figures",
        f"  {'pending events':<28}{f.pending_events:>10,}{mark('pending_events')}",
        f"  {'processed events':<28}{f.processed_events:>10,}",
        f"  {'average resolution time':<28}{avg:>10}",
        f"  {'oldest pending event':<28}{_when(f.oldest_pending_at, now)}{mark('oldest_pending_at')}",
        f"  {'newest pending event':<28}{_when(f.newest_unresolved_event, now)}",
        f"  {'high retry (> 5)':<28}{f.high_retry_events:>10,}{mark('high_retry_events')}",
        f"  {'locked':<28}{f.locked_events:>10,}{mark('locked_events')}",
        f"  {'malicious':<28}{f.malicious_events:>10,}{mark('malicious_events')}",
        f"  {'high priority (1-3)':<28}{f.high_priority_events:>10,}{mark('high_priority_events')}",
        "",
        "Circuit breakers",
    ]
    if not snapshot.breakers:
        lines.append("  (none recorded)")
    for b in snapshot.breakers:
        lines.append(
            f"  {plain(b.name, limit=40):<20} {plain(b.state, limit=20):<10} "
            f"{b.failure_count}/{b.failure_threshold} failures   "
            f"last failure {_when(b.last_failure_time, now)}   next attempt {_when(b.next_attempt_time, now)}"
        )
    lines += ["", "Recent processing runs"]
    if not snapshot.recent_runs:
        lines.append("  (none recorded)")
    for r in snapshot.recent_runs:
        tripped = "  breaker tripped" if r.circuit_breaker_triggered else ""
        lines.append(
            f"  {r.started_at.astimezone(now.tzinfo):%Y-%m-%d %H:%M} {plain(r.method, limit=32):<22} "
            f"batch {r.batch_size:>5}  processed {r.processed:>5}  repaired {r.repaired:>5}  "
            f"failed {r.failed:>5}  skipped {r.skipped:>5}  {r.duration_ms:>7} ms{tripped}"
        )
    if snapshot.trends is not None:
        lines += ["", "Trends", *trends_report(snapshot.trends)]
    lines += ["", "Findings"]
    for x in worst_first(findings):
        lines.append(f"  {STATUS_NAMES[x.level]:<9} {plain(x.message, limit=300)}")
    return "\n".join(lines)


def run_health(dsn: str, args: argparse.Namespace, *, deadline: Deadline | None = None) -> int:
    from dlq_tui.db.queries import fetch_health

    if is_sqlite(dsn):  # the legacy table's own figures: v7 (and its dlq_health view) is PostgreSQL-only
        from dlq_tui.commands.sqlite_health import run_sqlite_health

        return run_sqlite_health(dsn, args)
    thresholds = thresholds_from_args(args)
    try:
        snapshot = read_database(dsn, lambda conn: fetch_health(conn, trends=True), deadline)
    except ReadFault as exc:
        return report_unknown(str(exc), args, dsn)
    findings = evaluate(snapshot, thresholds)
    if getattr(args, "json", False):
        # ensure_ascii: database text leaves as \u escapes, so no control character reaches the terminal.
        print(json.dumps(health_document(snapshot, findings, thresholds), ensure_ascii=True, indent=2))
    else:
        print(health_report(snapshot, findings, thresholds))
    return exit_code(overall(findings))
