"""The migration step log: one line per step, updated live as the runner reports it.

Lines are in the order the steps really start, not in step-number order: the online migration runs
some steps early (e.g. the paging indexes before the constraints). A step's repeated "running"
events (backfill progress, lock retries) update its own line in place.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from dlq_tui.ui.source import STEP_TITLES, StepEvent

STATUS_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "started": "bold yellow",
    "done": "bold green",
    "ok": "bold green",
    "skipped": "dim",
    "failed": "bold white on red",
    "planned": "cyan",
}
COLUMN_KEYS = ("number", "name", "status", "time", "detail")
STATUS_ICON = {
    "pending": "·",
    "running": "…",
    "started": "…",
    "done": "✓",
    "ok": "✓",
    "skipped": "–",
    "failed": "✗",
    "planned": "·",
}


FIXED_COLUMNS = (("number", "#", 3), ("name", "step", 36), ("status", "status", 10), ("time", "time", 9))
# Each column pads one cell on both sides; the vertical scrollbar takes two.
FIXED_WIDTH = sum(width + 2 for *_, width in FIXED_COLUMNS) + 2 + 2
DETAIL_MIN = 30


def step_title(name: str) -> str:
    """The runner's readable title for a step name (the name itself when it has none)."""
    return STEP_TITLES.get(name, name)


class StepLog(DataTable[Text]):
    DEFAULT_CSS = "StepLog { height: auto; max-height: 16; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.statuses: dict[str, str] = {}
        self.started: list[str] = []  # steps in the order they left "pending"
        self._cells: dict[str, list[Text]] = {}

    def on_mount(self) -> None:
        self._add_columns(DETAIL_MIN)

    def _add_columns(self, detail_width: int) -> None:
        for key, label, width in (*FIXED_COLUMNS, ("detail", "detail", detail_width)):
            self.add_column(label, width=width, key=key)

    def on_resize(self) -> None:
        # The detail (backfill progress, lock retries) takes whatever width the fixed columns leave.
        width = max(DETAIL_MIN, self.size.width - FIXED_WIDTH)
        if self.columns[ColumnKey("detail")].width == width:
            return
        rows = [(str(row.key.value), list(self.get_row(row.key))) for row in self.ordered_rows]
        cursor = self.cursor_row
        self.clear(columns=True)
        self._add_columns(width)
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def reset(self) -> None:
        self.clear()
        self.statuses.clear()
        self.started.clear()
        self._cells.clear()

    def report(self, step: StepEvent) -> None:
        """Add or update the line of a runner StepEvent (number, name, status, duration_s, detail)."""
        from dlq_tui.text import safe_text

        number = step.number
        status: str = step.status
        key = step.name  # plan rows and run events meet on the step name
        self.statuses[key] = status
        duration = step.duration_s
        cells = [
            Text(str(number), style="dim"),
            safe_text(step_title(key), limit=120),
            Text(f"{STATUS_ICON.get(status, '?')} {status}", style=STATUS_STYLE.get(status, "")),
            Text("" if duration is None else f"{duration:.2f} s", justify="right"),
            safe_text(step.detail, limit=200),
        ]
        self._cells[key] = cells
        if status != "pending" and key not in self.started:
            self.started.append(key)
            if key not in self.rows or self.get_row_index(key) != len(self.started) - 1:
                self._rebuild()  # it started out of number order: it moves up behind the steps before it
                self.move_cursor(row=self.get_row_index(key), animate=False)
                return
        if key in self.rows:
            for column, cell in zip(COLUMN_KEYS, cells, strict=True):
                self.update_cell(key, column, cell)
        else:
            self.add_row(*cells, key=key)
        self.move_cursor(row=self.get_row_index(key), animate=False)

    def _rebuild(self) -> None:
        waiting = [str(row.key.value) for row in self.ordered_rows if row.key.value not in self.started]
        cells = {name: self._cells.get(name) or list(self.get_row(name)) for name in [*self.started, *waiting]}
        self.clear()
        for name in [*self.started, *waiting]:
            self.add_row(*cells[name], key=name)

    def order(self) -> list[str]:
        """Step names as the lines read, top to bottom."""
        return [str(row.key.value) for row in self.ordered_rows]

    def show_plan(self, steps: list[str]) -> None:
        from dlq_tui.text import safe_text

        self.reset()
        for name in steps:
            self.add_row(
                Text("·", style="dim"),
                safe_text(step_title(name), limit=120),
                Text(f"{STATUS_ICON['planned']} to run", style=STATUS_STYLE["planned"]),
                Text(""),
                Text(""),
                key=name,
            )
