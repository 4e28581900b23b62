"""`/`: the event filter as a small form. Enter (or ctrl+s) applies, esc leaves the filter unchanged.

The text fields are as long as the columns they search (a longer value could never match) and take no character
the database cannot compare (NUL, lone surrogates) nor controls; a refused value keeps the form open with the reason.
"""

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
from dlq_tui.db.schema import CLASSIFICATIONS, dead_letter_events, priority_label
from dlq_tui.ui.screens.fields import AGAIN, FieldError, FieldInput, Typeable, at_most, first_failure
from dlq_tui.ui.screens.modal import DlqModal

UNCLASSIFIED = "(unclassified)"
REASON = "the reason"
TEXT = "the text"
# An exact reason longer than the column, or a substring longer than both searched columns, matches nothing.
REASON_MAX_CHARS: int = dead_letter_events.c.reason.type.length  # type: ignore[attr-defined]
TEXT_MAX_CHARS: int = max(REASON_MAX_CHARS, dead_letter_events.c.source.type.length)  # type: ignore[attr-defined]


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
                yield FieldInput(
                    flt.reason or "",
                    what=REASON,
                    placeholder=f"exact reason code, max {REASON_MAX_CHARS} (→ completes)",
                    suggester=SuggestFromList(_completable(self.reasons), case_sensitive=False),
                    max_length=REASON_MAX_CHARS,
                    validators=[Typeable(REASON), at_most(REASON, REASON_MAX_CHARS)],
                    id="f-reason",
                )
            with Horizontal():
                yield Label("text")
                yield FieldInput(
                    flt.text or "",
                    what=TEXT,
                    placeholder=f"in source or reason (max {TEXT_MAX_CHARS})",
                    max_length=TEXT_MAX_CHARS,
                    validators=[Typeable(TEXT), at_most(TEXT, TEXT_MAX_CHARS)],
                    id="f-text",
                )
            with Horizontal():
                yield Label("locks")
                yield Select(
                    [("locked only", "locked"), ("free only", "free")],
                    value=flt.lock if flt.lock != "any" else Select.NULL,
                    prompt="any",
                    id="f-lock",
                )
            yield Checkbox("show resolved events too", flt.include_resolved, id="f-resolved")
            yield FieldError(id="filter-error")

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

    def _problem(self) -> str | None:
        for field in self.query(FieldInput):
            if (problem := first_failure(field.validate(field.value))) is not None:
                return problem
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(FieldError).say(self._problem())

    def on_field_input_refused(self, event: FieldInput.Refused) -> None:
        self.query_one(FieldError).say(event.reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        refusals = [refusal for field in self.query(FieldInput) if (refusal := field.take_refusal()) is not None]
        if refusals:
            self.query_one(FieldError).say(refusals[0] + AGAIN)
            return
        if (problem := self._problem()) is not None:
            self.query_one(FieldError).say(problem)
            return
        self.dismiss(self._read())

    def action_cancel(self) -> None:
        self.dismiss(None)
