"""What every dlq-tui screen shares: the connection bar, the footer, and one worker error handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from dlq_tui.ui.app import DlqApp


READ_ONLY_REFUSAL = "read-only mode: actions are disabled"  # one wording for every screen's write actions


class DlqScreen(Screen[None]):
    TITLE_TEXT = ""

    @property
    def dlq(self) -> DlqApp:
        return cast("DlqApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: this is the one handler for every worker of a screen.
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.dlq.report_error(event.worker.error, event.worker.name)
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker[object]) -> None:
        """Hook: a screen puts itself back in a usable state (e.g. re-arms its refresh timer)."""

    def unavailable_reason(self, action: str) -> str | None:
        """Why `action` cannot run here now (read-only, v7 missing, ...), or None: the palette says it aloud."""
        return None

    def busy(self) -> bool:
        """Still loading something the user is waiting for (tests and screenshots wait on it)."""
        return False

    def data_ok(self) -> None:
        """A query just succeeded: the link is up (clears a "disconnected" left by an earlier fault)."""
        self.dlq.mark_good()
