"""Sources: pending dead letters grouped by the log file they came from, biggest first; resolve a whole file.

`x` on a source file reads the ids of its pending events in a worker, then asks y/n naming the file and the count;
`y` resolves exactly those ids as `operator_reingest` (events that arrive after the question stay pending; events
held by another session are skipped with the reason). The list is read when the screen is shown (when the last
read is older than the refresh interval), after an action and on `r`; it does not poll, the GROUP BY reads every
pending row. Source paths are attacker-influenced: every one is drawn through dlq_tui.text, never as markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker

from dlq_tui.db.models import ActionResult
from dlq_tui.text import plain, safe_text
from dlq_tui.ui import format as fmt
from dlq_tui.ui.screens.base import READ_ONLY_REFUSAL, DlqScreen
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.source import (
    REINGEST_METHOD,
    RESOLUTION_METHODS,
    ActionRefused,
    SourceOverview,
    SourceSelection,
    SourceStat,
    describe,
)
from dlq_tui.ui.widgets.connection_bar import ConnectionBar
from dlq_tui.ui.widgets.schema_notice import SchemaNotice

NO_SOURCE = "(no source)"
# key, header, width (the source takes what is left); each column pads one cell on both sides.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("pending", "pending", 8),
    ("held", "held", 5),
    ("oldest", "oldest", 7),
    ("newest", "newest", 7),
    ("reasons", "top reasons", 26),
    ("source", "source file", 20),
)
_BASE_WIDTH = sum(width + 2 for *_, width in COLUMNS) + 2  # + the vertical scrollbar
SOURCE_FIRST = 48  # spare width goes to the source up to this, then to the reasons up to REASONS_MAX, then source
REASONS_MAX = 56


def column_widths(available: int) -> dict[str, int]:
    widths = {key: width for key, _, width in COLUMNS}
    spare = max(0, available - _BASE_WIDTH)
    to_source = min(spare, SOURCE_FIRST - widths["source"])
    to_reasons = min(spare - to_source, REASONS_MAX - widths["reasons"])
    widths["reasons"] += to_reasons
    widths["source"] += spare - to_reasons
    return widths


class SourcesLoaded(Message):
    def __init__(self, overview: SourceOverview, read_at: datetime) -> None:
        super().__init__()
        self.overview = overview
        self.read_at = read_at


class SelectionRead(Message):
    def __init__(self, selection: SourceSelection) -> None:
        super().__init__()
        self.selection = selection


class ReingestFinished(Message):
    def __init__(self, result: ActionResult | None, refusal: str | None) -> None:
        super().__init__()
        self.result = result
        self.refusal = refusal


def source_label(source: str | None, *, limit: int = 300, width: int | None = None) -> Text:
    """A source path for display: escaped, never markup; the events without a source read "(no source)"."""
    if source is None:
        return Text(NO_SOURCE, style="dim italic")
    return safe_text(source if width is None else fmt.short_source(source, width), limit=limit)


def reasons_cell(stat: SourceStat) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, (reason, count) in enumerate(stat.top_reasons):
        if i:
            out.append(", ", style="dim")
        out.append_text(safe_text(reason, limit=40))
        out.append(f" {count:,}", style="dim")
    more = stat.reason_count - len(stat.top_reasons)
    if more > 0:
        out.append(f" +{more} more", style="dim")
    return out


class SourcesScreen(DlqScreen):
    TITLE_TEXT = "sources"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "x",
            "reingest",
            "Resolve file",
            tooltip="Resolve every pending event of the highlighted source file for re-ingest (asks y/n first)",
            id="sources.reingest",
        ),
        Binding("r", "refresh", "Reload", tooltip="Read the per-source figures again", id="sources.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.overview: SourceOverview | None = None
        self.read_at: datetime | None = None
        self.loading = False
        self._again = False
        self.waiting = 0  # selections read and actions running (tests and screenshots wait on them)
        self._active = False

    def compose(self) -> ComposeResult:
        yield ConnectionBar("sources")
        yield SchemaNotice(id="sources-notice")
        with Container(id="sources-body"):
            yield Static(id="sources-status")
            yield DataTable(id="sources-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    DEFAULT_CSS = """
    #sources-body { height: 1fr; }
    #sources-status { height: 1; padding: 0 1; background: $boost; }
    #sources-table { height: 1fr; }
    """

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#sources-table", DataTable)

    def busy(self) -> bool:
        if self.dlq.schema_ready is not True or self.dlq.source.is_sqlite:
            return False
        return self.loading or self.read_at is None or self.waiting > 0

    def on_mount(self) -> None:
        for key, header, width in COLUMNS:
            self.table.add_column(header, width=width, key=key)
        self.watch(self.app, "schema_ready", self._schema_ready_changed)
        self.watch(self.app, "connection_state", self._connection_changed, init=False)

    def _schema_ready_changed(self, ready: bool | None) -> None:
        notice = self.query_one(SchemaNotice)
        notice.display = ready is not True
        self.query_one("#sources-body").display = ready is True
        if ready is not True:
            notice.show_status(self.dlq.schema_status)
            return
        self.table.focus()
        self.reload()

    def _connection_changed(self, state: str) -> None:
        if state == "connected" and self._active and self.dlq.schema_ready:
            self.reload()

    def on_screen_resume(self) -> None:
        self._active = True
        if self.dlq.schema_ready and self._stale():
            self.reload()

    def on_screen_suspend(self) -> None:
        self._active = False

    def _stale(self) -> bool:
        if self.read_at is None:
            return True
        return (self.dlq.clock() - self.read_at).total_seconds() >= self.dlq.settings.refresh_seconds

    # --- loading ---------------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        if self.dlq.connection_state == "disconnected":
            self.dlq.retry_now()
        elif self.dlq.schema_ready is False:
            self.dlq.check_schema()
        else:
            self.reload()

    def reload(self) -> None:
        if not self.dlq.schema_ready:
            return
        if (v7_only := self.dlq.source.v7_only("the per-source view")) is not None:
            self.query_one("#sources-status", Static).update(Text(v7_only, style="bold yellow"))
            return
        if self.loading:
            self._again = True  # one more read right after this one, never two at once
            return
        self.loading = True
        self._show_status()
        self._fetch()

    @work(thread=True, exit_on_error=False, name="sources", group="sources")
    def _fetch(self) -> None:
        self.post_message(SourcesLoaded(self.dlq.source.sources(), self.dlq.clock()))

    def on_sources_loaded(self, message: SourcesLoaded) -> None:
        self.data_ok()
        self.overview = message.overview
        self.read_at = message.read_at
        self._draw()
        self._loaded()

    def worker_failed(self, worker: Worker[object]) -> None:
        if worker.group == "sources":
            self._loaded(failed=True)
        elif worker.group == "reingest":
            self.waiting = max(0, self.waiting - 1)

    def _loaded(self, *, failed: bool = False) -> None:
        self.loading = False
        self._show_status(failed=failed)
        if self._again:
            self._again = False
            self.reload()

    # --- drawing ---------------------------------------------------------------------------------------
    def on_resize(self) -> None:
        changed = False
        for key, width in column_widths(self.size.width).items():
            column = self.table.columns.get(key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width = width
                changed = True
        if changed:
            self._draw()

    def _source_width(self) -> int:
        column = self.table.columns.get("source")  # type: ignore[call-overload]
        return column.width if column is not None else column_widths(self.size.width)["source"]

    def _draw(self) -> None:
        overview = self.overview
        if overview is None:
            return
        table = self.table
        keep = table.cursor_row
        table.clear()
        now = self.dlq.clock() if self.dlq.frozen_clock else overview.db_now
        width = self._source_width()
        for index, stat in enumerate(overview.sources):
            table.add_row(
                Text(f"{stat.pending:,}", justify="right"),
                Text(f"{stat.held_by_others:,}", style="bold magenta", justify="right")
                if stat.held_by_others
                else Text("-", style="dim", justify="right"),
                Text(fmt.age_between(stat.oldest, now)),
                Text(fmt.age_between(stat.newest, now)),
                reasons_cell(stat),
                source_label(stat.source, width=width),
                key=str(index),
            )
        if overview.sources:
            table.move_cursor(row=min(keep, len(overview.sources) - 1), animate=False)

    def _show_status(self, *, failed: bool = False) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("pending by source file", style="bold")
        overview = self.overview
        if overview is not None:
            if not overview.sources:
                text.append(" · no pending events: no source file has dead letters", style="dim")
            elif overview.cut:
                text.append(f" · top {len(overview.sources):,} of {overview.total_sources:,} sources", style="bold")
                text.append(" (most pending first)", style="dim")
            else:
                count = overview.total_sources
                text.append(f" · {count:,} source{'s' if count != 1 else ''}, most pending first", style="dim")
            if overview.sources:
                text.append(f" · {overview.total_pending:,} pending", style="dim")
        if self.read_at is not None:
            text.append(f" · as of {self.read_at.astimezone(UTC):%H:%M:%S} UTC", style="dim")
        if self.loading:
            text.append(" · loading…", style="yellow")
        if failed:
            text.append(" · load failed (r retries)", style="bold red")
        self.query_one("#sources-status", Static).update(text)

    @property
    def highlighted(self) -> SourceStat | None:
        overview = self.overview
        if overview is None or not overview.sources or self.table.row_count == 0:
            return None
        row = self.table.cursor_row
        return overview.sources[row] if 0 <= row < len(overview.sources) else None

    # --- resolve a whole file for re-ingest --------------------------------------------------------------
    def unavailable_reason(self, action: str) -> str | None:
        if action != "reingest":
            return None
        if self.dlq.settings.read_only:
            return READ_ONLY_REFUSAL
        if self.dlq.schema_ready is not True:
            return "the sources are not available until the schema is at v7"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True if self.unavailable_reason(action) is None else None

    def action_reingest(self) -> None:
        reason = self.unavailable_reason("reingest")
        if reason is not None:
            self.notify(reason, severity="error" if reason == READ_ONLY_REFUSAL else "warning", markup=False)
            return
        stat = self.highlighted
        if stat is None:
            self.notify("no source file selected", severity="warning", markup=False)
            return
        source = stat.source
        self.waiting += 1
        # The set is read now, when the question is asked: the confirmation shows exactly what y resolves.
        self._read_selection(source)

    @work(thread=True, exit_on_error=False, name="source selection", group="reingest")
    def _read_selection(self, source: str | None) -> None:
        self.post_message(SelectionRead(self.dlq.source.source_selection(source)))

    def on_selection_read(self, message: SelectionRead) -> None:
        self.waiting = max(0, self.waiting - 1)
        self.data_ok()
        selection = message.selection
        n = len(selection.ids)
        if not n:
            name = plain(NO_SOURCE if selection.source is None else selection.source, limit=200)
            self.notify(f"no pending events left in {name}", severity="warning", markup=False)
            self.reload()
            return
        body = Text()
        body.append("Resolve every pending event of\n", style="bold")
        body.append_text(source_label(selection.source, limit=600))
        body.append(f"\n\n{n:,} pending event{'s' if n != 1 else ''} as of now", style="bold")
        body.append(" (events that arrive later stay pending)")
        if selection.held_by_others:
            body.append(f"\n{selection.held_by_others:,} held by another session will be skipped", style="magenta")
        body.append(
            f"\nas {RESOLUTION_METHODS[REINGEST_METHOD]} ({REINGEST_METHOD}), one audit entry per event", style="dim"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(selection)

        title = f"Resolve {n:,} event{'s' if n != 1 else ''} for re-ingest?"
        self.app.push_screen(ConfirmModal(title, body, yes_label="Resolve", danger=True), answered)

    def _run(self, selection: SourceSelection) -> None:
        self.waiting += 1
        self._resolve(selection)

    @work(thread=True, exit_on_error=False, name="re-ingest action", group="reingest", description="re-ingest action")
    def _resolve(self, selection: SourceSelection) -> None:
        """Thread worker: a refusal is an outcome (one line), not a worker error."""
        try:
            message = ReingestFinished(self.dlq.source.resolve_for_reingest(selection), None)
        except ActionRefused as exc:
            message = ReingestFinished(exc.result, str(exc))
        self.post_message(message)

    def on_reingest_finished(self, message: ReingestFinished) -> None:
        self.waiting = max(0, self.waiting - 1)
        result = message.result
        if message.refusal is not None:
            # A refusal can quote the server's error text, which can quote row data: sanitise it like any DB text.
            self.notify(plain(message.refusal, limit=500), title="resolve", severity="error", timeout=10, markup=False)
        if result is not None and (message.refusal is None or result.done):
            severity: SeverityLevel = "warning" if result.skipped else "information"
            self.notify(describe(result), title="resolve", severity=severity, timeout=8, markup=False)
        self.reload()
