"""The top line of every screen: where we are connected, the schema version, read-only, link state.

While the link is down the state reads "disconnected, retrying in Ns · last good data HH:MM:SS" and
ticks every second; the target label gives up width first so that line always fits.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static


class ConnectionBar(Horizontal):
    DEFAULT_CSS = """
    ConnectionBar { height: 1; dock: top; background: $panel; }
    ConnectionBar > Static { width: auto; padding: 0 1; }
    ConnectionBar > #bar-title { text-style: bold; background: $primary; color: $text; }
    ConnectionBar > #bar-spacer { width: 1fr; }
    /* Link down: the long state line must fit, so the target label takes the slack and gives up width. */
    ConnectionBar.-down > #bar-target { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    ConnectionBar.-down > #bar-spacer { display: none; }
    ConnectionBar > #bar-readonly { background: $warning; color: $background; text-style: bold; }
    ConnectionBar > #bar-state.-connected { color: $success; }
    ConnectionBar > #bar-state.-connecting { color: $warning; }
    ConnectionBar > #bar-state.-disconnected { background: $error; color: $text; text-style: bold; }
    """

    def __init__(self, screen_title: str) -> None:
        super().__init__()
        self.screen_title = screen_title

    def compose(self) -> ComposeResult:
        app: Any = self.app
        yield Static(Text(f"dlq-tui · {self.screen_title}"), id="bar-title")
        # Target.label() never carries the password; Text() keeps a database name from parsing as markup.
        yield Static(Text(app.target_label), id="bar-target")
        yield Static(Text(app.schema_label), id="bar-schema")
        if app.settings.read_only:
            yield Static(Text("READ-ONLY"), id="bar-readonly")
        yield Static(id="bar-spacer")
        yield Static(id="bar-state")

    def on_mount(self) -> None:
        self.watch(self.app, "schema_label", self._schema_changed)
        self.watch(self.app, "connection_state", self._state_changed)
        self.set_interval(1.0, self._tick)

    def _schema_changed(self, label: str) -> None:
        self.query_one("#bar-schema", Static).update(Text(label))

    def _state_changed(self, state: str) -> None:
        widget = self.query_one("#bar-state", Static)
        widget.update(Text(self._state_text(state)))
        widget.set_classes(f"-{state}")
        self.set_class(state == "disconnected", "-down")

    def _state_text(self, state: str) -> str:
        if state != "disconnected":
            return state
        from dlq_tui.ui.reconnect import disconnected_label

        app: Any = self.app
        return disconnected_label(app.last_good_at, app.retry_in())

    def _tick(self) -> None:
        app: Any = self.app
        if app.connection_state == "disconnected":
            self.query_one("#bar-state", Static).update(Text(self._state_text("disconnected")))
