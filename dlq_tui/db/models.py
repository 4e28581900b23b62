"""Plain records that the db layer returns and the CLI and UI consume (no SQLAlchemy, no Textual).

Text fields hold the raw database values: anything shown on screen goes through dlq_tui/text.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

LockFilter = Literal["any", "locked", "free"]
LockState = Literal["free", "held", "expired"]
# The events list's orders: by priority then age (the default), newest first, most retries first.
SortOrder = Literal["priority", "newest", "retries"]
SORT_ORDERS: tuple[SortOrder, ...] = ("priority", "newest", "retries")


@dataclass(frozen=True)
class HealthFigures:
    """Every field of the dlq_health view, plus the true oldest pending event.

    The spec's view calls MAX(created_at) "oldest_unresolved_event" (it is the newest); we keep the
    view's value as `newest_unresolved_event` and compute `oldest_pending_at` with MIN() ourselves.
    """

    pending_events: int
    processed_events: int
    avg_resolution_time_seconds: float | None
    newest_unresolved_event: datetime | None
    oldest_pending_at: datetime | None
    high_retry_events: int
    locked_events: int
    malicious_events: int
    high_priority_events: int


@dataclass(frozen=True)
class Breaker:
    name: str
    state: str  # closed | open | half_open (anything else is shown as is)
    failure_count: int
    failure_threshold: int
    timeout_seconds: int
    last_failure_time: datetime | None
    next_attempt_time: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ProcessingRun:
    """One row of dlq_processing_metrics."""

    session_id: str
    method: str
    batch_size: int
    processed: int
    repaired: int
    failed: int
    skipped: int
    duration_ms: int
    circuit_breaker_triggered: bool
    started_at: datetime
    completed_at: datetime


@dataclass(frozen=True)
class ReasonStat:
    reason: str
    count: int
    avg_retries: float


@dataclass(frozen=True)
class Analysis:
    """What the old CLI's `analyze` printed: top failure reasons, pending by priority and classification."""

    top_reasons: list[ReasonStat]
    pending_by_priority: list[tuple[int, int]]  # (priority, count), priority ascending
    pending_by_classification: list[tuple[str | None, int]]  # None = unclassified


@dataclass(frozen=True)
class HealthSnapshot:
    figures: HealthFigures
    breakers: list[Breaker]
    recent_runs: list[ProcessingRun]
    analysis: Analysis
    db_now: datetime  # the server's clock when the figures were read (ages are computed against it)
    trends: Trends | None = None


@dataclass(frozen=True)
class FastFigures:
    """The dlq_health figures that indexes answer (all but processed and the average resolution time).

    Each is defined exactly as the view defines it (the same rule, counted over the same rows), so that the
    health screen can show them every few seconds and the view's row only on a slower cadence.
    """

    pending_events: int
    oldest_pending_at: datetime | None
    newest_unresolved_event: datetime | None
    high_retry_events: int
    locked_events: int
    malicious_events: int
    high_priority_events: int


@dataclass(frozen=True)
class FastSnapshot:
    """One fast-tier refresh: the index-served figures, breakers, last runs and the pending breakdowns."""

    figures: FastFigures
    breakers: list[Breaker]
    recent_runs: list[ProcessingRun]
    analysis: Analysis
    db_now: datetime


@dataclass(frozen=True)
class TrendSeries:
    """Events arriving (created_at) and resolved (resolved_at) per bucket, oldest bucket first."""

    bucket: Literal["hour", "day"]
    starts: list[datetime]  # each bucket's start (UTC); a bucket covers [start, start + one bucket)
    arrived: list[int]
    resolved: list[int]


@dataclass(frozen=True)
class Trends:
    hourly: TrendSeries  # the last 24 hours, the current hour last
    daily: TrendSeries  # the last 30 days (UTC), today last


@dataclass(frozen=True)
class ViewReading:
    """The dlq_health row itself (slow: a pass over the whole table), the trends, and when they were read."""

    figures: HealthFigures
    trends: Trends
    db_now: datetime


@dataclass(frozen=True)
class EventFilter:
    max_priority: int | None = None  # show priority <= this
    classification: str | None = None  # a value, or "" for unclassified only
    reason: str | None = None  # exact reason code
    text: str | None = None  # substring over source and reason (case-insensitive)
    lock: LockFilter = "any"
    include_resolved: bool = False
    order: SortOrder = "priority"  # not a filter: the same events in another order (the view's sort)

    def same_events(self, other: EventFilter) -> bool:
        """Both select the same set of events (they may list them in another order)."""
        return replace(self, order=other.order) == other


@dataclass(frozen=True)
class PageCursor:
    """Keyset position: the sort key of the last row of the previous page (every order's columns)."""

    priority: int
    created_at: datetime
    id: int
    retry_count: int = 0


@dataclass(frozen=True)
class EventRow:
    id: int
    priority: int
    classification: str | None
    reason: str
    source: str | None
    source_offset: int | None
    retry_count: int
    created_at: datetime
    resolved: bool
    processing_lock: uuid.UUID | None
    lock_expires_at: datetime | None
    db_now: datetime

    @property
    def lock_state(self) -> LockState:
        if self.processing_lock is None:
            return "free"
        if self.lock_expires_at is not None and self.lock_expires_at > self.db_now:
            return "held"
        return "expired"

    @property
    def cursor(self) -> PageCursor:
        return PageCursor(self.priority, self.created_at, self.id, self.retry_count)


@dataclass(frozen=True)
class EventPage:
    rows: list[EventRow]
    next_cursor: PageCursor | None  # None when this was the last page


@dataclass(frozen=True)
class JsonText:
    """A JSON column handed over as its stored text, not parsed: too big, or nested too deep to parse safely.

    `text` may be only the beginning of the value; `total_bytes` is the UTF-8 size of the whole of it.
    """

    text: str
    total_bytes: int


@dataclass(frozen=True)
class EventDetail:
    """Every column of one event. Payload text may be cut: see payload_total_bytes."""

    row: EventRow
    ingest_id: str | None
    resolved_at: datetime | None
    payload_text: str  # payload::text, at most the requested number of characters
    payload_total_chars: int
    payload_total_bytes: int
    metadata_text: str | None  # metadata_json::text, at most as many characters as the payload
    metadata_total_bytes: int | None  # the UTF-8 size of all of it
    payload_checksum: str | None  # stored
    computed_checksum: str  # sha256 of payload::text, computed now by the server
    idempotency_key: str | None
    # Parsed JSON, at most AUDIT_JSON_MAX_DEPTH levels deep (normally a list of dicts), or JsonText.
    error_history: Any
    processing_attempts: Any
    resolution_method: str | None
    updated_at: datetime | None
    last_processed_at: datetime | None

    @property
    def checksum_status(self) -> Literal["match", "mismatch", "none"]:
        if self.payload_checksum is None:
            return "none"
        return "match" if self.payload_checksum == self.computed_checksum else "mismatch"


@dataclass
class ActionResult:
    """What a triage action did, per event: done, or skipped with the reason."""

    action: str
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        text = f"{self.action}: {len(self.done)} done"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text
