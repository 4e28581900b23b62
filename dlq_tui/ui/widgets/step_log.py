"""The migration step log: one line per step, updated live as the runner reports it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

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


def step_title(name: str) -> str:
    """The runner's readable title for a step name (the name itself when it has none)."""
    try:
        from dlq_tui.migrate.steps import STEP_TITLES
    except ImportError:  # pragma: no cover - the runner is part of the package
        return name
    return STEP_TITLES.get(name, name)


class StepLog(DataTable[Text]):
    DEFAULT_CSS = "StepLog { height: auto; max-height: 16; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.statuses: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_column("#", width=3, key="number")
        self.add_column("step", width=40, key="name")
        self.add_column("status", width=10, key="status")
        self.add_column("time", width=9, key="time")
        self.add_column("detail", width=40, key="detail")

    def reset(self) -> None:
        self.clear()
        self.statuses.clear()

    def report(self, step: Any) -> None:
        """Add or update the line of a runner StepEvent (number, name, status, duration_s, detail)."""
        from dlq_tui.text import safe_text

        number = int(step.number)
        status = str(step.status)
        self.statuses[str(step.name)] = status
        duration = getattr(step, "duration_s", None)
        cells = [
            Text(str(number), style="dim"),
            safe_text(step_title(str(step.name)), limit=120),
            Text(f"{STATUS_ICON.get(status, '?')} {status}", style=STATUS_STYLE.get(status, "")),
            Text("" if duration is None else f"{duration:.2f} s", justify="right"),
            safe_text(str(getattr(step, "detail", "") or ""), limit=200),
        ]
        key = str(step.name)  # plan rows and run events meet on the step name
        if key in self.rows:
            for column, cell in zip(COLUMN_KEYS, cells, strict=True):
                self.update_cell(key, column, cell)
        else:
            self.add_row(*cells, key=key)
        self.move_cursor(row=self.get_row_index(key), animate=False)

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
