"""`E` / ctrl+s: ask where to write the JSON Lines export (default ./dlq-export-<UTC timestamp>.jsonl).

The path is checked before the dialog closes, by the same rule the writer applies (triage.export_target_problem):
a name the filesystem cannot take, or an existing directory, FIFO or device, is refused here with the reason and
the target is left untouched. An existing regular file still goes to the overwrite confirmation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from dlq_tui.ui.screens.fields import AGAIN, FieldError, FieldInput, Typeable, first_failure
from dlq_tui.ui.screens.modal import DlqModal
from dlq_tui.ui.source import export_target_problem

PATH = "the path"


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
            yield FieldInput(self.default_path, what=PATH, validators=[Typeable(PATH)], id="export-path")
            yield FieldError(id="export-error")
            yield Static(
                Text("one object per event, every column, payload exactly as stored · enter writes · esc cancels"),
                id="export-hint",
            )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(FieldError).say(first_failure(event.validation_result))

    def on_field_input_refused(self, event: FieldInput.Refused) -> None:
        self.query_one(FieldError).say(event.reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        path = Path(value)
        problem = first_failure(event.validation_result)
        if (refusal := self.query_one(FieldInput).take_refusal()) is not None:
            problem = refusal + AGAIN if value else refusal
        if problem is None and not value:
            problem = "type a file path (esc cancels)"
        if problem is None:
            try:
                path = path.expanduser()
            except RuntimeError:  # ~name of an unknown user
                problem = f"no home directory for {path.parts[0]}"
        if problem is None:
            problem = export_target_problem(path)
        if problem is not None:
            self.query_one(FieldError).say(problem)
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
