"""`g`: ask for an event id; the events screen then opens the page that starts at it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from dlq_tui.ui.screens.modal import DlqModal


class JumpModal(DlqModal[int | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="jump.cancel")]
    DEFAULT_CSS = """
    JumpModal { align: center middle; }
    JumpModal > Vertical { width: 44; height: auto; border: round $accent; background: $surface; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Jump to event id (enter; esc cancels)"))
            yield Input(placeholder="event id", type="integer", id="jump-id")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(int(value) if value.isdigit() else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
