"""Events: pending events (priority, then age), keyset paged, filterable, with the detail pane.

Every query runs in a thread worker; results come back as typed messages tagged with a generation
number, so a reply that arrives after the filter changed is dropped instead of mixing two lists.
Triage (issue 7) plugs in here: actions apply to EventTable.selected_ids() and then call reload_keep().
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker

from dlq_tui.db.models import EventDetail, EventFilter, EventPage
from dlq_tui.ui.screens.base import DlqScreen
from dlq_tui.ui.screens.filter import FilterModal, describe_filter
from dlq_tui.ui.screens.jump import JumpModal
from dlq_tui.ui.widgets.connection_bar import ConnectionBar
from dlq_tui.ui.widgets.event_detail import PAYLOAD_PAGE_CHARS, EventDetailPane
from dlq_tui.ui.widgets.event_table import EventTable
from dlq_tui.ui.widgets.schema_notice import SchemaNotice

LoadKind = Literal["reset", "next", "previous", "jump"]
DETAIL_DELAY_S = 0.12  # wait for the cursor to rest before loading a detail (holding ↓ stays smooth)


class PageLoaded(Message):
    def __init__(self, generation: int, kind: LoadKind, page: EventPage | None, focus_id: int | None = None) -> None:
        super().__init__()
        self.generation = generation
        self.kind = kind
        self.page = page
        self.focus_id = focus_id


class DetailLoaded(Message):
    def __init__(self, event_id: int, detail: EventDetail | None) -> None:
        super().__init__()
        self.event_id = event_id
        self.detail = detail


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


class EventsScreen(DlqScreen):
    TITLE_TEXT = "events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Reload", id="events.reload"),
        Binding("slash", "filter", "Filter", key_display="/", id="events.filter"),
        Binding("backspace", "clear_filter", "Clear filter", show=False, id="events.clear_filter"),
        Binding("g", "jump", "Jump to id", id="events.jump"),
        Binding("v", "toggle_resolved", "Resolved", id="events.resolved"),
        Binding("d", "toggle_detail", "Detail", id="events.detail"),
        Binding("right_square_bracket", "payload_page(1)", "Payload ›", key_display="]", id="events.payload_next"),
        Binding(
            "left_square_bracket",
            "payload_page(-1)",
            "‹ Payload",
            key_display="[",
            id="events.payload_prev",
            show=False,
        ),
        Binding("escape", "back_to_table", "Back to table", show=False, id="events.back"),
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

    def compose(self) -> ComposeResult:
        yield ConnectionBar("events")
        yield SchemaNotice(id="events-notice")
        with Container(id="events-body"):
            yield Static(id="events-status")
            with Container(id="events-split"):
                yield EventTable(id="events-table")
                yield EventDetailPane(id="events-detail")
        yield Footer()

    def busy(self) -> bool:
        if self.dlq.schema_ready is not True:
            return False
        return (
            not self._loaded_once
            or self.loading_generation is not None
            or self.table.pending is not None
            or self.detail_pending
        )

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    @property
    def pane(self) -> EventDetailPane:
        return self.query_one(EventDetailPane)

    def on_mount(self) -> None:
        if self.dlq.frozen_clock:
            self.table.now = self.dlq.clock()
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
        self.run_worker(self._load_reasons, name="reasons", group="reasons", thread=True, exit_on_error=False)

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
        flt, generation = self.filter, self.generation
        self.run_worker(
            lambda: self._fetch(generation, "reset", lambda: self.dlq.source.page(flt), focus_id),
            name="events page",
            group="page",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _fetch(self, generation: int, kind: LoadKind, call, focus_id: int | None = None) -> None:  # type: ignore[no-untyped-def]
        page = call()
        self.post_message(PageLoaded(generation, kind, page, focus_id))

    def on_event_table_need_page(self, message: EventTable.NeedPage) -> None:
        flt, generation, cursor = self.filter, self.generation, message.cursor
        if message.direction == "next":
            call = lambda: self.dlq.source.page(flt, after=cursor)  # noqa: E731
        else:
            call = lambda: self.dlq.source.page(flt, before=cursor)  # noqa: E731
        self.run_worker(
            lambda: self._fetch(generation, message.direction, call),
            name="events page",
            group="page",
            thread=True,
            exit_on_error=False,
        )

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
            self.notify(
                f"event {message.focus_id} is not in the list (resolved, filtered out, or gone)",
                severity="warning",
                markup=False,
            )
            self._set_status()
            return
        page = message.page
        assert page is not None
        if message.kind in ("next", "previous"):
            table.add_page(message.kind, page)
        else:
            table.reset(page, at_start=message.kind == "reset", focus_id=message.focus_id)
            self._loaded_once = True
        self._set_status()
        if table.row_count == 0:
            self._show_empty()

    def worker_failed(self, worker: Worker[object]) -> None:
        if worker.group == "detail":
            self.detail_pending = False
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
        if table.row_count:
            text.append(" · top" if table.at_start else " · ↑ more", style="dim")
            text.append(" · end of list" if table.at_end else " · ↓ more", style="dim")
            text.append(f" · {table.row_count} in view", style="dim")
        if table.marked:
            text.append(f" · {len(table.marked)} marked", style="bold cyan")
        if loading:
            text.append(" · loading…", style="yellow")
        if failed:
            text.append(" · load failed (r retries)", style="bold red")
        described = describe_filter(self.filter)
        if described:
            text.append(" · filter: ", style="dim")
            text.append(described, style="bold cyan")
        self.query_one("#events-status", Static).update(text)

    def on_event_table_marks_changed(self, message: EventTable.MarksChanged) -> None:
        self._set_status()

    # --- the detail pane ---------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
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
        self.run_worker(
            lambda: self.post_message(DetailLoaded(event_id, self.dlq.source.event(event_id, PAYLOAD_PAGE_CHARS))),
            name="event detail",
            group="detail",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.event_id != self._detail_id:
            return  # the cursor moved on meanwhile
        self.detail_pending = False
        self.data_ok()
        if message.detail is None:
            self.pane.show_missing(message.event_id)
            return
        now = self.dlq.clock() if self.dlq.frozen_clock else message.detail.row.db_now
        self.pane.show(message.detail, now)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.pane.display:
            self.pane.focus()

    def action_back_to_table(self) -> None:
        self.table.focus()

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
        page = pane.payload_page + step
        if not 0 <= page < pane.payload_pages:
            return
        event_id = detail.row.id
        self.run_worker(
            lambda: self.post_message(
                PayloadPageLoaded(
                    event_id,
                    page,
                    self.dlq.source.payload_slice(event_id, page * PAYLOAD_PAGE_CHARS, PAYLOAD_PAGE_CHARS),
                )
            ),
            name="payload page",
            group="payload",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_payload_page_loaded(self, message: PayloadPageLoaded) -> None:
        detail = self.pane.detail
        if detail is not None and detail.row.id == message.event_id:
            self.pane.show_payload_page(message.page, message.chunk)

    # --- filters and jumps ---------------------------------------------------------------------------
    def action_refresh(self) -> None:
        if self.dlq.schema_ready:
            row = self.table.highlighted
            self.reload(focus_id=row.id if row else None)

    def apply_filter(self, flt: EventFilter) -> None:
        if flt != self.filter:
            self.filter = flt
            self._detail_id = None
            self.reload()

    def action_filter(self) -> None:
        def done(result: EventFilter | None) -> None:
            if result is not None:
                self.apply_filter(result)

        self.app.push_screen(FilterModal(self.filter, self.reasons), done)

    def action_clear_filter(self) -> None:
        self.apply_filter(EventFilter(include_resolved=self.filter.include_resolved))

    def action_toggle_resolved(self) -> None:
        self.apply_filter(replace(self.filter, include_resolved=not self.filter.include_resolved))

    def action_jump(self) -> None:
        def done(event_id: int | None) -> None:
            if event_id is not None:
                self.jump_to(event_id)

        self.app.push_screen(JumpModal(), done)

    def jump_to(self, event_id: int) -> None:
        self.generation += 1
        self.loading_generation = self.generation
        self._set_status(loading=True)
        flt, generation = self.filter, self.generation
        self.run_worker(
            lambda: self._fetch(generation, "jump", lambda: self.dlq.source.page_at(flt, event_id), event_id),
            name="events page",
            group="page",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    # --- marks (triage will act on them) -------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        self.table.action_toggle_mark()

    def action_mark_all(self) -> None:
        self.table.action_mark_all()
