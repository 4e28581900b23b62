"""When health figures are OK, a warning or critical: one set of rules for `dlq-tui health` and the health screen.

No UI code here: the CLI turns findings into an exit code, the health screen colours its tiles from them.

Default thresholds (a value at or above a level trips it; None = that level is not checked):

| field                 | warning   | critical  | why                                                        |
| --------------------- | --------- | --------- | ---------------------------------------------------------- |
| pending_events        | 1,000     | 10,000    | a backlog the processor is not keeping up with             |
| high_retry_events     | 100       | 1,000     | events failing over and over (retry_count > 5, view's rule) |
| locked_events         | 50        | 500       | many live locks: a processor stuck or crashed mid-batch    |
| oldest_pending_at age | 24 hours  | 168 hours | an event nobody handled for a day / a week                 |
| malicious pending     | 1         | -         | a pending event classified malicious needs a human         |
| high-priority pending | -         | -         | shown, not checked unless asked for (--warn-high-priority)  |

Malicious and high-priority are checked on *pending* events (from the analysis), not on the view's
totals: the view counts resolved events too, so a threshold on it would stay tripped forever once one
malicious event had been handled. Circuit breakers: open is critical, half_open a warning, closed ok,
any other state a warning (the processor wrote something we do not know).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dlq_tui.db.models import Breaker, FastSnapshot, HealthSnapshot

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")


@dataclass(frozen=True)
class Thresholds:
    pending_warn: int | None = 1_000
    pending_crit: int | None = 10_000
    high_retry_warn: int | None = 100
    high_retry_crit: int | None = 1_000
    locked_warn: int | None = 50
    locked_crit: int | None = 500
    oldest_warn_hours: float | None = 24.0
    oldest_crit_hours: float | None = 168.0
    malicious_warn: int | None = 1
    malicious_crit: int | None = None
    high_priority_warn: int | None = None
    high_priority_crit: int | None = None


@dataclass(frozen=True)
class Finding:
    level: Level
    field: str  # a HealthFigures field name, or "breaker:<name>"
    message: str  # plain text; may contain database text (breaker names): render through text.py


def _level(value: float, warn: float | None, crit: float | None) -> Level:
    if crit is not None and value >= crit:
        return "critical"
    if warn is not None and value >= warn:
        return "warning"
    return "ok"


def _limits(warn: float | None, crit: float | None, unit: str = "") -> str:
    parts = [f"{name} {value:g}{unit}" for name, value in (("warn", warn), ("crit", crit)) if value is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _count_check(field: str, what: str, value: int, warn: int | None, crit: int | None) -> Finding | None:
    """what is "event(s) ..." phrasing; the plural is picked here."""
    if warn is None and crit is None:
        return None
    what = what.replace("event(s)", "event" if value == 1 else "events")
    return Finding(_level(value, warn, crit), field, f"{value:,} {what}{_limits(warn, crit)}")


def format_age(seconds: float) -> str:
    """A short human age, the same in the CLI and the app: 45s, 12m, 5h 03m, 3d 04h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def evaluate(snapshot: HealthSnapshot | FastSnapshot, thresholds: Thresholds | None = None) -> list[Finding]:
    """One finding per checked field, then one per circuit breaker, in a stable order.

    Every checked figure is one the fast tier reads too: the health screen judges each fast refresh.
    """
    t = thresholds or Thresholds()
    f = snapshot.figures
    findings: list[Finding | None] = [
        _count_check("pending_events", "pending event(s)", f.pending_events, t.pending_warn, t.pending_crit),
        _count_check(
            "high_retry_events",
            "event(s) retried more than 5 times",
            f.high_retry_events,
            t.high_retry_warn,
            t.high_retry_crit,
        ),
        _count_check("locked_events", "event(s) locked by a processor", f.locked_events, t.locked_warn, t.locked_crit),
    ]
    if t.oldest_warn_hours is not None or t.oldest_crit_hours is not None:
        if f.oldest_pending_at is None:
            findings.append(Finding("ok", "oldest_pending_at", "no pending events"))
        else:
            age = (snapshot.db_now - f.oldest_pending_at).total_seconds()
            level = _level(
                age / 3600,
                t.oldest_warn_hours,
                t.oldest_crit_hours,
            )
            limits = _limits(t.oldest_warn_hours, t.oldest_crit_hours, "h")
            findings.append(
                Finding(level, "oldest_pending_at", f"oldest pending event is {format_age(age)} old{limits}")
            )

    malicious_pending = sum(n for cls, n in snapshot.analysis.pending_by_classification if cls == "malicious")
    findings.append(
        _count_check(
            "malicious_events",
            f"pending event(s) classified malicious, {f.malicious_events:,} in total",
            malicious_pending,
            t.malicious_warn,
            t.malicious_crit,
        )
    )
    high_pending = sum(n for priority, n in snapshot.analysis.pending_by_priority if priority <= 3)
    findings.append(
        _count_check(
            "high_priority_events",
            "pending event(s) of priority 1-3",
            high_pending,
            t.high_priority_warn,
            t.high_priority_crit,
        )
    )
    for b in snapshot.breakers:
        findings.append(breaker_finding(b, snapshot.db_now))
    return [finding for finding in findings if finding is not None]


def breaker_finding(b: Breaker, db_now: datetime) -> Finding:
    name, state = b.name, b.state
    field = f"breaker:{name}"
    counts = f"{b.failure_count}/{b.failure_threshold} failures"
    if state == "closed":
        return Finding("ok", field, f"breaker {name} is closed ({counts})")
    when = ""
    if b.next_attempt_time is not None:
        delta = (b.next_attempt_time - db_now).total_seconds()
        when = f", next attempt in {format_age(delta)}" if delta > 0 else ", next attempt due now"
    if state == "open":
        return Finding("critical", field, f"breaker {name} is open ({counts}{when})")
    if state == "half_open":
        return Finding("warning", field, f"breaker {name} is half-open ({counts}{when})")
    return Finding("warning", field, f"breaker {name} is in an unknown state {state!r} ({counts})")


def worst_first(findings: list[Finding]) -> list[Finding]:
    """Critical, then warning, then ok; stable within a level."""
    return sorted(findings, key=lambda f: -LEVELS.index(f.level))


def overall(findings: list[Finding]) -> Level:
    """The worst level among the findings (ok when there are none)."""
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def exit_code(level: Level) -> int:
    """Monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL (3 UNKNOWN is decided by the caller)."""
    return LEVELS.index(level)
