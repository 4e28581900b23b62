"""`E` / ctrl+s: ask where to write the JSON Lines export (default ./dlq-export-<UTC timestamp>.jsonl)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from dlq_tui.ui.screens.modal import DlqModal


def default_export_path(now: datetime) -> str:
    return f"./dlq-export-{now:%Y%m%dT%H%M%SZ}.jsonl"


class ExportModal(DlqModal[Path | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="export.cancel")]
    DEFAULT_CSS = """
    ExportModal { align: center middle; }
    ExportModal > Vertical { width: 72; max-width: 95%; height: auto; border: round $accent;
                             background: $surface; padding: 1 2; }
    ExportModal #export-title { text-style: bold; margin-bottom: 1; }
    ExportModal #export-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, subject: str, default_path: str) -> None:
        super().__init__()
        self.subject = subject
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Export {self.subject} as JSON Lines"), id="export-title")
            yield Input(value=self.default_path, id="export-path")
            yield Static(
                Text("one object per event, every column, payload exactly as stored · enter writes · esc cancels"),
                id="export-hint",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        self.dismiss(Path(value).expanduser() if value else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
