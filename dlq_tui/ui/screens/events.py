"""Events: pending events (priority, then age), keyset paged, filterable, with the detail pane.

Every query runs in a named thread worker; results come back as typed messages tagged with a generation
number, so a reply that arrives after the filter changed is dropped instead of mixing two lists.
Triage and export (the actions, their confirmations and workers) live in event_actions.EventActions, which
this screen inherits; the keys for both halves are in EventsScreen.BINDINGS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar, Literal

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker

from dlq_tui.db.models import SORT_ORDERS, EventDetail, EventFilter, EventPage, SortOrder
from dlq_tui.ui.screens import search
from dlq_tui.ui.screens.event_actions import (  # noqa: F401  (re-exported: they were defined here)
    CLASSIFY_CHOICES,
    PRIORITY_CHOICES,
    READ_ONLY_REFUSAL,
    TRIAGE_ACTIONS,
    WRITE_ACTIONS,
    ActionFinished,
    EventActions,
    ExportFinished,
    MatchingIdsLoaded,
    Outcome,
)
from dlq_tui.ui.screens.filter import FilterModal, describe_filter
from dlq_tui.ui.screens.jump import JumpModal
from dlq_tui.ui.screens.search import SearchModal, SearchProgressed, SearchState, page_call
from dlq_tui.ui.widgets.connection_bar import ConnectionBar
from dlq_tui.ui.widgets.event_detail import PAYLOAD_PAGE_CHARS, EventDetailPane
from dlq_tui.ui.widgets.event_table import Direction, EventTable
from dlq_tui.ui.widgets.schema_notice import SchemaNotice

LoadKind = Literal["reset", "next", "previous", "jump"]
DETAIL_DELAY_S = 0.12  # wait for the cursor to rest before loading a detail (holding ↓ stays smooth)

ORDER_LABELS: dict[SortOrder, str] = {
    "priority": "by priority",
    "newest": "newest first",
    "retries": "most retries first",
}


class PageLoaded(Message):
    def __init__(
        self,
        generation: int,
        kind: LoadKind,
        page: EventPage | None,
        focus_id: int | None = None,
        view: EventFilter | None = None,  # a `g` jump: the view that lists the event (maybe not the current one)
    ) -> None:
        super().__init__()
        self.generation = generation
        self.kind = kind
        self.page = page
        self.focus_id = focus_id
        self.view = view


class DetailLoaded(Message):
    def __init__(self, event_id: int, detail: EventDetail | None, holder: str | None = None) -> None:
        super().__init__()
        self.event_id = event_id
        self.detail = detail
        self.holder = holder  # the operator whose claim set the event's lock (None: the processor, or no lock)


class PayloadPageLoaded(Message):
    def __init__(self, event_id: int, page: int, chunk: str) -> None:
        super().__init__()
        self.event_id = event_id
        self.page = page
        self.chunk = chunk


class ReasonsLoaded(Message):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__()
        self.reasons = reasons


class EventsScreen(EventActions):
    TITLE_TEXT = "events"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Triage: on the marked events, else the highlighted one (greyed out in read-only mode).
        # First in the list: the footer shows them first, before the keys for moving around. The footer keeps the
        # everyday keys so that `?` and `q` still fit at 100 columns; every key is in help (`?`) and the palette.
        Binding("c", "claim", "Claim", id="events.claim"),
        Binding("u", "release", "Release", id="events.release", show=False),
        Binding("k", "classify", "Classify", id="events.classify", show=False),
        Binding("p", "priority", "Priority", id="events.priority", show=False),
        Binding("x", "resolve", "Resolve", id="events.resolve"),
        Binding("o", "reopen", "Reopen", id="events.reopen"),
        Binding("R", "requeue", "Requeue", key_display="R", id="events.requeue", show=False),
        Binding(
            "T",
            "take_back",
            "Take back",
            key_display="T",
            id="events.take_back",
            show=False,
            tooltip="Take back: claim events locked by another session of yours (same --operator), e.g. after an"
            " SSH drop",
        ),
        Binding("E", "export", "Export", key_display="E", id="events.export", show=False),
        Binding("f", "repair", "Fix", tooltip="Repair preview: repaired, checked, where it goes", id="events.repair"),
        Binding("F", "redrive", "Redrive", tooltip="Redrive into raw_events", id="events.redrive", show=False),
        Binding("ctrl+s", "export", "Export (as E)", show=False, id="events.export_save"),
        Binding(
            "ctrl+e",
            "export_matching",
            "Export all matching",
            tooltip="Every event of this view and filter, as of now",
            id="events.export_matching",
            show=False,
        ),
        Binding("r", "refresh", "Reload", id="events.reload", show=False),
        Binding("slash", "search", "Search", key_display="/", id="events.search"),
        Binding("backslash", "filter", "Filter", key_display="\\", id="events.filter", show=False),
        Binding("backspace", "clear_filter", "Clear filter", show=False, id="events.clear_filter"),
        Binding("g", "jump", "Jump", tooltip="Jump to id", id="events.jump", show=False),
        Binding("v", "toggle_resolved", "Resolved", id="events.resolved", show=False),
        Binding(
            "s",
            "cycle_order",
            "Sort",
            tooltip="By priority, newest first, most retries first",
            id="events.sort",
            show=False,
        ),
        Binding("d", "toggle_detail", "Detail", id="events.detail", show=False),
        Binding(
            "right_square_bracket",
            "payload_page(1)",
            "Payload ›",
            key_display="]",
            id="events.payload_next",
            show=False,
        ),
        Binding(
            "left_square_bracket",
            "payload_page(-1)",
            "‹ Payload",
            key_display="[",
            id="events.payload_prev",
            show=False,
        ),
        Binding("escape", "back_to_table", "Back to table / cancel search", show=False, id="events.back"),
        # Related events of the one in the detail pane: each is a search, shown with its query.
        Binding("n", "related('session')", "Same session", id="events.same_session", show=False),
        Binding("l", "related('source')", "Same source file", id="events.same_source", show=False),
        Binding("i", "related('src_ip')", "Same source IP", id="events.same_ip", show=False),
        Binding("D", "related('checksum')", "Same checksum", key_display="D", id="events.same_checksum", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = EventFilter()
        self.generation = 0
        self.reasons: list[str] = []
        self._detail_timer: Timer | None = None
        self._detail_id: int | None = None
        self._loaded_once = False
        self.loading_generation: int | None = None  # a reset/jump load in flight
        self.detail_pending = False
        self.actions_running = 0
        self._quiet_jumps: set[int] = set()  # jump generations that fall back to a reload instead of warning
        self._follow_generations: set[int] = set()  # reloads that jump to their focus_id if it is further down
        self._payload_target: tuple[int, int] | None = None  # (event id, payload page) asked for last
        self._payload_loading = False
        self.search = SearchState()

    def compose(self) -> ComposeResult:
        yield ConnectionBar("events")
        yield SchemaNotice(id="events-notice")
        with Container(id="events-body"):
            yield Static(id="events-status")
            with Container(id="events-split"):
                yield EventTable(id="events-table")
                yield EventDetailPane(id="events-detail")
        yield Footer(compact=True)

    def busy(self) -> bool:
        if self.dlq.schema_ready is not True:
            return False
        return (
            not self._loaded_once
            or self.loading_generation is not None
            or self.table.pending is not None
            or self.detail_pending
            or self.actions_running > 0
            or self._payload_loading
        )

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    @property
    def pane(self) -> EventDetailPane:
        return self.query_one(EventDetailPane)

    def on_mount(self) -> None:
        if self.dlq.frozen_clock:
            self.table.clock = self.dlq.clock
        token = self.dlq.source.operator.lock_token
        self.table.my_token = token
        self.pane.my_token = token
        self.pane.my_name = self.dlq.source.operator.name
        self.watch(self.app, "schema_ready", self._schema_ready_changed)

    def _schema_ready_changed(self, ready: bool | None) -> None:
        notice = self.query_one(SchemaNotice)
        notice.display = ready is not True
        self.query_one("#events-body").display = ready is True
        if ready is not True:
            notice.show_status(self.dlq.schema_status)
            return
        self.table.focus()
        self.reload()
        self._load_reasons()

    @work(thread=True, exit_on_error=False, name="reasons", group="reasons")
    def _load_reasons(self) -> None:
        self.post_message(ReasonsLoaded(self.dlq.source.reasons()))

    def on_reasons_loaded(self, message: ReasonsLoaded) -> None:
        self.reasons = message.reasons

    # --- loading pages -------------------------------------------------------------------------------
    def reload(self, *, focus_id: int | None = None) -> None:
        """Start again from the top of the current filter (new filter, `r`, after an action)."""
        self.generation += 1
        self.loading_generation = self.generation
        self._set_status(loading=True)
        self._load_first_page(self.generation, page_call(self, self.filter), focus_id)

    # A new first page (or jump) replaces whatever page load is in flight (exclusive); the next/previous page
    # of the list on screen does not cancel anything (the table asks for one at a time).
    @work(thread=True, exit_on_error=False, name="events page", group="page", exclusive=True)
    def _load_first_page(self, generation: int, call: Callable[[], EventPage], focus_id: int | None) -> None:
        self.post_message(PageLoaded(generation, "reset", call(), focus_id))

    def on_event_table_need_page(self, message: EventTable.NeedPage) -> None:
        # page_call runs here, on the UI thread: a search's scan state changes only there.
        if message.direction == "next":
            call = page_call(self, self.filter, after=message.cursor)
        else:
            call = page_call(self, self.filter, before=message.cursor)
        self._load_adjacent_page(self.generation, message.direction, call)

    @work(thread=True, exit_on_error=False, name="events page", group="page")
    def _load_adjacent_page(self, generation: int, direction: Direction, call: Callable[[], EventPage]) -> None:
        self.post_message(PageLoaded(generation, direction, call()))

    def on_page_loaded(self, message: PageLoaded) -> None:
        table = self.table
        if message.generation != self.generation:
            if message.kind in ("next", "previous"):
                table.page_failed()
            return
        self.data_ok()
        if message.kind in ("reset", "jump"):
            self.loading_generation = None
        if message.kind == "jump" and message.page is None:
            if message.generation in self._quiet_jumps:  # after an action: the event left the view
                self._quiet_jumps.discard(message.generation)
                self.reload()
                return
            self.notify(f"there is no event {message.focus_id}", severity="warning", markup=False)
            self._set_status()
            return
        page = message.page
        assert page is not None
        if message.view is not None and message.focus_id is not None and message.view != self.filter:
            self._show_view_of(message.focus_id, message.view)
        if message.generation in self._follow_generations:
            self._follow_generations.discard(message.generation)
            if message.focus_id is not None and all(row.id != message.focus_id for row in page.rows):
                self.jump_to(message.focus_id, quiet=True)
                return
        if message.kind in ("next", "previous"):
            table.add_page(message.kind, page)
        else:
            table.reset(page, at_start=message.kind == "reset", focus_id=message.focus_id)
            self._loaded_once = True
            self._follow_cursor()  # after an action the detail was invalidated: show the new state
        self._set_status()
        if table.row_count == 0:
            self._show_empty()

    def worker_failed(self, worker: Worker[object]) -> None:
        if worker.group == "detail":
            self.detail_pending = False
        if worker.group == "payload":
            self._payload_loading = False
            self._payload_target = None  # the next press counts from the page on screen again
        if worker.group == "page":
            self.loading_generation = None
            self._loaded_once = True
            self.table.page_failed()
            self._set_status(failed=True)

    def _show_empty(self) -> None:
        self.pane.border_title = "detail"
        self.query_one("#detail-fields", Static).update(
            Text(
                "No events match." if describe_filter(self.filter) else "No pending events: the queue is empty.",
                style="dim",
            )
        )

    def _set_status(self, *, loading: bool = False, failed: bool = False) -> None:
        # One line, most useful first: where the window is, then the filter (it may be cut on the right).
        table = self.table
        text = Text()
        text.append("pending+resolved" if self.filter.include_resolved else "pending", style="bold")
        text.append(f" · {ORDER_LABELS[self.filter.order]}", style="bold")
        if table.row_count:
            text.append(" · top" if table.at_start else " · ↑ more", style="dim")
            text.append(" · end of list" if table.at_end else " · ↓ more", style="dim")
            text.append(f" · {table.row_count} in view", style="dim")
        if table.marked:
            text.append(f" · {len(table.marked)} marked", style="bold cyan")
            if table.hidden_marks:
                text.append(f" ({table.hidden_marks} not shown)", style="bold yellow")
        if loading:
            text.append(" · loading…", style="yellow")
        if failed:
            text.append(" · load failed (r retries)", style="bold red")
        described = describe_filter(self.filter)
        if described:
            text.append(" · filter: ", style="dim")
            text.append(described, style="bold cyan")
        text.append_text(search.status(self.search))
        self.query_one("#events-status", Static).update(text)

    def on_event_table_marks_changed(self, message: EventTable.MarksChanged) -> None:
        self._set_status()

    # --- the detail pane ---------------------------------------------------------------------------
    def on_event_table_row_highlighted(self, event: EventTable.RowHighlighted) -> None:
        self._follow_cursor()

    def _follow_cursor(self) -> None:
        row = self.table.highlighted
        if row is None or row.id == self._detail_id:
            return
        self._detail_id = row.id
        self.detail_pending = self.pane.display
        self.pane.show_loading(row.id)
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(DETAIL_DELAY_S, self._load_detail)

    def _load_detail(self) -> None:
        event_id = self._detail_id
        if event_id is None or not self.pane.display:
            self.detail_pending = False
            return
        self._fetch_detail(event_id)

    @work(thread=True, exit_on_error=False, name="event detail", group="detail", exclusive=True)
    def _fetch_detail(self, event_id: int) -> None:
        source = self.dlq.source
        detail = source.event(event_id, PAYLOAD_PAGE_CHARS)
        locked = detail is not None and detail.row.processing_lock is not None
        holder = source.lock_holders([event_id]).get(event_id) if locked else None  # from the claim audit entries
        self.post_message(DetailLoaded(event_id, detail, holder))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.event_id != self._detail_id:
            return  # the cursor moved on meanwhile
        self.detail_pending = False
        self.data_ok()
        if message.detail is None:
            self.pane.show_missing(message.event_id)
            return
        now = self.dlq.clock() if self.dlq.frozen_clock else message.detail.row.db_now
        self.pane.lock_holder = message.holder
        self._payload_target = None  # the pane starts again at the payload's first page
        self.pane.show(message.detail, now, live=not self.dlq.frozen_clock)

    def on_event_table_row_selected(self, event: EventTable.RowSelected) -> None:
        if self.pane.display:
            self.pane.focus()

    def action_back_to_table(self) -> None:
        if not search.cancel(self):
            self.table.focus()

    # --- search (dlq_tui.ui.screens.search) ----------------------------------------------------------
    def action_search(self) -> None:
        if search.refused(self):
            return

        def done(text: str | None) -> None:
            if text:
                search.start(self, text)

        current = self.search.query.text if self.search.query is not None else ""
        self.app.push_screen(SearchModal(current, list(self.search.history), self.dlq.settings.searches), done)

    def action_related(self, kind: str) -> None:
        search.related(self, kind)

    def on_search_progressed(self, message: SearchProgressed) -> None:
        search.progressed(self, message)
        self._set_status()

    def action_toggle_detail(self) -> None:
        self.pane.display = not self.pane.display
        if self.pane.display:
            self._detail_id = None
            self._follow_cursor()
        else:
            self.table.focus()

    def action_payload_page(self, step: int) -> None:
        pane = self.pane
        detail = pane.detail
        if detail is None or pane.payload_pages <= 1:
            return
        event_id = detail.row.id
        # Presses count from the page asked for last, not the one on screen: fast `]]]` pages three times.
        # One load at a time; presses that arrive meanwhile only move the target, loaded when it is back.
        target = self._payload_target
        base = target[1] if target is not None and target[0] == event_id else pane.payload_page
        page = min(max(0, base + step), pane.payload_pages - 1)
        if page == base:
            return
        self._payload_target = (event_id, page)
        if not self._payload_loading:
            self._load_payload_page(event_id, page)

    def _load_payload_page(self, event_id: int, page: int) -> None:
        self._payload_loading = True
        self._fetch_payload_page(event_id, page)

    @work(thread=True, exit_on_error=False, name="payload page", group="payload")
    def _fetch_payload_page(self, event_id: int, page: int) -> None:
        chunk = self.dlq.source.payload_slice(event_id, page * PAYLOAD_PAGE_CHARS, PAYLOAD_PAGE_CHARS)
        self.post_message(PayloadPageLoaded(event_id, page, chunk))

    def on_payload_page_loaded(self, message: PayloadPageLoaded) -> None:
        self._payload_loading = False
        target = self._payload_target
        detail = self.pane.detail
        if detail is None or detail.row.id != message.event_id or target is None or target[0] != message.event_id:
            return  # the cursor moved to another event meanwhile
        if target[1] != message.page:
            self._load_payload_page(*target)  # more presses came in while this page loaded
            return
        self.pane.show_payload_page(message.page, message.chunk)

    # --- filters and jumps ---------------------------------------------------------------------------
    def action_refresh(self) -> None:
        if self.dlq.connection_state == "disconnected":
            self.dlq.retry_now()  # the top bar promises that `r` does not wait out the backoff
        if self.dlq.schema_ready:
            row = self.table.highlighted
            self.reload(focus_id=row.id if row else None)

    def apply_filter(self, flt: EventFilter, *, force: bool = False) -> None:
        if flt != self.filter or force:
            if not flt.same_events(self.filter) or force:
                self._drop_marks_of_another_view()
            self.filter = flt
            self._detail_id = None
            self.refresh_bindings()  # reopen shows only while resolved events are listed
            self.reload()

    def action_filter(self) -> None:
        def done(result: EventFilter | None) -> None:
            if result is not None:
                self.apply_filter(result)

        self.app.push_screen(FilterModal(self.filter, self.reasons), done)

    def action_clear_filter(self) -> None:
        had_search = self.search.query is not None
        search.clear(self)
        self.apply_filter(
            force=had_search, flt=EventFilter(include_resolved=self.filter.include_resolved, order=self.filter.order)
        )

    def action_cycle_order(self) -> None:
        """`s`: the same events by priority, newest first, most retries first (each keyset paged)."""
        following = SORT_ORDERS[(SORT_ORDERS.index(self.filter.order) + 1) % len(SORT_ORDERS)]
        self.apply_filter(replace(self.filter, order=following))

    def action_toggle_resolved(self) -> None:
        self.apply_filter(replace(self.filter, include_resolved=not self.filter.include_resolved))

    def action_jump(self) -> None:
        def done(event_id: int | None) -> None:
            if event_id is not None:
                search.clear(self)  # a jump lists the event in its view, whatever the search
                self.find_event(event_id)

        self.app.push_screen(JumpModal(), done)

    def find_event(self, event_id: int) -> None:
        """`g`: any event by id, pending or resolved, inside the filter or not (the view widens to show it)."""
        self.generation += 1
        self.loading_generation = self.generation
        self._set_status(loading=True)
        self._locate(self.generation, self.filter, event_id)

    @work(thread=True, exit_on_error=False, name="events page", group="page", exclusive=True)
    def _locate(self, generation: int, flt: EventFilter, event_id: int) -> None:
        found = self.dlq.source.locate(flt, event_id)
        view, page = found if found is not None else (None, None)
        self.post_message(PageLoaded(generation, "jump", page, event_id, view))

    def _show_view_of(self, event_id: int, view: EventFilter) -> None:
        """A jump landed outside the current view: switch to the view that lists the event, and say so."""
        before = self.filter
        self._drop_marks_of_another_view()
        self.filter = view
        self._detail_id = None
        self.refresh_bindings()
        changes = []
        if view.include_resolved and not before.include_resolved:
            changes.append("resolved events are listed too (v hides them)")
        if describe_filter(replace(view, include_resolved=False)) != describe_filter(
            replace(before, include_resolved=False)
        ):
            changes.append(f"the filter ({describe_filter(replace(before, include_resolved=False))}) was cleared")
        self.notify(
            f"event {event_id} is outside the view: " + "; ".join(changes), title="jump", timeout=8, markup=False
        )

    def jump_to(self, event_id: int, *, quiet: bool = False) -> None:
        """The page that starts at event_id in the current view; quiet (after an action): reload if it left it."""
        if not quiet:
            self.find_event(event_id)
            return
        self.generation += 1
        self._quiet_jumps.add(self.generation)
        self.loading_generation = self.generation
        self._set_status(loading=True)
        self._load_page_at(self.generation, self.filter, event_id)

    @work(thread=True, exit_on_error=False, name="events page", group="page", exclusive=True)
    def _load_page_at(self, generation: int, flt: EventFilter, event_id: int) -> None:
        self.post_message(PageLoaded(generation, "jump", self.dlq.source.page_at(flt, event_id), event_id))

    # --- marks (the triage actions act on them) -------------------------------------------------------------
    def _drop_marks_of_another_view(self) -> None:
        """Marks belong to the view they were made in: a new filter would hide them but keep them armed."""
        count = len(self.table.marked)
        if count:
            self.table.clear_marks()
            plural = "s" if count != 1 else ""
            self.notify(f"{count} mark{plural} cleared: the view changed", title="marks", markup=False)

    def action_clear_marks(self) -> None:
        self.table.clear_marks()

    def action_toggle_mark(self) -> None:
        self.table.action_toggle_mark()

    def action_mark_all(self) -> None:
        self.table.action_mark_all()

    def _reload_at(self, focus_id: int | None) -> None:
        """Show the new state without losing the place: reload from the top; if the event is not on the first
        page (it was further down, or a new priority moved it), open the page that starts at it instead."""
        self._detail_id = None
        self.reload(focus_id=focus_id)
        if focus_id is not None and self.search.query is None:  # a page that starts at an id ignores the search
            self._follow_generations.add(self.generation)
