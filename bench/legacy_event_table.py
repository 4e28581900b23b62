"""The events table as it was before the Line-API view: a DataTable rebuilt over a window of keyset pages.

Kept only so bench/table_keys.py can measure today's widget against it side by side in one run; the app does not
use it. The class keeps its name (EventTable) so its NeedPage/MarksChanged messages reach the screen's handlers.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from dlq_tui.db.models import EventPage, EventRow, PageCursor
from dlq_tui.db.schema import priority_label
from dlq_tui.ui import format as fmt
from dlq_tui.ui.widgets.event_table import COLUMNS, LOCK_STYLE, PRIORITY_STYLE, SOURCE_WIDTH, column_widths

Direction = Literal["next", "previous"]


class EventTable(DataTable[Text]):
    MAX_PAGES = 3
    PREFETCH_ROWS = 10  # ask for the next page this many rows before the edge: scrolling never stops

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark", id="events.mark"),
        # The columns fit the screen, so home/end mean first/last row (DataTable uses them to scroll sideways).
        Binding("home", "scroll_top", "First row", show=False, id="events.first"),
        Binding("end", "scroll_bottom", "Last row", show=False, id="events.last"),
        Binding("asterisk", "mark_all", "Mark all in view", key_display="*", id="events.mark_all", show=False),
        Binding("minus", "clear_marks", "Unmark all", key_display="-", id="events.unmark_all", show=False),
    ]

    class NeedPage(Message):
        def __init__(self, table: EventTable, direction: Direction, cursor: PageCursor) -> None:
            super().__init__()
            self.table = table
            self.direction = direction
            self.cursor = cursor

    class MarksChanged(Message):
        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cursor_foreground_priority="renderable")
        self.pages: deque[list[EventRow]] = deque()
        self.rows_by_id: dict[int, EventRow] = {}
        self.at_start = True
        self.at_end = True
        self.pending: Direction | None = None  # a page request in flight (never two at once)
        self.marked: set[int] = set()
        self.clock: Callable[[], datetime] | None = None  # the app's clock when frozen (tests); None = server time
        self._server_skew = timedelta(0)  # server clock minus ours, from the last page: ages tick in server time
        self.my_token: uuid.UUID | None = None  # this session's lock token: its locks read "mine", not "held"

    def on_mount(self) -> None:
        self._add_columns(column_widths(0))
        # Lock countdowns tick: "mine 59s" must become "mine 58s" and then "expired" without a reload.
        self.set_interval(1.0, self.tick_locks)

    def server_now(self) -> datetime:
        if self.clock is not None:
            return self.clock()
        return datetime.now(UTC) + self._server_skew

    def tick_locks(self) -> None:
        now = self.server_now()
        for row in self.window_rows:
            if row.processing_lock is None or row.resolved or str(row.id) not in self.rows:
                continue
            cell = self.lock_cell(row, now)
            if self.get_cell(str(row.id), "lock").plain != cell.plain:
                self.update_cell(str(row.id), "lock", cell)

    def _add_columns(self, widths: dict[str, int]) -> None:
        for key, header, _ in COLUMNS:
            self.add_column(header, width=widths[key], key=key)

    def on_resize(self) -> None:
        widths = column_widths(self.size.width)
        current = {column.key.value: column.width for column in self.columns.values()}
        if all(current[key] == width for key, width in widths.items() if key in current):
            return
        # Rebuilding the columns means re-adding the (at most 3 pages of) rows: only on a real width change.
        keep = self.highlighted.id if self.highlighted else None
        self.clear(columns=True)
        self._add_columns(widths)
        self._redraw(focus_id=keep, keep_offset=True)

    # --- the window --------------------------------------------------------------------------------
    @property
    def window_rows(self) -> list[EventRow]:
        return [row for page in self.pages for row in page]

    @property
    def highlighted(self) -> EventRow | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return self.rows_by_id.get(int(row_key.value)) if row_key.value is not None else None

    def reset(self, page: EventPage, *, at_start: bool, focus_id: int | None = None) -> None:
        """Show one page (a new filter, a reload, a jump)."""
        self.pages = deque([page.rows]) if page.rows else deque()
        self.at_start = at_start
        self.at_end = page.next_cursor is None
        self.pending = None
        self._redraw(focus_id=focus_id, keep_offset=False)

    def add_page(self, direction: Direction, page: EventPage) -> None:
        self.pending = None
        keep = self.highlighted.id if self.highlighted else None
        if direction == "next":
            if page.rows:
                self.pages.append(page.rows)
            self.at_end = page.next_cursor is None or not page.rows
            if len(self.pages) > self.MAX_PAGES:
                self.pages.popleft()
                self.at_start = False
        else:
            if page.rows:
                self.pages.appendleft(page.rows)
            # A short page means nothing is left above it.
            self.at_start = len(page.rows) < self._page_size()
            if len(self.pages) > self.MAX_PAGES:
                self.pages.pop()
                self.at_end = False
        self._redraw(focus_id=keep, keep_offset=True)

    def _page_size(self) -> int:
        from dlq_tui.ui.source import PAGE_SIZE

        return PAGE_SIZE

    def _redraw(self, *, focus_id: int | None, keep_offset: bool) -> None:
        offset = self.cursor_row - int(self.scroll_y) if keep_offset else 0
        self.clear()
        rows = self.window_rows
        if rows:
            self._server_skew = max(rows, key=lambda row: row.db_now).db_now - datetime.now(UTC)
        self.rows_by_id = {row.id: row for row in rows}
        self.add_rows_keyed(rows)
        if not rows:
            return
        index = next((i for i, row in enumerate(rows) if row.id == focus_id), 0) if focus_id is not None else 0
        if keep_offset:
            self.scroll_to(y=max(0, index - offset), animate=False, immediate=True)
        self.move_cursor(row=index, animate=False, scroll=not keep_offset)

    def add_rows_keyed(self, rows: Iterable[EventRow]) -> None:
        for row in rows:
            self.add_row(*self.cells(row), key=str(row.id))

    def cells(self, row: EventRow) -> list[Text]:
        from dlq_tui.text import safe_text

        now = self.clock() if self.clock is not None else row.db_now
        lock = Text("resolved", style="green") if row.resolved else self.lock_cell(row, now)
        return [
            Text("●" if row.id in self.marked else " ", style="bold cyan"),
            Text(str(row.id), style="dim" if row.resolved else ""),
            Text(priority_label(row.priority), style=PRIORITY_STYLE.get(row.priority, "")),
            safe_text(row.classification, limit=24) if row.classification else Text("-", style="dim"),
            safe_text(row.reason, limit=60),
            Text(str(row.retry_count), style="bold yellow" if row.retry_count > 5 else "", justify="right"),
            Text(fmt.age_between(row.created_at, now)),
            lock,
            safe_text(fmt.short_source(row.source, self._source_width()), limit=300),
        ]

    def _source_width(self) -> int:
        column = self.columns.get("source")  # type: ignore[call-overload]
        return column.width if column is not None else SOURCE_WIDTH

    def lock_cell(self, row: EventRow, now: datetime) -> Text:
        """Lock cell: "mine 29m" (this session holds it) vs "held 12m" (someone else: read-only to you)."""
        state = fmt.lock_state(row, now)
        label = fmt.lock_label(row, now)
        if state == "held" and self.my_token is not None and row.processing_lock == self.my_token:
            return Text(label.replace("held", "mine", 1), LOCK_STYLE["mine"])
        return Text(label, LOCK_STYLE[state])

    # --- paging on cursor moves --------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.pending is not None or not self.pages:
            return
        # The cursor as it is now, not as the event saw it: a redraw passes through row 0 on its way
        # back to the highlighted event, and that transient must not ask for the previous page.
        row = self.cursor_row
        if row >= self.row_count - self.PREFETCH_ROWS and not self.at_end:
            self.pending = "next"
            self.post_message(self.NeedPage(self, "next", self.pages[-1][-1].cursor))
        elif row < self.PREFETCH_ROWS and not self.at_start:
            self.pending = "previous"
            self.post_message(self.NeedPage(self, "previous", self.pages[0][0].cursor))

    def page_failed(self) -> None:
        self.pending = None

    # --- marks ---------------------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        """What an action applies to: the marked events, else the highlighted one."""
        if self.marked:
            return sorted(self.marked)
        row = self.highlighted
        return [row.id] if row else []

    def _show_mark(self, event_id: int) -> None:
        if str(event_id) in self.rows:
            self.update_cell(str(event_id), "mark", Text("●" if event_id in self.marked else " ", style="bold cyan"))

    def action_toggle_mark(self) -> None:
        row = self.highlighted
        if row is None:
            return
        self.marked.symmetric_difference_update({row.id})
        self._show_mark(row.id)
        self.post_message(self.MarksChanged(len(self.marked)))
        if self.cursor_row < self.row_count - 1:
            self.move_cursor(row=self.cursor_row + 1)

    def action_mark_all(self) -> None:
        ids = [row.id for row in self.window_rows]
        if ids and all(i in self.marked for i in ids):
            self.marked.difference_update(ids)
        else:
            self.marked.update(ids)
        for event_id in ids:
            self._show_mark(event_id)
        self.post_message(self.MarksChanged(len(self.marked)))

    def clear_marks(self) -> None:
        self.unmark(list(self.marked))

    def action_clear_marks(self) -> None:
        self.clear_marks()

    @property
    def hidden_marks(self) -> int:
        """Marked events that are not in the loaded window (scrolled away, or gone from the view)."""
        return len(self.marked.difference(self.rows_by_id))

    def unmark(self, ids: Iterable[int]) -> None:
        """Drop these ids from the marks (after an action: done events are unmarked, skipped ones stay)."""
        gone = self.marked.intersection(ids)
        self.marked.difference_update(gone)
        for event_id in gone:
            self._show_mark(event_id)
        self.post_message(self.MarksChanged(len(self.marked)))
