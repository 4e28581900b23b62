"""Small, pure formatting helpers for the screens (ages, times, lock status, source paths).

They never see markup: callers wrap every database-derived string with dlq_tui.text before display.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dlq_tui.db.models import EventRow, LockState
from dlq_tui.health_rules import format_age


def age(seconds: float | None) -> str:
    """A compact age: 42s, 7m, 3h 05m, 2d 04h ("-" when unknown); one formatter for the CLI and the app."""
    return "-" if seconds is None else format_age(seconds)


def age_between(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    return age((now - then).total_seconds())


def when(value: datetime | None) -> str:
    """A timestamp in UTC: operators in several time zones read the same figure."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return age(seconds)


def lock_state(row: EventRow, now: datetime) -> LockState:
    """Like EventRow.lock_state but against the app's clock (so a frozen clock gives stable screens)."""
    if row.processing_lock is None:
        return "free"
    if row.lock_expires_at is not None and row.lock_expires_at > now:
        return "held"
    return "expired"


def lock_label(row: EventRow, now: datetime) -> str:
    state = lock_state(row, now)
    if state == "held" and row.lock_expires_at is not None:
        return f"held {age((row.lock_expires_at - now).total_seconds())}"
    return state


def short_source(source: str | None, width: int = 28) -> str:
    """Keep the end of a path (the file name says most), cut the middle: /var/log/…/cowrie.json.3."""
    if not source:
        return "-"
    if len(source) <= width:
        return source
    tail = source.rsplit("/", 1)[-1]
    if len(tail) >= width - 2:
        return "…" + source[-(width - 1) :]
    head_room = width - len(tail) - 2  # room for "…/"
    head = source[: max(0, head_room)]
    return f"{head}…/{tail}"


BAR_LEVELS = "▁▂▃▄▅▆▇█"


def bars(values: list[int], peak: int | None = None) -> str:
    """One cell a value, heights from zero to the peak (not from the minimum, as Textual's Sparkline scales:
    a flat 1,900/h with one 1,950 must look flat). Zero is a blank cell; any other value is at least one eighth
    high, so a single event in an hour still shows."""
    top = max(values, default=0) if peak is None else peak
    if top <= 0:
        return " " * len(values)
    cells = []
    for value in values:
        if value <= 0:
            cells.append(" ")
        else:
            level = max(1, min(len(BAR_LEVELS), round(value / top * len(BAR_LEVELS))))
            cells.append(BAR_LEVELS[level - 1])
    return "".join(cells)
