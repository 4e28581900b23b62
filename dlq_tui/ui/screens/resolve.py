"""`x`: choose a resolution method (stored values from triage.RESOLUTION_METHODS) and an optional note.

A digit picks a method and moves to the note; enter in the note (or ctrl+s anywhere) answers. The events
screen then asks for a y/n confirmation naming the verb and the count before anything is written. A note the
database could not store, or longer than NOTE_MAX_CHARS, is refused in the dialog with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from dlq_tui.ui.screens.fields import AGAIN, FieldError, FieldInput, Typeable, at_most, first_failure
from dlq_tui.ui.screens.modal import DlqModal
from dlq_tui.ui.source import NOTE_MAX_CHARS, RESOLUTION_METHODS

NOTE = "the note"


@dataclass(frozen=True)
class Resolution:
    method: str  # a key of RESOLUTION_METHODS
    note: str | None


class ResolveModal(DlqModal[Resolution | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="resolve.cancel"),
        Binding("ctrl+s", "submit", "Resolve", id="resolve.submit"),
    ]
    DEFAULT_CSS = """
    ResolveModal { align: center middle; }
    ResolveModal > Vertical { width: 64; max-width: 95%; height: auto; border: round $accent;
                              background: $surface; padding: 1 2; }
    ResolveModal #resolve-title { text-style: bold; margin-bottom: 1; }
    ResolveModal OptionList { height: auto; }
    ResolveModal #resolve-note-label { margin-top: 1; }
    ResolveModal #resolve-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, subject: str) -> None:
        super().__init__()
        self.subject = subject
        self.methods = list(RESOLUTION_METHODS.items())

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Resolve {self.subject}"), id="resolve-title")
            yield OptionList(
                *(
                    Option(Text.assemble((f" {n} ", "bold reverse"), f"  {label}", (f"  {value}", "dim")), id=value)
                    for n, (value, label) in enumerate(self.methods, start=1)
                ),
                id="resolve-methods",
            )
            yield Static(
                Text(f"note (optional, for the audit entry; max {NOTE_MAX_CHARS:,} characters)"),
                id="resolve-note-label",
            )
            yield FieldInput(
                placeholder="why",
                what=NOTE,
                max_length=NOTE_MAX_CHARS,
                validators=[Typeable(NOTE), at_most(NOTE, NOTE_MAX_CHARS)],
                id="resolve-note",
            )
            yield FieldError(id="resolve-error")
            yield Static(
                Text("digit or enter picks a method · enter in the note resolves · esc cancels"), id="resolve-hint"
            )

    def on_mount(self) -> None:
        methods = self.query_one(OptionList)
        methods.highlighted = 0
        methods.focus()

    def on_key(self, event: events.Key) -> None:
        if self.query_one(Input).has_focus or event.character is None or not event.character.isdigit():
            return
        index = int(event.character) - 1
        if 0 <= index < len(self.methods):
            event.stop()
            self.query_one(OptionList).highlighted = index
            self.query_one(Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(FieldError).say(first_failure(event.validation_result))

    def on_field_input_refused(self, event: FieldInput.Refused) -> None:
        self.query_one(FieldError).say(event.reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is None:
            return
        field = self.query_one(FieldInput)
        if (refusal := field.take_refusal()) is not None:
            self.query_one(FieldError).say(refusal + AGAIN)
            field.focus()
            return
        if (problem := first_failure(field.validate(field.value))) is not None:
            self.query_one(FieldError).say(problem)
            field.focus()
            return
        note = field.value.strip() or None
        self.dismiss(Resolution(self.methods[index][0], note))

    def action_cancel(self) -> None:
        self.dismiss(None)
