"""The pending-events table: a Line-API view over a BOUNDED window of keyset pages.

Nothing is laid out per row: the widget keeps the window's EventRows in a list and draws only the lines on
screen, on demand (render_line), caching each drawn line until its row changes. A page arriving or leaving is a
list splice plus a repaint of what is visible, so the cost of a key does not depend on the window's size (a
DataTable measures and stores every row it holds, and rebuilding its window cost 30-900 ms per page step).

The window still holds at most MAX_PAGES pages, so memory stays flat however far an operator scrolls: when the
cursor nears the bottom it asks for the next page (the top page is dropped when it arrives); near the top it
asks for the previous one (dropping the bottom). It fetches nothing itself: it posts NeedPage and the screen
runs the query in a worker, then calls add_page().

Marks (space, *, - clears) live here as a set of event ids, independent of the window, so triage actions can act
on "the marked events, else the highlighted one" (selected_ids).

It looks and moves like the DataTable it replaced (same component classes and CSS, same cursor keys), so the
screens and their snapshots did not change.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.renderables.styled import Styled
from textual.scroll_view import ScrollView
from textual.strip import Strip

from dlq_tui.db.models import EventPage, EventRow, PageCursor
from dlq_tui.db.schema import priority_label
from dlq_tui.ui import format as fmt

Direction = Literal["next", "previous"]

# key, header, width: fixed widths, so no cell is ever measured. Everything up to the lock status fits an
# 80-column terminal; the source (least needed to triage, in full in the detail pane) comes last. On wider
# screens the reason and then the source take the width that is left (see column_widths).
SOURCE_WIDTH = 24
REASON_WIDTH = 16
REASON_MAX = 30  # long enough for every reason code the processor writes
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("mark", " ", 1),
    ("id", "id", 7),
    ("priority", "priority", 8),
    ("class", "class", 10),
    ("reason", "reason", REASON_WIDTH),
    ("retries", "rt", 2),
    ("age", "age", 7),
    ("lock", "lock", 9),
    ("source", "source", SOURCE_WIDTH),
)
COLUMN_INDEX = {key: index for index, (key, _, _) in enumerate(COLUMNS)}
CELL_PADDING = 1  # each column pads one cell on both sides
# The vertical scrollbar takes two.
_BASE_WIDTH = sum(width + 2 * CELL_PADDING for *_, width in COLUMNS) + 2


def column_widths(available: int) -> dict[str, int]:
    """The widths for a table `available` cells wide: the base layout, the spare width to reason then source."""
    widths = {key: width for key, _, width in COLUMNS}
    spare = max(0, available - _BASE_WIDTH)
    extra_reason = min(spare, REASON_MAX - REASON_WIDTH)
    widths["reason"] += extra_reason
    widths["source"] += spare - extra_reason
    return widths


PRIORITY_STYLE = {1: "bold red", 2: "red", 3: "yellow"}
LOCK_STYLE = {"mine": "bold green", "held": "bold magenta", "expired": "dim yellow", "free": "dim"}
HEADER_HEIGHT = 1
_CELL_META = [Style.from_meta({"column": column}) for column in range(len(COLUMNS) + 1)]
_LINE_CACHE_ROWS = 2000  # rows whose drawn lines are kept: more than the window (MAX_PAGES * 200) ever holds


class RowCursorView(ScrollView, can_focus=True):
    """The row cursor's keys, as DataTable binds them (kept apart so EventTable.BINDINGS lists the table's own keys)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "scroll_top", "Top", show=False),
        Binding("ctrl+end", "scroll_bottom", "Bottom", show=False),
    ]


class EventTable(RowCursorView):
    MAX_PAGES = 3
    PREFETCH_ROWS = 10  # ask for the next page this many rows before the edge: scrolling never stops

    # The DataTable's look, selector for selector, so the events screen draws as it always did.
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "datatable--cursor",
        "datatable--header",
        "datatable--odd-row",
        "datatable--even-row",
    }
    DEFAULT_CSS = """
    EventTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark {
            & > .datatable--even-row {
                background: $surface-darken-1 40%;
            }
        }
        & > .datatable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .datatable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .datatable--odd-row {
        }
        & > .datatable--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark", id="events.mark"),
        # The columns fit the screen, so home/end mean first/last row.
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

    class RowHighlighted(Message):
        """The cursor moved to another row (the screen's detail pane follows it)."""

        def __init__(self, table: EventTable, cursor_row: int, row: EventRow) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.row = row

    class RowSelected(Message):
        """enter, or a click on the highlighted row."""

        def __init__(self, table: EventTable, cursor_row: int, row: EventRow) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.row = row

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pages: deque[list[EventRow]] = deque()
        self._rows: list[EventRow] = []  # the pages, flat: index = row on screen
        self.rows_by_id: dict[int, EventRow] = {}
        self.at_start = True
        self.at_end = True
        self.pending: Direction | None = None  # a page request in flight (never two at once)
        self.marked: set[int] = set()
        self.clock: Callable[[], datetime] | None = None  # the app's clock when frozen (tests); None = server time
        self._server_skew = timedelta(0)  # server clock minus ours, from the last page: ages tick in server time
        self.my_token: uuid.UUID | None = None  # this session's lock token: its locks read "mine", not "held"
        self._cursor = 0
        self.widths = column_widths(0)
        self._cells: dict[int, list[Text]] = {}  # built when a row is first drawn or read, dropped with its page
        # Drawn lines by event id (None: the header), then by how they were drawn (cursor, stripe, focus, width).
        self._lines: dict[int | None, dict[tuple[object, ...], Strip]] = {}
        self._pseudo_state: object = None

    def on_mount(self) -> None:
        self._update_virtual_size()
        # Lock countdowns tick: "mine 59s" must become "mine 58s" and then "expired" without a reload.
        self.set_interval(1.0, self.tick_locks)

    def server_now(self) -> datetime:
        if self.clock is not None:
            return self.clock()
        return datetime.now(UTC) + self._server_skew

    def tick_locks(self) -> None:
        now = self.server_now()
        lock = COLUMN_INDEX["lock"]
        for row in self._rows:
            cells = self._cells.get(row.id)
            if row.processing_lock is None or row.resolved or cells is None:
                continue
            cell = self.lock_cell(row, now)
            if cells[lock].plain != cell.plain:
                cells[lock] = cell
                self._row_changed(row.id)

    # --- the DataTable-like surface the screen and the tests read ----------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def window_rows(self) -> list[EventRow]:
        return list(self._rows)

    @property
    def highlighted(self) -> EventRow | None:
        return self._rows[self._cursor] if self._rows else None

    def get_cell(self, row_key: str, column_key: str) -> Text:
        """The cell as drawn: row by event id (as a string, as DataTable keyed them), column by COLUMNS key."""
        return self._cells_of(self.rows_by_id[int(row_key)])[COLUMN_INDEX[column_key]]

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        self._set_cursor(row, scroll=scroll, animate=animate)

    # --- the window --------------------------------------------------------------------------------
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
        """Take the window from self.pages: the cursor stays on focus_id (at the same screen line if keep_offset)."""
        offset = self._cursor - int(self.scroll_y) if keep_offset else 0
        rows = [row for page in self.pages for row in page]
        before = self.rows_by_id
        self._rows = rows
        self.rows_by_id = {row.id: row for row in rows}
        # Rows still in the window as the same objects stay drawn; a reload brings new objects (a lock taken, a
        # retry counted): those are drawn again, like the rows that just arrived.
        kept = {key for key, row in self.rows_by_id.items() if before.get(key) is row}
        self._cells = {key: cells for key, cells in self._cells.items() if key in kept}
        self._lines = {key: lines for key, lines in self._lines.items() if key is None or key in kept}
        self._update_virtual_size()
        self.refresh()
        if not rows:
            self._cursor = 0
            return
        self._server_skew = max(rows, key=lambda row: row.db_now).db_now - datetime.now(UTC)
        index = next((i for i, row in enumerate(rows) if row.id == focus_id), 0) if focus_id is not None else 0
        self._cursor = index
        if keep_offset:
            self.scroll_to(y=max(0, index - offset), animate=False, force=True)
        else:
            self.scroll_to(y=0, animate=False, force=True)
            self._scroll_cursor_into_view()
        # A jump lands mid-view: the page above it loads at once, so the operator can scroll up from there.
        self._cursor_moved()

    def _update_virtual_size(self) -> None:
        width = sum(self.widths[key] + 2 * CELL_PADDING for key, _, _ in COLUMNS)
        self.virtual_size = Size(width, len(self._rows) + HEADER_HEIGHT)

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
            safe_text(fmt.short_source(row.source, self.widths["source"]), limit=300),
        ]

    def _cells_of(self, row: EventRow) -> list[Text]:
        cells = self._cells.get(row.id)
        if cells is None:
            cells = self._cells[row.id] = self.cells(row)
        return cells

    def lock_cell(self, row: EventRow, now: datetime) -> Text:
        """Lock cell: "mine 29m" (this session holds it) vs "held 12m" (someone else: read-only to you)."""
        state = fmt.lock_state(row, now)
        label = fmt.lock_label(row, now)
        if state == "held" and self.my_token is not None and row.processing_lock == self.my_token:
            return Text(label.replace("held", "mine", 1), LOCK_STYLE["mine"])
        return Text(label, LOCK_STYLE[state])

    def _row_changed(self, event_id: int) -> None:
        self._lines.pop(event_id, None)
        self.refresh()

    # --- drawing -----------------------------------------------------------------------------------
    def on_resize(self) -> None:
        widths = column_widths(self.size.width)
        if widths == self.widths:
            return
        self.widths = widths
        self._cells.clear()  # the source cell is shortened to its column
        self._lines.clear()
        self._update_virtual_size()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pseudo_state = self.get_pseudo_class_state()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        base_style = self.rich_style
        if y < HEADER_HEIGHT:
            line = self._line(None, -1, base_style)
        else:
            index = y - HEADER_HEIGHT + scroll_y
            if index >= len(self._rows):
                return Strip.blank(width, base_style)
            line = self._line(self._rows[index], index, base_style)
        return line.crop(scroll_x, scroll_x + width).adjust_cell_length(width, base_style).simplify()

    def _line(self, row: EventRow | None, index: int, base_style: Style) -> Strip:
        """One whole (uncropped) line: each cell padded and styled exactly as DataTable draws a row cursor."""
        cursor = row is not None and index == self._cursor
        key = (index % 2, cursor, base_style, self._pseudo_state, self.size.width)
        drawn = self._lines.get(row.id if row is not None else None)
        if drawn is None:
            if len(self._lines) >= _LINE_CACHE_ROWS:
                self._lines.clear()
            drawn = self._lines[row.id if row is not None else None] = {}
        cached = drawn.get(key)
        if cached is not None:
            return cached
        if row is None:
            row_style = self.get_component_styles("datatable--header").rich_style
            cells: list[Text] = [Text(header) for _, header, _ in COLUMNS]
        else:
            component = "datatable--odd-row" if index % 2 else "datatable--even-row"
            row_style = self.get_component_styles(component).rich_style
            cells = self._cells_of(row)
        cursor_style = self.get_component_rich_style("datatable--cursor") if cursor else Style()
        # The cell's own foreground wins over the cursor's (priority "renderable"); the cursor's background wins.
        post_style = Style.from_color(bgcolor=cursor_style.bgcolor)
        console = self.app.console
        console_options = self.app.console_options
        segments: list[Segment] = []
        for column, ((column_key, _, _), cell) in enumerate(zip(COLUMNS, cells, strict=True)):
            cell_width = self.widths[column_key] + 2 * CELL_PADDING
            options = console_options.update_dimensions(cell_width, 1).update(no_wrap=True)
            # The meta keeps each cell its own segments (as DataTable's do), so a line draws run for run the same.
            pre_style = row_style + _CELL_META[column] + cursor_style
            lines = console.render_lines(
                Styled(Padding(cell, (0, CELL_PADDING)), pre_style=pre_style, post_style=post_style), options
            )
            segments.extend(lines[0])
        table_width = self.virtual_size.width
        remaining = max(0, self.size.width - table_width)
        segments.append(Segment(" " * remaining, row_style + _CELL_META[-1] + cursor_style))
        strip = drawn[key] = Strip(segments)
        return strip

    # --- the cursor --------------------------------------------------------------------------------
    @property
    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER_HEIGHT)

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        top = int(self.scroll_y)
        visible = self._visible_rows
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=animate, force=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=animate, force=True)

    def _set_cursor(self, index: int, *, scroll: bool = True, animate: bool = False) -> None:
        """Move the cursor (clamped to the window); scroll=False: the caller scrolled already (page keys)."""
        if not self._rows:
            return
        index = max(0, min(index, len(self._rows) - 1))
        if index == self._cursor:
            if scroll:
                self._scroll_cursor_into_view(animate=animate)
            return
        self._cursor = index
        # Whatever scrolled before, the cursor ends on screen (as DataTable's cursor watcher ensures).
        self._scroll_cursor_into_view(animate=animate and scroll)
        self.refresh()
        self._cursor_moved()

    def _cursor_moved(self) -> None:
        row = self.highlighted
        if row is None:
            return
        self.post_message(self.RowHighlighted(self, self._cursor, row))
        self._maybe_need_page()

    def _maybe_need_page(self) -> None:
        if self.pending is not None or not self.pages:
            return
        if self._cursor >= self.row_count - self.PREFETCH_ROWS and not self.at_end:
            self.pending = "next"
            self.post_message(self.NeedPage(self, "next", self.pages[-1][-1].cursor))
        elif self._cursor < self.PREFETCH_ROWS and not self.at_start:
            self.pending = "previous"
            self.post_message(self.NeedPage(self, "previous", self.pages[0][0].cursor))

    def action_cursor_up(self) -> None:
        self._set_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._set_cursor(self._cursor + 1)

    def action_page_down(self) -> None:
        height = self._visible_rows
        self.scroll_relative(y=height, animate=False, force=True)
        self._set_cursor(self._cursor + height, scroll=False)

    def action_page_up(self) -> None:
        height = self._visible_rows
        self.scroll_relative(y=-height, animate=False, force=True)
        self._set_cursor(self._cursor - height, scroll=False)

    def action_scroll_top(self) -> None:
        self._set_cursor(0)

    def action_scroll_bottom(self) -> None:
        self._set_cursor(len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        row = self.highlighted
        if row is not None:
            self.post_message(self.RowSelected(self, self._cursor, row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < HEADER_HEIGHT:
            return
        index = offset.y - HEADER_HEIGHT + int(self.scroll_y)
        if index >= len(self._rows):
            return
        event.stop()
        if index == self._cursor:
            self.action_select_cursor()
        else:
            self._set_cursor(index)

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
        cells = self._cells.get(event_id)
        if cells is not None:
            cells[COLUMN_INDEX["mark"]] = Text("●" if event_id in self.marked else " ", style="bold cyan")
            self._row_changed(event_id)

    def action_toggle_mark(self) -> None:
        row = self.highlighted
        if row is None:
            return
        self.marked.symmetric_difference_update({row.id})
        self._show_mark(row.id)
        self.post_message(self.MarksChanged(len(self.marked)))
        if self._cursor < self.row_count - 1:
            self.move_cursor(row=self._cursor + 1)

    def action_mark_all(self) -> None:
        ids = [row.id for row in self._rows]
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
