"""Triage and export on the events screen: the actions behind c u k p x o R T E ctrl+e f F.

Actions apply to EventTable.selected_ids() (the marked events, else the highlighted one), ask for a y/n
confirmation when they are destructive or touch more than one event, run in a named thread worker (each one
hands the ids to one DataSource call), report describe(result) as a notification and reload the view keeping
the cursor. EventsScreen inherits the mixin: its BINDINGS name these actions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.message import Message
from textual.notifications import SeverityLevel

from dlq_tui.db.models import ActionResult, EventFilter
from dlq_tui.db.schema import CLASSIFICATIONS, priority_label
from dlq_tui.text import plain
from dlq_tui.ui.screens import search
from dlq_tui.ui.screens.base import READ_ONLY_REFUSAL, DlqScreen
from dlq_tui.ui.screens.choice import Choice, ChoiceModal
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.export import ExportModal, default_export_path
from dlq_tui.ui.screens.filter import describe_filter
from dlq_tui.ui.screens.resolve import Resolution, ResolveModal
from dlq_tui.ui.screens.search import SearchState
from dlq_tui.ui.source import HELD_BY_YOU, RESOLUTION_METHODS, ActionRefused, describe

if TYPE_CHECKING:
    from dlq_tui.ui.widgets.event_table import EventTable

# Actions that write to the database (refused in read-only mode). Export only reads: it stays available.
WRITE_ACTIONS = frozenset(
    {"claim", "release", "classify", "priority", "resolve", "reopen", "requeue", "take_back", "redrive"}
)
TRIAGE_ACTIONS = WRITE_ACTIONS | {"export", "export_matching", "repair"}
# What a SQLite database (legacy columns only) cannot do: resolve, reopen and export remain.
V7_ONLY_ACTIONS = frozenset({"claim", "release", "classify", "priority", "requeue", "take_back", "redrive", "repair"})

CLASSIFY_CHOICES = [
    *(Choice(name[0], name, name) for name in CLASSIFICATIONS),  # m c f
    Choice("n", "none (clear the classification)", None),
]
PRIORITY_CHOICES = [Choice(str(p % 10), f"{p} {priority_label(p)}", p) for p in range(1, 11)]  # 0 means 10


@dataclass(frozen=True)
class Outcome:
    """What a triage worker reports back: the result (possibly partial) and a refusal line, if any."""

    verb: str
    result: ActionResult | None
    refusal: str | None
    focus_id: int | None  # keep the cursor here after the reload


class ActionFinished(Message):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class MatchingIdsLoaded(Message):
    def __init__(self, flt: EventFilter, ids: list[int], as_of: datetime) -> None:
        super().__init__()
        self.flt = flt
        self.ids = ids
        self.as_of = as_of


class ExportFinished(Message):
    def __init__(self, path: Path, written: int | None, refusal: str | None) -> None:
        super().__init__()
        self.path = path
        self.written = written
        self.refusal = refusal


class EventActions(DlqScreen):
    """The triage half of EventsScreen; the browsing half (the table, filter, reloads) is the subclass."""

    filter: EventFilter
    actions_running: int
    search: SearchState  # the search on screen, if any: ctrl+e exports its matches

    if TYPE_CHECKING:  # provided by EventsScreen

        @property
        def table(self) -> EventTable: ...

        def _reload_at(self, focus_id: int | None) -> None: ...

    def unavailable_reason(self, action: str) -> str | None:
        """Why a triage action cannot run now (None: it can). check_action and the palette both use it."""
        if action not in TRIAGE_ACTIONS:
            return None
        if action in WRITE_ACTIONS and self.dlq.settings.read_only:
            return READ_ONLY_REFUSAL
        if self.dlq.schema_ready is not True:
            return "the events are not available until the schema is at v7"
        if action in V7_ONLY_ACTIONS and (v7_only := self.dlq.source.v7_only(action)) is not None:
            return v7_only
        if action == "reopen" and not self.filter.include_resolved:
            return "reopen works on resolved events: press v to list them first"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        reason = self.unavailable_reason(action)
        if reason is None or (action in V7_ONLY_ACTIONS and self.dlq.source.is_sqlite):
            return True  # on SQLite a v7-only key still answers: with the reason
        # Reopen is hidden while no resolved event can be highlighted; everything else is greyed out.
        return False if action == "reopen" and not self.dlq.settings.read_only else None

    def _selection(self, action: str) -> tuple[list[int], str] | None:
        reason = self.unavailable_reason(action)
        if reason is not None:
            self.notify(reason, severity="error" if reason == READ_ONLY_REFUSAL else "warning", markup=False)
            return None
        ids = self.table.selected_ids()
        if not ids:
            self.notify("no event selected", severity="warning", markup=False)
            return None
        plural = "s" if len(ids) != 1 else ""
        return ids, (f"{len(ids)} marked event{plural}" if self.table.marked else f"event {ids[0]}")

    def _confirm(
        self, verb: str, ids: list[int], subject: str, details: Sequence[str], run: Callable[[], None]
    ) -> None:
        """Ask y/n (focus on No) naming the verb, the count and the view the set was chosen in."""
        body = Text()
        body.append(f"{verb} {subject}", style="bold")
        for line in details:
            body.append(f"\n{line}")
        if self.table.marked:
            shown = len(set(ids).intersection(self.table.rows_by_id))
            view = "pending+resolved" if self.filter.include_resolved else "pending"
            described = describe_filter(self.filter)
            hidden = f", {len(ids) - shown} not shown" if shown < len(ids) else ""
            body.append(f"\nthe set: the {len(ids)} events you marked ({shown} in view{hidden})", style="dim")
            body.append(f"\nview: {view}" + (f", filter: {described}" if described else ""), style="dim")
        else:
            body.append("\nthe set: the highlighted event", style="dim")

        def answered(yes: bool | None) -> None:
            if yes:
                run()

        title = f"{verb} {len(ids)} event{'s' if len(ids) != 1 else ''}?"
        self.app.push_screen(ConfirmModal(title, body, yes_label=verb, danger=True), answered)

    def _start(
        self,
        verb: str,
        ids: list[int],
        subject: str,
        call: Callable[[list[int]], ActionResult],
        *,
        confirm: bool,
        details: Sequence[str] = (),
        leaves_view: bool = False,
    ) -> None:
        focus_id = self._focus_after(ids, leaves_view)

        def run() -> None:
            self.actions_running += 1
            self._act(verb, ids, call, focus_id)

        # A marked event that is not on screen is never acted on without a question.
        if confirm or len(ids) > 1 or not set(ids).issubset(self.table.rows_by_id):
            self._confirm(verb, ids, subject, details, run)
        else:
            run()

    @work(thread=True, exit_on_error=False, name="triage action", group="triage", description="triage action")
    def _act(self, verb: str, ids: list[int], call: Callable[[list[int]], ActionResult], focus_id: int | None) -> None:
        """Thread worker: one triage call on the ids; a refusal is an outcome (one line), not a worker error."""
        try:
            outcome = Outcome(verb, call(ids), None, focus_id)
        except ActionRefused as exc:
            outcome = Outcome(verb, exc.result, str(exc), focus_id)
        except Exception as exc:
            # Reported here rather than as the worker's error: the line names the verb ("claim action: ...").
            # Screens have no call_from_thread: the app's runs the callback on the UI thread.
            self.app.call_from_thread(self._action_crashed, verb, exc)
            return
        self.post_message(ActionFinished(outcome))

    def _action_crashed(self, verb: str, exc: Exception) -> None:
        self._one_action_done()
        self.dlq.report_error(exc, f"{verb.lower()} action")

    def _one_action_done(self) -> None:
        self.actions_running = max(0, self.actions_running - 1)

    def _focus_after(self, ids: list[int], leaves_view: bool) -> int | None:
        """The highlighted event, or (when it will leave the view) the nearest one below, else above it."""
        table = self.table
        rows = table.window_rows
        row = table.highlighted
        if row is None:
            return None
        gone = set(ids) if leaves_view else set()
        here = table.cursor_row
        for candidate in [*rows[here:], *reversed(rows[:here])]:
            if candidate.id not in gone:
                return candidate.id
        return None

    def on_action_finished(self, message: ActionFinished) -> None:
        self._one_action_done()
        outcome = message.outcome
        result = outcome.result
        if outcome.refusal is not None:
            # A refusal can quote the server's error text, which can quote row data: sanitise it like any DB text.
            self.notify(
                plain(outcome.refusal, limit=500),
                title=outcome.verb.lower(),
                severity="error",
                timeout=10,
                markup=False,
            )
        if result is not None and (outcome.refusal is None or result.done):
            severity: SeverityLevel = "warning" if result.skipped else "information"
            # Skip reasons can quote the server (a trigger's message) and name lock holders: database text.
            line = plain(describe(result), limit=500)
            if any(reason.startswith(HELD_BY_YOU) for reason in result.skipped.values()):
                line += " · T takes back the claims of your other session"
            self.notify(line, title=outcome.verb.lower(), severity=severity, timeout=8, markup=False)
        if result is not None and result.done:
            self.table.unmark(result.done)
        self._reload_at(outcome.focus_id)

    def action_claim(self) -> None:
        if (picked := self._selection("claim")) is not None:
            ids, subject = picked
            ttl = self.dlq.source.operator.lock_ttl_minutes
            self._start("Claim", ids, subject, self.dlq.source.claim, confirm=False, details=[f"lock for {ttl} min"])

    def action_take_back(self) -> None:
        if (picked := self._selection("take_back")) is not None:
            ids, subject = picked
            name = self.dlq.source.operator.name
            self._start(
                "Take back",
                ids,
                subject,
                self.dlq.source.take_back,
                confirm=False,
                details=[f"the claims another session of {name} holds become this session's (audited)"],
            )

    def action_release(self) -> None:
        if (picked := self._selection("release")) is not None:
            ids, subject = picked
            self._start("Release", ids, subject, self.dlq.source.release, confirm=False)

    def action_classify(self) -> None:
        if (picked := self._selection("classify")) is None:
            return
        ids, subject = picked

        def chosen(choice: Choice | None) -> None:
            if choice is None:
                return
            value: str | None = choice.value
            self._start(
                "Classify",
                ids,
                subject,
                lambda i: self.dlq.source.classify(i, value),
                confirm=False,
                details=[f"as {value}" if value else "clear the classification"],
            )

        self.app.push_screen(ChoiceModal(f"Classify {subject} as", CLASSIFY_CHOICES), chosen)

    def action_priority(self) -> None:
        if (picked := self._selection("priority")) is None:
            return
        ids, subject = picked

        def chosen(choice: Choice | None) -> None:
            if choice is None:
                return
            value: int = choice.value
            self._start(
                "Prioritize",
                ids,
                subject,
                lambda i: self.dlq.source.set_priority(i, value),
                confirm=False,
                details=[f"to priority {value} ({priority_label(value)})"],
            )

        self.app.push_screen(ChoiceModal(f"Priority for {subject} (0 = 10)", PRIORITY_CHOICES), chosen)

    def action_resolve(self) -> None:
        if (picked := self._selection("resolve")) is None:
            return
        ids, subject = picked

        def chosen(answer: Resolution | None) -> None:
            if answer is None:
                return
            details = [f"as {RESOLUTION_METHODS[answer.method]} ({answer.method})"]
            if answer.note:
                details.append(f"note: {plain(answer.note, limit=200)}")  # cut: the y/n must stay on screen
            self._start(
                "Resolve",
                ids,
                subject,
                lambda i: self.dlq.source.resolve(i, answer.method, answer.note),
                confirm=True,
                details=details,
                leaves_view=not self.filter.include_resolved,
            )

        self.app.push_screen(ResolveModal(subject), chosen)

    def action_reopen(self) -> None:
        if (picked := self._selection("reopen")) is not None:
            ids, subject = picked
            self._start("Reopen", ids, subject, self.dlq.source.reopen, confirm=False, details=["resolved → pending"])

    def action_requeue(self) -> None:
        if (picked := self._selection("requeue")) is not None:
            ids, subject = picked
            self._start(
                "Requeue",
                ids,
                subject,
                self.dlq.source.requeue,
                confirm=True,
                details=["back to the processor: unresolved, lock cleared, requeue counted in metadata"],
            )

    def action_repair(self) -> None:
        from dlq_tui.ui.screens.repair import open_preview

        open_preview(self)

    def action_redrive(self) -> None:
        from dlq_tui.ui.screens.repair import redrive_selection

        redrive_selection(self)

    def action_export(self) -> None:
        if (picked := self._selection("export")) is None:
            return
        ids, subject = picked
        self._ask_export_path(ids, subject)

    def action_export_matching(self) -> None:
        """ctrl+e: every event of the view and filter as of now, an explicit set counted before anything is written."""
        reason = self.unavailable_reason("export_matching")
        if reason is not None:
            self.notify(reason, severity="warning", markup=False)
            return
        self.actions_running += 1
        self._load_matching_ids(self.filter, self.search.query is not None)

    @work(thread=True, exit_on_error=False, name="export matching", group="triage")
    def _load_matching_ids(self, flt: EventFilter, searching: bool) -> None:
        try:
            ids = (
                search.matching_ids(self.dlq.source, self.search, flt)
                if searching
                else self.dlq.source.matching_ids(flt)
            )
        except Exception:
            # The worker fails and the screen's one worker-error handler shows the error.
            self.app.call_from_thread(self._one_action_done)
            raise
        self.post_message(MatchingIdsLoaded(flt, ids, self.dlq.clock()))

    def on_matching_ids_loaded(self, message: MatchingIdsLoaded) -> None:
        from dlq_tui.ui.reconnect import clock_time

        self._one_action_done()
        n = len(message.ids)
        view = "pending+resolved" if message.flt.include_resolved else "pending"
        described = describe_filter(message.flt)
        if n == 0:
            self.notify(f"nothing to export: no {view} event matches", title="export", markup=False)
            return
        plural = "s" if n != 1 else ""
        what = search.export_subject(self.search) or " matching this filter"
        subject = f"the {n:,} event{plural}{what} as of {clock_time(message.as_of)} UTC"
        body = Text()
        body.append(f"Export {subject}", style="bold")
        body.append(f"\nview: {view}" + (f", filter: {described}" if described else ", no filter"), style="dim")
        body.append("\nevents that match later are not included; events resolved meanwhile still are", style="dim")

        def answered(yes: bool | None) -> None:
            if yes:
                self._ask_export_path(message.ids, subject)

        self.app.push_screen(ConfirmModal(f"Export {n:,} event{plural}?", body, yes_label="Export"), answered)

    def _ask_export_path(self, ids: list[int], subject: str) -> None:
        def write(path: Path, overwrite: bool) -> None:
            self.actions_running += 1
            self._export(ids, path, overwrite)

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if not path.exists():
                write(path, False)
                return
            body = Text(f"{path} already exists.\nReplace it with the {len(ids)} exported events?")
            self.app.push_screen(
                ConfirmModal(f"Overwrite {path.name}?", body, yes_label="Overwrite", danger=True),
                lambda yes: write(path, True) if yes else None,
            )

        self.app.push_screen(ExportModal(subject, default_export_path(self.dlq.clock())), chosen)

    @work(thread=True, exit_on_error=False, name="export", group="triage", description="export")
    def _export(self, ids: list[int], path: Path, overwrite: bool) -> None:
        try:
            message = ExportFinished(path, self.dlq.source.export(ids, path, overwrite=overwrite), None)
        except ActionRefused as exc:
            message = ExportFinished(path, None, str(exc))
        except Exception:
            # Screens have no call_from_thread: the app's runs the callback on the UI thread. The worker then
            # fails, and the screen's one worker-error handler shows the error.
            self.app.call_from_thread(self._one_action_done)
            raise
        self.post_message(message)

    def on_export_finished(self, message: ExportFinished) -> None:
        self._one_action_done()
        if message.refusal is not None:
            self.notify(plain(message.refusal, limit=500), title="export", severity="error", timeout=10, markup=False)
        else:
            n = message.written or 0
            where = plain(str(message.path), limit=300)
            self.notify(f"exported {n} event{'s' if n != 1 else ''} to {where}", title="export", markup=False)
