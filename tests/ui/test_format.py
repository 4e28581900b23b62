"""Pure display helpers: ages, source shortening, lock labels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from dlq_tui.db.models import EventRow
from dlq_tui.ui import format as fmt

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_ages_read_compactly() -> None:
    assert [fmt.age(s) for s in (5, 75, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == ["5s", "1m", "3h 05m", "2d 04h"]
    assert fmt.age(None) == "-"


def test_short_source_keeps_the_file_name() -> None:
    long = "/var/log/very/deep/directory/tree/cowrie.json.3"
    short = fmt.short_source(long, 28)
    assert short.endswith("cowrie.json.3") and len(short) <= 28 and "…" in short
    assert fmt.short_source("/tmp/a.json", 28) == "/tmp/a.json"
    assert fmt.short_source(None) == "-"


def _row(lock: uuid.UUID | None, expires: datetime | None) -> EventRow:
    return EventRow(1, 5, None, "r", "s", 0, 0, NOW, False, lock, expires, NOW)


def test_lock_label_free_held_expired() -> None:
    assert fmt.lock_label(_row(None, None), NOW) == "free"
    assert fmt.lock_label(_row(uuid.uuid4(), NOW + timedelta(minutes=12)), NOW) == "held 12m"
    assert fmt.lock_label(_row(uuid.uuid4(), NOW - timedelta(minutes=1)), NOW) == "expired"


def test_bars_start_from_zero_not_from_the_minimum() -> None:
    """A flat 1,900/h with one 1,950 stays flat (Textual's Sparkline, scaled from the minimum, draws a spike);
    zero is blank and a single event still shows."""
    from dlq_tui.ui.format import bars

    flat = bars([1900] * 23 + [1950])
    assert set(flat) == {"█"}
    assert bars([0, 1, 1000, 500]) == " ▁█▄"
    assert bars([0, 0]) == "  " and bars([]) == ""
