"""The top line of every screen: where we are connected, the schema version, read-only, link state.

While the link is down the state reads "disconnected, retrying in Ns · last good data HH:MM:SS · r retries
now" and ticks every second. The link state is never cut: when the line is too long for the terminal the
target label gives up width first (cut with an ellipsis), then the state drops its least useful parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

if TYPE_CHECKING:
    from dlq_tui.ui.app import DlqApp

RETRY_HINT = "r retries now"  # every screen's `r` tries at once instead of waiting out the backoff
MIN_TARGET = 12  # below this the target label says nothing useful: the state gives up its details first
PADDING = 2  # each part pads one cell on both sides


class ConnectionBar(Horizontal):
    DEFAULT_CSS = """
    ConnectionBar { height: 1; dock: top; background: $panel; }
    ConnectionBar > Static { width: auto; padding: 0 1; }
    ConnectionBar > #bar-title { text-style: bold; background: $primary; color: $text; }
    ConnectionBar > #bar-spacer { width: 1fr; }
    /* Too long for the terminal: the target label takes the slack and gives up width. */
    ConnectionBar.-tight > #bar-target { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    ConnectionBar.-tight > #bar-spacer { display: none; }
    ConnectionBar > #bar-readonly { background: $warning; color: $background; text-style: bold; }
    ConnectionBar > #bar-profile { background: $accent; color: $text; text-style: bold; }
    ConnectionBar > #bar-profile.-production { background: $error; color: $text; text-style: bold; }
    ConnectionBar > #bar-standby { background: $error; color: $background; text-style: bold; }
    ConnectionBar > #bar-state.-connected { color: $success; }
    ConnectionBar > #bar-state.-connecting { color: $warning; }
    ConnectionBar > #bar-state.-disconnected { background: $error; color: $text; text-style: bold; }
    """

    def __init__(self, screen_title: str) -> None:
        super().__init__()
        self.screen_title = screen_title

    @property
    def dlq(self) -> DlqApp:
        return cast("DlqApp", self.app)

    @property
    def title_text(self) -> str:
        return f"dlq-tui · {self.screen_title}"

    @property
    def profile_text(self) -> str | None:
        from dlq_tui.text import plain

        app = self.dlq
        name = app.settings.profile
        if name is None:
            return None
        return plain(name, limit=30) + (" · PRODUCTION" if app.settings.production else "")

    def compose(self) -> ComposeResult:
        app = self.dlq
        yield Static(Text(self.title_text), id="bar-title")
        if (profile := self.profile_text) is not None:
            # The config file's profile: red when it says production = true, so nobody mistakes prod for staging.
            yield Static(Text(profile), id="bar-profile", classes="-production" if app.settings.production else "")
        # Target.label() never carries the password; Text() keeps a database name from parsing as markup.
        yield Static(Text(app.target_label), id="bar-target")
        yield Static(Text(app.schema_label), id="bar-schema")
        if app.settings.read_only:
            yield Static(Text("READ-ONLY"), id="bar-readonly")
        if app.settings.standby:
            yield Static(Text("STANDBY"), id="bar-standby")
        yield Static(id="bar-spacer")
        yield Static(id="bar-state")

    def set_screen_title(self, title: str) -> None:
        """A screen's own state in the header (health: "health · PAUSED")."""
        self.screen_title = title
        self._draw_state()

    def on_mount(self) -> None:
        self.watch(self.app, "schema_label", self._schema_changed)
        self.watch(self.app, "connection_state", self._state_changed)
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        self._draw_state()

    def _schema_changed(self, label: str) -> None:
        self.query_one("#bar-schema", Static).update(Text(label))
        self._draw_state()

    def _state_changed(self, state: str) -> None:
        self.query_one("#bar-state", Static).set_classes(f"-{state}")
        self._draw_state()

    def _tick(self) -> None:
        app = self.dlq
        if app.connection_state == "disconnected":
            self._draw_state()

    def state_texts(self, state: str) -> list[str]:
        """The link state, most detail first; the bar shows the first one that fits."""
        if state != "disconnected":
            return [state]
        from dlq_tui.ui.reconnect import disconnected_label

        app = self.dlq
        head, _, tail = disconnected_label(app.last_good_at, app.retry_in()).partition(" · ")
        return [
            f"{head} · {tail} · {RETRY_HINT}",
            f"disconnected, retrying · {tail} · {RETRY_HINT}",  # the countdown matters least: `r` skips it
            f"{head} · {RETRY_HINT}",
            f"disconnected · {RETRY_HINT}",
        ]

    def _draw_state(self) -> None:
        app = self.dlq
        width = self.size.width
        candidates = self.state_texts(str(app.connection_state))
        # What must stay whole: the screen title (its "dlq-tui ·" prefix may go), the schema, READ-ONLY, the state.
        badges = [str(app.schema_label)] + (["READ-ONLY"] if app.settings.read_only else [])
        badges += [self.profile_text] if self.profile_text is not None else []
        badges += ["STANDBY"] if app.settings.standby else []
        fixed = sum(cell_len(part) + PADDING for part in badges)
        target = cell_len(str(app.target_label)) + PADDING
        titles = [self.title_text, self.screen_title]
        chosen, title = candidates[0], titles[0]
        if width > 0:  # else not laid out yet: the first resize draws it
            fits = (
                (state, name)
                for state in candidates
                for name in titles
                if fixed + cell_len(name) + PADDING + cell_len(state) + PADDING + min(target, MIN_TARGET) <= width
            )
            chosen, title = next(fits, (candidates[-1], titles[-1]))
        self.query_one("#bar-title", Static).update(Text(title))
        self.query_one("#bar-state", Static).update(Text(chosen))
        used = fixed + cell_len(title) + PADDING + target + cell_len(chosen) + PADDING
        self.set_class(width > 0 and used > width, "-tight")
