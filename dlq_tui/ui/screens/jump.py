"""`g`: ask for an event id; the events screen then opens the page that starts at it.

The id is checked as text before it becomes an int: digits 0-9 only, at most the id column's maximum, so neither
a 4,301-digit paste (Python's int() refuses it) nor a sign or a non-ASCII digit gets past the dialog.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from dlq_tui.ui.screens.fields import AGAIN, EVENT_ID_DIGITS, EventId, FieldError, FieldInput, first_failure
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
            yield FieldInput(
                placeholder=f"event id (digits, up to {EVENT_ID_DIGITS})",
                what="an event id",
                restrict="[0-9]*",
                restrict_hint="an event id is a whole number: digits 0-9 only",
                max_length=EVENT_ID_DIGITS,
                validators=[EventId()],
                validate_on=("submitted",),
                id="jump-id",
            )
            yield FieldError(id="jump-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(FieldError).say(None)

    def on_field_input_refused(self, event: FieldInput.Refused) -> None:
        self.query_one(FieldError).say(event.reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = first_failure(event.validation_result)
        if (refusal := self.query_one(FieldInput).take_refusal()) is not None:
            problem = refusal + AGAIN if event.value else refusal  # empty: a second enter says "type an event id"
        if problem is not None:
            self.query_one(FieldError).say(problem)
            return
        self.dismiss(int(event.value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
