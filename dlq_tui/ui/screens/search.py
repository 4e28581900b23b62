"""`/` on the events screen: a search box, and the search it starts (pages of matches, the counter, esc to cancel).

The events screen keeps paging exactly as for a filter: while a search is on, its page calls go to
DataSource.search (a chunked keyset scan, see dlq_tui.db.search) instead of DataSource.page. Beside the page
scan a counter reads the whole view in table order so the status line can say "searching… N matches, X% of table
scanned"; esc cancels both, on the server too. Related-event keys (same session, source file, source IP,
checksum) are just searches: the query is put in the box's history and shown like a typed one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from dlq_tui.db.models import EventFilter, EventPage, PageCursor
from dlq_tui.search.query import (
    QUERY_MAX_CHARS,
    RELATED,
    SAVED_PREFIX,
    QueryError,
    SearchQuery,
    expand_saved,
    parse_query,
    related_query,
)
from dlq_tui.text import plain
from dlq_tui.ui.screens.fields import AGAIN, FieldError, FieldInput, Typeable, at_most, first_failure
from dlq_tui.ui.screens.modal import DlqModal
from dlq_tui.ui.source import DataSource, ScanProgress, SearchCancelled, SearchHandle

if TYPE_CHECKING:
    from dlq_tui.ui.screens.events import EventsScreen

QUERY = "the query"
HISTORY_MAX = 50
# The language in help (`?`): (example, what it matches), the same as the README's Search table.
SEARCH_LANGUAGE: tuple[tuple[str, str], ...] = (
    ('wget  "chmod +x"', "text anywhere in the payload as stored, any case; quotes make a phrase"),
    ("src_ip:1.2.3.4", "a key at any depth (also inside malformed_content) whose value contains the text"),
    ("session:  a.b:x", "the key is present / a key path"),
    ("source:F  checksum:H", "the event's source file / stored payload checksum, exactly"),
    ("reason:C  class:malicious", "the filters: exact reason, classification (corrupted, format_error, none)"),
    ("priority<=2  locked  free", "at most that priority, held or free locks only"),
    ("resolved", 'resolved events too; terms combine with AND; quote a word to search it as text ("a:b")'),
    ("@name", "a saved search: the config file's [searches]"),
)
HELP_LINES = (
    'wget  "chmod +x"  text anywhere in the payload (any case)',
    "src_ip:1.2.3.4  session:abcd  input:wget  a key at any depth, also inside malformed_content",
    "source:FILE  checksum:HEX  reason:CODE  class:malicious  priority<=2  locked  free  resolved",
)


class SearchModal(DlqModal[str | None]):
    """One line for a query; ↑/↓ walk the history; enter searches, esc leaves things as they were."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="search.cancel"),
        Binding("up", "history(-1)", "Older query", id="search.older", show=False),
        Binding("down", "history(1)", "Newer query", id="search.newer", show=False),
    ]
    DEFAULT_CSS = """
    SearchModal { align: center middle; }
    SearchModal > Vertical { width: 96; max-width: 100%; height: auto; border: round $accent;
                             background: $surface; padding: 0 1; }
    SearchModal .search-help { color: $text-muted; }
    """

    def __init__(self, current: str, history: list[str], saved: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.current = current
        self.history = history
        self.saved = dict(saved or {})  # the config file's [searches]: typed as @name
        self._at = len(history)  # past the newest: the line being typed

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Search events (enter searches, esc cancels, ↑/↓ history)", style="bold"))
            yield FieldInput(
                self.current,
                what=QUERY,
                placeholder="text, key:value, filters — e.g. src_ip:198.51.100.7 priority<=2",
                max_length=QUERY_MAX_CHARS,
                validators=[Typeable(QUERY), at_most(QUERY, QUERY_MAX_CHARS)],
                id="search-query",
            )
            yield FieldError(id="search-error")
            for line in HELP_LINES:
                yield Static(Text(line), classes="search-help")
            if self.saved:
                names = "  ".join(SAVED_PREFIX + name for name in sorted(self.saved))
                yield Static(Text(plain(f"saved: {names}", limit=400)), classes="search-help", id="search-saved")

    def on_mount(self) -> None:
        self.query_one("#search-query", Input).focus()

    def _problem(self, value: str) -> str | None:
        field = self.query_one("#search-query", FieldInput)
        if (problem := first_failure(field.validate(value))) is not None:
            return problem
        try:
            parse_query(expand_saved(value, self.saved))
        except QueryError as exc:
            return plain(str(exc), limit=300)
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        value = event.value
        # An empty line is not an error while typing; enter on it says what to type.
        self.query_one(FieldError).say(self._problem(value) if value.strip() else None)

    def on_field_input_refused(self, event: FieldInput.Refused) -> None:
        self.query_one(FieldError).say(event.reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = self.query_one("#search-query", FieldInput)
        if (refusal := field.take_refusal()) is not None:
            self.query_one(FieldError).say(refusal + AGAIN)
            return
        if (problem := self._problem(field.value)) is not None:
            self.query_one(FieldError).say(problem)
            return
        self.dismiss(field.value.strip())

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = min(max(0, self._at + step), len(self.history))
        field = self.query_one("#search-query", FieldInput)
        field.value = self.history[self._at] if self._at < len(self.history) else ""
        field.cursor_position = len(field.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchProgressed(Message):
    def __init__(self, generation: int, progress: ScanProgress, counting: bool) -> None:
        super().__init__()
        self.generation = generation
        self.progress = progress
        self.counting = counting  # from the counter (after the first page), not from a page scan


@dataclass
class SearchState:
    """The events screen's search: the query on top of the screen's filter, and how far its scan got."""

    query: SearchQuery | None = None
    history: list[str] = field(default_factory=list)
    handle: SearchHandle | None = None
    progress: ScanProgress | None = None
    running: bool = False
    cancelled: bool = False
    counted: bool = False  # the counter has reported: its figures are the ones shown

    def remember(self, text: str) -> None:
        if text in self.history:
            self.history.remove(text)
        self.history.append(text)
        del self.history[:-HISTORY_MAX]

    def stop(self) -> bool:
        """Cancel the running scan (and its server statement); True when there was one."""
        was = self.running
        if self.handle is not None:
            self.handle.cancel()
        self.running = False
        return was


def with_view(query: SearchQuery, flt: EventFilter) -> SearchQuery:
    return replace(query, filter=flt)


def refused(screen: EventsScreen) -> bool:
    """On SQLite the payload search is not there (the filter's text match is): say so, True when refused."""
    reason = screen.dlq.source.v7_only("search (\\ filters by payload text)")
    if reason is not None:
        screen.notify(reason, title="search", severity="warning", markup=False)
    return reason is not None


def start(screen: EventsScreen, text: str) -> None:
    """Run a query typed in the box (or built for a related-event key) from the top of the list."""
    if refused(screen):
        return
    try:
        query = parse_query(expand_saved(text, screen.dlq.settings.searches), base=screen.filter)
    except QueryError as exc:
        screen.notify(plain(str(exc), limit=300), title="search", severity="error", markup=False)
        return
    state = screen.search
    state.stop()
    state.remember(query.text)
    state.query = query
    state.progress = None
    state.cancelled = False
    # The filter part of the query becomes the view's filter (v, s, backspace keep working on it).
    screen.apply_filter(query.filter, force=True)


def clear(screen: EventsScreen) -> None:
    state = screen.search
    state.stop()
    state.query = None
    state.progress = None
    state.cancelled = False


def page_call(
    screen: EventsScreen, flt: EventFilter, *, after: PageCursor | None = None, before: PageCursor | None = None
) -> Callable[[], EventPage]:
    """What a page load of the events screen calls: DataSource.page, or the search scan while a search is on."""
    source = screen.dlq.source
    state = screen.search
    if state.query is None:
        return lambda: source.page(flt, after=after, before=before)
    query, generation = with_view(state.query, flt), screen.generation
    if after is None and before is None:  # from the top: a new scan (a reload, a new filter, a new query)
        state.stop()
        state.handle = SearchHandle()
        state.running = True
        state.counted = False
        state.progress = None
    handle = state.handle
    assert handle is not None
    first = after is None and before is None

    def call() -> EventPage:
        def progressed(progress: ScanProgress) -> None:
            screen.post_message(SearchProgressed(generation, progress, counting=False))

        if first:
            count(screen, query, handle, generation)
        try:
            found = source.search(query, handle, after=after, before=before, on_progress=progressed if first else None)
        except SearchCancelled as exc:
            return exc.partial.page if exc.partial is not None and first else EventPage([], None)
        return found.page

    return call


def count(screen: EventsScreen, query: SearchQuery, handle: SearchHandle, generation: int) -> None:
    """Beside the page scan: count every match in table order, in a worker of its own (esc stops it too)."""
    source = screen.dlq.source

    def walk() -> None:
        def progressed(now: ScanProgress) -> None:
            screen.post_message(SearchProgressed(generation, now, counting=True))

        with contextlib.suppress(SearchCancelled):
            source.search_count(query, handle, on_progress=progressed)

    screen.app.call_from_thread(
        lambda: screen.run_worker(walk, name="search count", group="search", thread=True, exit_on_error=False)
    )


def progressed(screen: EventsScreen, message: SearchProgressed) -> None:
    state = screen.search
    if message.generation != screen.generation or state.query is None or state.cancelled:
        return
    if message.counting:
        state.counted = True
    elif state.counted:
        return  # the counter's figures cover the whole view: the page scan's would go backwards
    state.progress = message.progress
    if message.counting and message.progress.done:
        state.running = False


def cancel(screen: EventsScreen) -> bool:
    """esc: stop the running search (the server statement too). False when none runs (esc does its usual)."""
    state = screen.search
    if state.query is None or not state.stop():
        return False
    state.cancelled = True
    screen.notify("search cancelled: the matches found so far stay listed", title="search", markup=False)
    return True


def status(state: SearchState) -> Text:
    """The status line's search part: the query, then progress (never parsed as markup)."""
    out = Text()
    if state.query is None:
        return out
    out.append(" · search: ", style="dim")
    out.append(plain(state.query.text, limit=80), style="bold cyan")
    progress = state.progress
    if progress is None:
        out.append(" · searching…", style="yellow")
        return out
    matches = f"{progress.matches:,} match{'es' if progress.matches != 1 else ''}"
    if state.cancelled:
        out.append(f" · cancelled at {progress.percent}% ({matches} by then)", style="bold yellow")
    elif progress.done or not state.running:
        out.append(f" · {matches}", style="bold")
    else:
        out.append(f" · searching… {matches}, {progress.percent}% of table scanned", style="yellow")
    return out


def export_subject(state: SearchState) -> str:
    return f" of the search {plain(state.query.text, limit=200)}" if state.query is not None else ""


def related(screen: EventsScreen, kind: str) -> None:
    """One of the detail pane's related-event keys: the search for that value, shown in the status line."""
    if refused(screen):
        return
    detail = screen.pane.detail
    if detail is None:
        screen.notify("no event in the detail pane", severity="warning", markup=False)
        return
    text = related_query(
        kind, payload_text=detail.payload_text, source=detail.row.source, checksum=detail.payload_checksum
    )
    if text is None:
        screen.notify(f"event {detail.row.id} has no {RELATED[kind].removeprefix('same ')}", markup=False)
        return
    start(screen, text)
    screen.notify(f"{RELATED[kind]}: {plain(text, limit=200)}", title="search", markup=False)


def matching_ids(source: DataSource, state: SearchState, flt: EventFilter) -> list[int]:
    """ctrl+e while a search is on: the ids of every match (a scan to the end, in the worker that asks)."""
    assert state.query is not None
    found = source.search(with_view(state.query, flt), SearchHandle(), limit=1_000_000)
    return [m.row.id for m in found.matches]
