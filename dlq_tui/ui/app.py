"""The dlq-tui App: three screens (health, events, migration) as modes, global keys, connection state.

Screens do their database work in thread workers (via DataSource) and report failures through
`report_error`, so an expected fault is a notification and a status in the header, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.worker import get_current_worker

from dlq_tui.config import Settings
from dlq_tui.db.connect import connection_errors, describe_target, explain_connection_error, scrub
from dlq_tui.ui.commands import DlqCommands
from dlq_tui.ui.messages import SchemaChecked
from dlq_tui.ui.screens.base import schema_usable
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.screens.help import HelpScreen
from dlq_tui.ui.screens.migration import MigrationScreen
from dlq_tui.ui.source import DataSource

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DlqApp(App[int]):
    CSS_PATH = "dlq_tui.tcss"
    TITLE = "dlq-tui"
    MODES: ClassVar[dict[str, Any]] = {"health": HealthScreen, "events": EventsScreen, "migration": MigrationScreen}
    DEFAULT_MODE = "health"
    COMMANDS = App.COMMANDS | {DlqCommands}
    # Wide terminals get the detail pane beside the table, narrow ones below it (see the tcss).
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (130, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "go('health')", "Health", id="go.health"),
        Binding("e", "go('events')", "Events", id="go.events"),
        Binding("m", "go('migration')", "Migration", id="go.migration"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    # None while the first schema check runs; True at v7; False when the migration panel is needed.
    schema_ready: reactive[bool | None] = reactive(None)
    schema_label: reactive[str] = reactive("schema ?")
    # "connecting" | "connected" | "disconnected" (issue 4 adds reconnects with backoff on top).
    connection_state: reactive[str] = reactive("connecting")

    def __init__(
        self,
        settings: Settings,
        *,
        source: DataSource | None = None,
        clock: Clock | None = None,
        target_label: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.source = source or DataSource(settings)
        # A frozen clock makes ages and "updated … ago" stable in snapshot tests.
        self.frozen_clock = clock is not None
        self.clock: Clock = clock or utc_now
        self.target_label = target_label or describe_target(settings.dsn, embedded=settings.embedded).label()
        self.schema_status: Any = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.check_schema()

    def on_unmount(self) -> None:
        self.source.close()

    def check_schema(self) -> None:
        self.run_worker(self._check_schema, thread=True, exclusive=True, group="schema", exit_on_error=False)

    def _check_schema(self) -> None:
        try:
            status = self.source.schema_status()
        except Exception as exc:
            if not get_current_worker().is_cancelled:
                self.call_from_thread(self.report_error, exc, "schema check")
            return
        if not get_current_worker().is_cancelled:
            self.post_message(SchemaChecked(status))

    def on_schema_checked(self, message: SchemaChecked) -> None:
        status = message.status
        self.schema_status = status
        self.connection_state = "connected"
        usable = schema_usable(status)
        marker = getattr(status, "marker", None)
        catalog = getattr(status, "catalog_version", None)
        version = catalog if usable else (marker if marker is not None else catalog)
        if usable:
            self.schema_label = f"schema v{version}"
        elif not version:
            self.schema_label = "no dlq schema"
        else:
            self.schema_label = f"schema v{version} (needs v7)"
        self.schema_ready = usable

    # --- actions -----------------------------------------------------------------------------------
    async def action_go(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # --- faults ------------------------------------------------------------------------------------
    def report_error(self, exc: BaseException, context: str = "") -> None:
        """One place for failed database work: a clear line, the password masked, no traceback."""
        from dlq_tui.text import plain

        if isinstance(exc, connection_errors()):
            self.connection_state = "disconnected"
            line = explain_connection_error(exc, self.settings.dsn)
        else:
            inner = getattr(exc, "orig", None) or exc
            first = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
            line = scrub(f"{context + ': ' if context else ''}{first}", self.settings.dsn)
        self.notify(plain(line, limit=500), title="database", severity="error", timeout=8, markup=False)
