"""`/`: the event filter as a small form. Enter (or ctrl+s) applies, esc leaves the filter unchanged."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Select

from dlq_tui.db.models import EventFilter
from dlq_tui.db.schema import CLASSIFICATIONS, priority_label
from dlq_tui.ui.screens.modal import DlqModal

UNCLASSIFIED = "(unclassified)"


def describe_filter(flt: EventFilter) -> str:
    """One line for the status bar; only ever shown through Text (a reason may contain brackets)."""
    parts = []
    if flt.max_priority is not None:
        parts.append(f"priority ≤ {flt.max_priority}")
    if flt.classification is not None:
        parts.append(f"class {flt.classification or 'unclassified'}")
    if flt.reason:
        parts.append(f"reason {flt.reason!r}")
    if flt.text:
        parts.append(f"text {flt.text!r}")
    if flt.lock != "any":
        parts.append(f"{flt.lock} only")
    if flt.include_resolved:
        parts.append("resolved too")
    return ", ".join(parts)


def _completable(reasons: list[str]) -> list[str]:
    """Reasons the Input may draw as they are: it renders its value and suggestion without escaping, so a
    reason holding control, bidi or format characters (attacker-written) is never offered for completion."""
    from dlq_tui.text import plain

    return [reason for reason in reasons if plain(reason) == reason]


class FilterModal(DlqModal[EventFilter | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="filter.cancel"),
        Binding("ctrl+s", "apply", "Apply", id="filter.apply"),
    ]
    DEFAULT_CSS = """
    FilterModal { align: center middle; }
    FilterModal > Vertical { width: 72; max-width: 100%; height: auto; border: round $accent;
                             background: $surface; padding: 0 1; }
    FilterModal Horizontal { height: auto; }
    FilterModal Label { width: 16; padding: 1 1 0 0; }
    FilterModal Input, FilterModal Select { width: 1fr; }
    """

    def __init__(self, current: EventFilter, reasons: list[str]) -> None:
        super().__init__()
        self.current = current
        self.reasons = reasons

    def compose(self) -> ComposeResult:
        flt = self.current
        with Vertical():
            yield Label(Text("Filter events (enter applies, esc cancels)", style="bold"))
            with Horizontal():
                yield Label("max priority")
                yield Select(
                    [(f"≤ {p} ({priority_label(p)})", p) for p in range(1, 11)],
                    value=flt.max_priority if flt.max_priority is not None else Select.NULL,
                    prompt="any",
                    id="f-priority",
                )
            with Horizontal():
                yield Label("classification")
                current_class = Select.NULL if flt.classification is None else (flt.classification or UNCLASSIFIED)
                yield Select(
                    [(c, c) for c in CLASSIFICATIONS] + [(UNCLASSIFIED, UNCLASSIFIED)],
                    value=current_class,
                    prompt="any",
                    id="f-class",
                )
            with Horizontal():
                yield Label("reason")
                yield Input(
                    flt.reason or "",
                    placeholder="exact reason code (→ completes)",
                    suggester=SuggestFromList(_completable(self.reasons), case_sensitive=False),
                    id="f-reason",
                )
            with Horizontal():
                yield Label("text")
                yield Input(flt.text or "", placeholder="in source or reason", id="f-text")
            with Horizontal():
                yield Label("locks")
                yield Select(
                    [("locked only", "locked"), ("free only", "free")],
                    value=flt.lock if flt.lock != "any" else Select.NULL,
                    prompt="any",
                    id="f-lock",
                )
            yield Checkbox("show resolved events too", flt.include_resolved, id="f-resolved")

    def on_mount(self) -> None:
        self.query_one("#f-text", Input).focus()

    def _read(self) -> EventFilter:
        priority = self.query_one("#f-priority", Select).value
        klass = self.query_one("#f-class", Select).value
        lock = self.query_one("#f-lock", Select).value
        reason = self.query_one("#f-reason", Input).value.strip()
        text = self.query_one("#f-text", Input).value.strip()
        return replace(
            self.current,
            max_priority=priority if isinstance(priority, int) else None,
            classification=None if klass is Select.NULL else ("" if klass == UNCLASSIFIED else str(klass)),
            reason=reason or None,
            text=text or None,
            lock=lock if lock in ("locked", "free") else "any",
            include_resolved=self.query_one("#f-resolved", Checkbox).value,
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_apply()

    def action_apply(self) -> None:
        self.dismiss(self._read())

    def action_cancel(self) -> None:
        self.dismiss(None)
