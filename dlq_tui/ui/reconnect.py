"""Reconnect timing: exponential backoff with a cap, and how the link state reads in the top bar.

Kept free of Textual so the schedule and the wording can be tested without an app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0


@dataclass
class Backoff:
    """1, 2, 4, 8, 16, 30, 30, ... seconds; reset() after a success starts again at `first`."""

    first: float = FIRST_DELAY_S
    factor: float = 2.0
    cap: float = MAX_DELAY_S
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.first


def clock_time(value: datetime) -> str:
    """HH:MM:SS in UTC, like every other time on screen."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%H:%M:%S")


def disconnected_label(last_good: datetime | None, retry_in: float | None) -> str:
    """'disconnected, retrying in 4s · last good data 09:30:00' (no database text: safe as is)."""
    if retry_in is None or retry_in <= 0.5:
        head = "disconnected, retrying now"
    else:
        head = f"disconnected, retrying in {int(retry_in + 0.5)}s"
    tail = f"last good data {clock_time(last_good)}" if last_good is not None else "no data read yet"
    return f"{head} · {tail}"
