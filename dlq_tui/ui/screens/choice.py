"""A small chooser that answers to one key per option (k classify, p priority): press the key, or move and enter.

Labels are our own constants (never database text), still built as Text so nothing is parsed as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from dlq_tui.ui.screens.modal import DlqModal


@dataclass(frozen=True)
class Choice:
    key: str  # one printable character
    label: str
    value: Any


class ChoiceModal(DlqModal[Choice | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]
    DEFAULT_CSS = """
    ChoiceModal { align: center middle; }
    ChoiceModal > Vertical { width: 52; max-width: 95%; height: auto; border: round $accent;
                             background: $surface; padding: 1 2; }
    ChoiceModal #choice-title { text-style: bold; margin-bottom: 1; }
    ChoiceModal OptionList { height: auto; max-height: 14; }
    ChoiceModal #choice-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, title: str, choices: list[Choice]) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.title_text), id="choice-title")
            yield OptionList(
                *(
                    Option(Text.assemble((f" {c.key} ", "bold reverse"), f"  {c.label}"), id=str(i))
                    for i, c in enumerate(self.choices)
                ),
                id="choice-list",
            )
            yield Static(Text("press a key, or ↑ ↓ and enter · esc cancels"), id="choice-hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.character is not None and event.character == choice.key:
                event.stop()
                self.dismiss(choice)
                return

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)
