"""The detail pane: every column of one event, checksum verdict, timelines, payload and metadata.

Everything from the database goes through dlq_tui.text. A payload longer than one page is shown a page
at a time (the screen fetches further pages with fetch_payload_slice in a worker), so a 5 MB payload
never reaches a widget whole. JSON values are drawn by text.safe_json only (bounded and iterative): nothing
here recurses on data (no json.dumps, no str() of a container), so no nesting depth can crash the screen.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from dlq_tui.db.models import EventDetail, JsonText
from dlq_tui.db.schema import priority_label
from dlq_tui.ui import format as fmt

PAYLOAD_PAGE_CHARS = 8_000

TIME_KEYS = ("timestamp", "time", "at", "attempted_at", "occurred_at", "created_at")
KIND_KEYS = ("type", "error_type", "method", "action", "kind")
MESSAGE_KEYS = ("message", "error", "error_message", "detail", "reason", "note")
SUCCESS_KEYS = ("success", "ok", "succeeded")


def _label(name: str) -> Text:
    return Text(f"{name:<13}", style="bold dim")


def _field(name: str, value: Text | str) -> Text:
    line = _label(name)
    line.append_text(value if isinstance(value, Text) else Text(value))
    return line


def _first(entry: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in entry:
            return key, entry[key]
    return None, None


def inline(value: Any, limit: int, style: str = "") -> Text:
    """One value of a timeline entry on one line: a string as text, anything else as compact JSON."""
    from dlq_tui.text import safe_json, safe_text

    if isinstance(value, str):
        return safe_text(value, limit=limit, style=style)
    return safe_json("null" if value is None else value, limit=limit, multiline=False)


def timeline(title: str, value: Any) -> Text:
    """A list of dict entries as one line each (time, kind, message, success); unknown keys are kept."""
    from dlq_tui.text import safe_json

    out = Text()
    if value is None:
        out.append(f"── {title}: none\n", style="bold dim")
        return out
    if isinstance(value, JsonText):
        # Too big or too deep to parse (the db layer hands back the text): the printer shows it, cut.
        out.append(f"── {title} (too big or too deep to list, shown as stored)\n", style="bold yellow")
        out.append_text(safe_json(value.text, total_bytes=value.total_bytes))
        out.append("\n")
        return out
    if not isinstance(value, list):
        # Not the documented shape: show exactly what is stored.
        out.append(f"── {title} (not a list, shown as stored)\n", style="bold yellow")
        out.append_text(safe_json(value))
        out.append("\n")
        return out
    out.append(f"── {title} ({len(value)})\n", style="bold")
    for entry in value[-50:]:
        if is_audit_entry(entry):
            out.append_text(audit_line(entry))
            continue
        if not isinstance(entry, dict):
            out.append("  • ")
            out.append_text(inline(entry, 300))
            out.append("\n")
            continue
        used: set[str] = set()
        t_key, t_val = _first(entry, TIME_KEYS)
        k_key, k_val = _first(entry, KIND_KEYS)
        m_key, m_val = _first(entry, MESSAGE_KEYS)
        s_key, s_val = _first(entry, SUCCESS_KEYS)
        used.update(k for k in (t_key, k_key, m_key, s_key) if k)
        mark = (
            Text("  ? ", style="dim")
            if s_key is None
            else (Text("  ✓ ", style="green") if s_val is True else Text("  ✗ ", style="bold red"))
        )
        out.append_text(mark)
        out.append_text(inline(t_val, 32, "dim") if t_val is not None else Text("-", style="dim"))
        out.append("  ")
        out.append_text(inline(k_val, 40, "cyan") if k_val is not None else Text("-", style="cyan"))
        if m_key:
            out.append("  ")
            out.append_text(inline(m_val, 300))
        for key, extra in entry.items():
            if key in used:
                continue
            out.append("\n      ")
            out.append_text(inline(f"{key}=", 60, "dim"))
            out.append_text(inline(extra, 300))
        out.append("\n")
    if len(value) > 50:
        out.append(f"  (first {len(value) - 50} older entries not shown)\n", style="dim")
    return out


AUDIT_PREFIX = "operator:"
AUDIT_KEYS = {"timestamp", "method", "operator", "success", "changes", "note"}
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def is_audit_entry(entry: Any) -> bool:
    """An entry written by dlq_tui.db.triage (anything else, even if similar, takes the generic path)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("method"), str)
        and entry["method"].startswith(AUDIT_PREFIX)
        and isinstance(entry.get("changes", {}), dict)
        and set(entry) <= AUDIT_KEYS
    )


def _audit_value(key: str, value: Any, style: str = "") -> Text:
    if value is None:
        return Text("-", style=style)
    if key == "processing_lock" and isinstance(value, str):
        return inline(value[:8] + "…", 120, style)  # a lock token: its first group is enough to tell two apart
    return inline(value, 120, style)


def audit_line(entry: dict[str, Any]) -> Text:
    """`✓ 2024-03-12T09:30  classify by alice  classification - → malicious` (+ the note below)."""
    from dlq_tui.text import safe_text

    out = Text("  ✓ ", style="green") if entry.get("success") is True else Text("  ✗ ", style="bold red")
    stamp = entry.get("timestamp", "-")
    if isinstance(stamp, str) and ISO_TIME.fullmatch(stamp):
        stamp = stamp[:19]  # to the second: the fraction and the zone triage writes add nothing here
    out.append_text(inline(stamp, 32, "dim"))  # anything else is shown as written, cut with a marker
    out.append("  ")
    out.append_text(safe_text(entry["method"].removeprefix(AUDIT_PREFIX), limit=40, style="bold cyan"))
    out.append(" by ", style="dim")
    out.append_text(inline(entry.get("operator", "?"), 60, "bold"))
    changes = entry.get("changes") or {}
    for key, change in changes.items():
        out.append("\n      ")
        out.append_text(safe_text(key, limit=60, style="dim"))
        out.append(" ")
        if isinstance(change, dict) and set(change) == {"old", "new"}:
            out.append_text(_audit_value(key, change["old"]))
            out.append(" → ", style="dim")
            out.append_text(_audit_value(key, change["new"], "bold"))
        else:
            out.append_text(inline(change, 300))
    if not changes:
        out.append("  (no change)", style="dim")
    if entry.get("note") is not None:
        out.append("\n      note ", style="dim")
        out.append_text(inline(entry["note"], 300))
    out.append("\n")
    return out


def countdown(seconds: float) -> str:
    """Time left on a lock, to the second: 29:05, 1:02:03."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def checksum_text(detail: EventDetail) -> Text:
    from dlq_tui.text import safe_text

    status = detail.checksum_status
    if status == "match":
        return Text("match ✓ (sha256 of payload::text recomputed now)", style="green")
    if status == "mismatch":
        # A mismatch is exactly when the row may have been tampered with: the stored value is anyone's text.
        text = Text("MISMATCH", style="bold white on red")
        text.append("  stored ", style="red")
        text.append_text(safe_text(detail.payload_checksum, style="red"))
        text.append("  computed ", style="red")
        text.append_text(safe_text(detail.computed_checksum, style="red"))
        return text
    return Text("none (no checksum stored)", style="dim")


class EventDetailPane(VerticalScroll):
    """Focusable (enter from the table) so long details scroll with the keyboard."""

    can_focus = True
    DEFAULT_CSS = """
    EventDetailPane { border: round $panel-lighten-2; border-title-color: $text-muted; padding: 0 1; }
    EventDetailPane:focus { border: round $accent; }
    EventDetailPane > Static { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "detail"
        self.detail: EventDetail | None = None
        self.payload_page = 0
        self.my_token: uuid.UUID | None = None  # this session's lock token (set by the events screen)
        self.my_name: str | None = None  # this session's --operator name: a lock claimed under it can be taken back
        self.lock_holder: str | None = None  # who claimed the shown event's lock (None: the processor)
        self._fields: list[Text] = []
        self._now: datetime | None = None  # the clock when the detail was shown ...
        self._shown_at = 0.0  # ... and the monotonic instant of that, so the countdown needs no query
        self._live = True  # False under a frozen clock: screenshots stay the same

    def on_mount(self) -> None:
        # Cheap: it redraws one field list, and only while a lock is shown.
        self.set_interval(1.0, self._tick)

    def compose(self) -> ComposeResult:
        yield Static(Text("Highlight an event to see it here.", style="dim"), id="detail-fields")
        yield Static(id="detail-timelines")
        yield Static(id="detail-payload")
        yield Static(id="detail-metadata")

    @property
    def payload_pages(self) -> int:
        if self.detail is None:
            return 0
        return max(1, -(-self.detail.payload_total_chars // PAYLOAD_PAGE_CHARS))

    def show_loading(self, event_id: int) -> None:
        self.border_title = f"event {event_id} …"

    def show_missing(self, event_id: int) -> None:
        self.detail = None
        self.border_title = f"event {event_id}"
        self.query_one("#detail-fields", Static).update(Text("This event no longer exists.", style="yellow"))
        for name in ("timelines", "payload", "metadata"):
            self.query_one(f"#detail-{name}", Static).update("")

    def show(self, detail: EventDetail, now: datetime, *, live: bool = True) -> None:
        from dlq_tui.text import safe_json, safe_text

        self.detail = detail
        self._now, self._shown_at, self._live = now, time.monotonic(), live
        self.payload_page = 0
        row = detail.row
        self.border_title = f"event {row.id}"
        lines = [
            _field("priority", Text(f"{row.priority} {priority_label(row.priority)}")),
            _field("class", safe_text(row.classification) if row.classification else Text("unclassified", "dim")),
            _field("reason", safe_text(row.reason)),
            _field("source", safe_text(row.source or "-")),
            _field("offset", str(row.source_offset) if row.source_offset is not None else "-"),
            _field("ingest id", safe_text(detail.ingest_id or "-")),
            _field("created", f"{fmt.when(row.created_at)} UTC ({fmt.age_between(row.created_at, now)} ago)"),
            _field("updated", fmt.when(detail.updated_at)),
            _field("last process", fmt.when(detail.last_processed_at)),
            _field("retries", Text(str(row.retry_count), style="bold yellow" if row.retry_count > 5 else "")),
            _field("resolved", self._resolved(detail)),
            _field("lock", self._lock(detail, now)),
            _field("checksum", checksum_text(detail)),
            _field("idempotency", safe_text(detail.idempotency_key or "-")),
        ]
        self._fields = lines
        self.query_one("#detail-fields", Static).update(Group(*lines))
        self.query_one("#detail-timelines", Static).update(
            Group(
                timeline("error history", detail.error_history),
                timeline("processing attempts", detail.processing_attempts),
            )
        )
        self._show_payload_text(detail.payload_text if self.payload_pages == 1 else None)
        metadata = Text("── metadata\n", style="bold")
        metadata.append_text(
            safe_json(detail.metadata_text, total_bytes=detail.metadata_total_bytes)
            if detail.metadata_text is not None
            else Text("none", "dim")
        )
        self.query_one("#detail-metadata", Static).update(metadata)
        self.scroll_home(animate=False)

    def _resolved(self, detail: EventDetail) -> Text:
        from dlq_tui.text import safe_text

        if not detail.row.resolved:
            return Text("no", style="yellow")
        text = Text(f"yes, {fmt.when(detail.resolved_at)}", style="green")
        if detail.resolution_method:
            text.append(" via ")
            text.append_text(safe_text(detail.resolution_method))
        return text

    def _lock(self, detail: EventDetail, now: datetime) -> Text:
        row = detail.row
        state = fmt.lock_state(row, now)
        if state == "free":
            return Text("free", style="dim")
        mine = self.my_token is not None and row.processing_lock == self.my_token
        if state == "held" and row.lock_expires_at is not None:
            left = countdown((row.lock_expires_at - now).total_seconds())
            if mine:
                text = Text(f"mine, {left} left", style="bold green")
            else:
                text = self._holder()
                text.append(f", {left} left")
            text.append(f" (until {fmt.when(row.lock_expires_at)} UTC)", style="dim")
        else:
            text = Text(f"expired at {fmt.when(row.lock_expires_at)} UTC", style="yellow")
            text.append(" (free to claim)", style="dim")
        text.append(f"  {str(row.processing_lock)[:8]}…", style="dim")  # the token's first group tells them apart
        return text

    def _holder(self) -> Text:
        """Who holds a lock that is not this session's: the operator of the claim that set it, else the processor."""
        from dlq_tui.text import safe_text

        holder = self.lock_holder
        if holder is None:
            return Text("held by the processor (no operator claim)", style="bold magenta")
        if holder == self.my_name:
            text = Text("held by another session of yours (", style="bold yellow")
            text.append_text(safe_text(holder, limit=60))
            text.append("): T takes it back")
            return text
        text = Text("held by ", style="bold magenta")
        text.append_text(safe_text(holder, limit=60))
        text.append(" (another session)")
        return text

    def _tick(self) -> None:
        detail = self.detail
        if detail is None or self._now is None or detail.row.processing_lock is None or not self._fields:
            return
        now = self._now + timedelta(seconds=time.monotonic() - self._shown_at) if self._live else self._now
        index = next((i for i, line in enumerate(self._fields) if line.plain.startswith("lock ")), None)
        if index is None:
            return
        self._fields[index] = _field("lock", self._lock(detail, now))
        self.query_one("#detail-fields", Static).update(Group(*self._fields))

    def _payload_header(self) -> Text:
        assert self.detail is not None
        text = Text(f"── payload ({self.detail.payload_total_bytes:,} bytes)", style="bold")
        if self.payload_pages > 1:
            start = self.payload_page * PAYLOAD_PAGE_CHARS
            end = min(self.detail.payload_total_chars, start + PAYLOAD_PAGE_CHARS)
            text.append(
                f"  page {self.payload_page + 1}/{self.payload_pages}: chars {start:,}-{end:,} of "
                f"{self.detail.payload_total_chars:,}  ] next  [ previous",
                style="bold yellow",
            )
        text.append("\n")
        return text

    def _show_payload_text(self, whole: str | None) -> None:
        """whole: the complete payload (pretty JSON); None: show page 0 of a long payload as raw text."""
        from dlq_tui.text import safe_json

        assert self.detail is not None
        if whole is not None:
            self.query_one("#detail-payload", Static).update(Group(self._payload_header(), safe_json(whole)))
        else:
            self.show_payload_page(0, self.detail.payload_text[:PAYLOAD_PAGE_CHARS])

    def show_payload_page(self, page: int, chunk: str) -> None:
        from dlq_tui.text import safe_text

        if self.detail is None:
            return
        self.payload_page = page
        body = safe_text(chunk, limit=PAYLOAD_PAGE_CHARS, multiline=True)
        more = self.detail.payload_total_chars - (page + 1) * PAYLOAD_PAGE_CHARS
        footer = (
            Text(f"\n… {more:,} more characters: press ] for the next page", style="bold yellow")
            if more > 0
            else Text()
        )
        self.query_one("#detail-payload", Static).update(Group(self._payload_header(), body, footer))
