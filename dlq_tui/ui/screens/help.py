"""`?`: every key of every screen, read from the BINDINGS themselves so the list cannot go stale."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from dlq_tui.ui.screens.modal import DlqModal

# Keys the widgets themselves bring (DataTable, Input, dialogs), listed for completeness.
EXTRA_KEYS: dict[str, list[tuple[str, str]]] = {
    "Events": [
        ("↑ ↓ pgup pgdn home end", "move; the next or previous page loads by itself"),
        ("enter", "focus the detail pane (scroll it with the arrows; esc returns)"),
    ],
    "Dialogs": [
        ("y / n", "answer a confirmation (focus starts on No)"),
        ("enter", "apply a filter or a jump"),
        ("esc", "close a dialog without changing anything"),
        ("ctrl+p", "command palette: every action by name"),
    ],
}


def key_text(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    names = {
        "question_mark": "?",
        "slash": "/",
        "asterisk": "*",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "space": "space",
        "backspace": "backspace",
        "escape": "esc",
    }
    return " ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


def _bindings(bindings: list[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for item in bindings:
        binding = item if isinstance(item, Binding) else Binding(*item)
        description = binding.tooltip or binding.description
        if description:
            rows.append((key_text(binding), description))
    return rows


def help_sections(
    everywhere: list[BindingType], current: Screen[object] | None = None
) -> list[tuple[str, list[tuple[str, str]]]]:
    """`everywhere`: the app's own keys (passed in: help is part of the app, importing it would be a cycle)."""
    from dlq_tui.ui.screens.events import EventsScreen
    from dlq_tui.ui.screens.health import HealthScreen
    from dlq_tui.ui.screens.migration import MigrationScreen
    from dlq_tui.ui.screens.search import SEARCH_LANGUAGE
    from dlq_tui.ui.screens.sources import SourcesScreen
    from dlq_tui.ui.widgets.event_table import EventTable

    sections = [
        ("Everywhere", [*_bindings(everywhere), ("ctrl+p", "command palette")]),
        ("Health", _bindings(HealthScreen.BINDINGS)),
        ("Events", _bindings(EventsScreen.BINDINGS) + _bindings(EventTable.BINDINGS) + EXTRA_KEYS["Events"]),
        ("Search (/ on events)", list(SEARCH_LANGUAGE)),
        ("Migration", _bindings(MigrationScreen.BINDINGS)),
        ("Sources", _bindings(SourcesScreen.BINDINGS)),
        ("Dialogs", EXTRA_KEYS["Dialogs"]),
    ]
    # The screen you came from goes first: its keys are the ones you are looking for.
    if current is not None:
        name = type(current).__name__.removesuffix("Screen")
        sections.sort(key=lambda s: 0 if s[0] == "Everywhere" else 1 if s[0] == name else 2)
    return sections


class HelpScreen(DlqModal[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", show=True),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: 90%; border: round $accent;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, current: Screen[object] | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._render_table(), id="help-keys")

    def _render_table(self) -> Table:
        table = Table(title="dlq-tui keys", expand=True, box=None, show_header=False, pad_edge=False)
        table.add_column("key", style="bold", width=24, no_wrap=True)
        table.add_column("does")
        for title, rows in help_sections(self.app.BINDINGS, self.current):
            table.add_row(Text(title, style="bold underline"), "")
            for key, does in rows:
                table.add_row(Text(key), Text(does))
            table.add_row("", "")
        return table

    def action_close(self) -> None:
        self.dismiss(None)
