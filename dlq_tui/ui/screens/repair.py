"""`f`: the repair preview of one dead letter, and `F`: redrive of the marked events (both from the events screen).

The preview shows the original text, the repaired event, the repair steps and warnings, the checks, and the
raw_events row a redrive would write (or why it cannot). Reading it writes nothing; the repair runs in a thread
worker (json_repair has no timeout). `r` in the preview redrives that one event after a y/n confirmation naming
the target; an ambiguous repair needs a second, explicit confirmation. Bulk redrive first runs a dry run, then
asks with the count and how many are repairable; ambiguous repairs are never redriven in bulk.
Every database-derived text here goes through dlq_tui.text.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from dlq_tui.text import DETAIL_LIMIT, plain, safe_json, safe_text
from dlq_tui.ui.screens.base import READ_ONLY_REFUSAL
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.modal import DlqModal
from dlq_tui.ui.source import RedriveRefused

if TYPE_CHECKING:
    from dlq_tui.ui.app import DlqApp
    from dlq_tui.ui.screens.event_actions import EventActions
    from dlq_tui.ui.source import Destination, RedriveResult, RepairPreview

STATUS_STYLE = {"valid": "bold green", "repaired": "bold cyan", "ambiguous": "bold yellow", "refused": "bold red"}
STATUS_WORDS = {
    "valid": "valid: already a Cowrie event, nothing to repair",
    "repaired": "repaired: mechanical fixes only, every check passes",
    "ambiguous": "ambiguous: every check passes but part of it is a guess",
    "refused": "refused: no trustworthy Cowrie event in it",
}
ORIGINAL_LIMIT = 4_000
EVENT_LIMIT = 8_000


class PreviewLoaded(Message):
    def __init__(self, preview: RepairPreview | None) -> None:
        super().__init__()
        self.preview = preview


class RedriveDone(Message):
    def __init__(self, result: RedriveResult | None, refusal: str | None) -> None:
        super().__init__()
        self.result = result
        self.refusal = refusal


def _section(title: str) -> Text:
    return Text(title, style="bold underline")


def _stamp(dest: Destination) -> str | None:
    value = dest.event_timestamp
    return value.isoformat() if isinstance(value, datetime) else value


def destination_table(dest: Destination) -> Table:
    """The raw_events values, one a row (database text through safe_text)."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("column", style="bold", width=18, no_wrap=True)
    table.add_column("value")
    stamp = _stamp(dest)
    rows: list[tuple[str, Text]] = [
        ("source", safe_text(dest.source, limit=300)),
        ("source_offset", safe_text(dest.source_offset)),
        ("source_inode", Text.assemble(safe_text(dest.source_inode, limit=128), ("  " + dest.inode_basis, "dim"))),
        ("source_generation", Text(str(dest.source_generation))),
        ("session_id", safe_text(dest.session_id, limit=64)),
        ("event_type", safe_text(dest.event_type, limit=128)),
        ("event_timestamp", Text.assemble(safe_text(stamp, limit=64), (f"  as {dest.timestamp_type}", "dim"))),
        ("ingest_id", safe_text(dest.ingest_id, limit=64)),
        ("payload_hash", Text(dest.payload_hash, style="dim")),
        ("risk_score", Text(f"{dest.risk_score}  (as the pipeline's own repair scores it)")),
        ("quarantined", Text(str(dest.quarantined).lower())),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _target_words(dest: Destination) -> str:
    if dest.existing_id is not None:
        return f"links to raw_events row {dest.existing_id}, which already holds this event (no new row)"
    return "a new raw_events row"


class RepairPreviewScreen(DlqModal[bool]):
    """Dismissed with True after a redrive that changed something (the events screen reloads)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "redrive", "Redrive…", id="repair.redrive"),
        Binding("escape,q,f", "close", "Close", id="repair.close"),
    ]
    DEFAULT_CSS = """
    RepairPreviewScreen { align: center middle; }
    RepairPreviewScreen > Vertical { width: 96%; height: 94%; border: round $accent; background: $surface; }
    RepairPreviewScreen #repair-title { padding: 0 1; text-style: bold; }
    RepairPreviewScreen #repair-verdict { padding: 0 1; margin-bottom: 1; }
    RepairPreviewScreen VerticalScroll { padding: 0 1; }
    RepairPreviewScreen .repair-block { margin-bottom: 1; }
    """

    def __init__(self, event_id: int) -> None:
        super().__init__()
        self.event_id = event_id
        self.preview: RepairPreview | None = None
        self.reading = True
        self.redriving = False

    @property
    def dlq(self) -> DlqApp:
        from typing import cast

        return cast("DlqApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Repair preview · event {self.event_id}"), id="repair-title")
            yield Static(Text("repairing…", style="yellow"), id="repair-verdict")
            with VerticalScroll(id="repair-body"):
                for part in ("original", "event", "changes", "checks", "target"):
                    yield Static(id=f"repair-{part}", classes="repair-block")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        self.run_worker(self._load, name="repair preview", group="repair", thread=True, exit_on_error=False)

    def busy(self) -> bool:
        return self.reading or self.redriving

    def _load(self) -> None:
        self.post_message(PreviewLoaded(self.dlq.source.repair_preview(self.event_id)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.reading = self.redriving = False
            self.dlq.report_error(event.worker.error, event.worker.name)
            self.query_one("#repair-verdict", Static).update(Text("could not read the event", style="bold red"))

    # --- drawing -----------------------------------------------------------------------------------------------
    def on_preview_loaded(self, message: PreviewLoaded) -> None:
        self.reading = False
        self.dlq.mark_good()
        self.preview = message.preview
        if message.preview is None:
            self.query_one("#repair-verdict", Static).update(Text("no such event (gone?)", style="bold red"))
            return
        self._draw(message.preview)

    def _draw(self, view: RepairPreview) -> None:
        result = view.result
        verdict = Text("dead letter: ", style="dim")
        verdict.append_text(safe_text(view.reason, limit=60, style="bold"))
        verdict.append(" · ", style="dim")
        verdict.append_text(safe_text(view.source, limit=200))
        verdict.append(f" · offset {plain(view.source_offset)}\n", style="dim")
        verdict.append(STATUS_WORDS.get(result.status, result.status), style=STATUS_STYLE.get(result.status, ""))
        if view.blocked is not None:
            verdict.append("\nredrive: ", style="bold")
            verdict.append_text(safe_text(view.blocked, limit=400, style="red"))
        elif view.needs_decision:
            verdict.append("\nredrive: r, then two confirmations (a person decides about the guess)", style="yellow")
        else:
            verdict.append("\nredrive: r (asks first)", style="green")
        self.query_one("#repair-verdict", Static).update(verdict)

        original = Text.assemble(_section("Original text"), "\n")
        if result.original_text:
            original.append_text(safe_text(result.original_text, limit=ORIGINAL_LIMIT, multiline=True))
        else:
            original.append("(the payload as stored)\n", style="dim")
            total = view.payload_bytes if view.payload_cut else None
            original.append_text(safe_json(view.payload_text, limit=ORIGINAL_LIMIT, total_bytes=total))
        self.query_one("#repair-original", Static).update(original)

        event = Text.assemble(_section("Repaired event"), "\n")
        if result.event is not None:
            event.append_text(safe_json(result.event, limit=EVENT_LIMIT))
        elif result.parts:
            event.append(f"{len(result.parts)} objects in this dead letter, each repaired on its own:", style="dim")
            for n, part in enumerate(result.parts, start=1):
                event.append(f"\n{n}. {part.status}", style=STATUS_STYLE.get(part.status, ""))
                if part.event is not None:
                    event.append(" ")
                    event.append_text(safe_json(part.event, limit=600, multiline=False))
                elif part.reason:
                    event.append(" ")
                    event.append_text(safe_text(part.reason, limit=300))
        else:
            event.append("none: ", style="dim")
            event.append_text(safe_text(result.reason, limit=DETAIL_LIMIT, style="red"))
        self.query_one("#repair-event", Static).update(event)

        changes = Text.assemble(_section("What changed"))
        if not result.steps and not result.warnings:
            changes.append("\nnothing" + (": the text already was the event" if result.event is not None else ""))
        for step in result.steps:
            changes.append("\n• ")
            changes.append_text(safe_text(step, limit=400))
        for warning in result.warnings:
            changes.append("\n⚠ ", style="yellow")
            changes.append_text(safe_text(warning, limit=400, style="yellow"))
        self.query_one("#repair-changes", Static).update(changes)

        checks = Text.assemble(_section("Checks"))
        if not result.checks:
            checks.append("\nnot checked: there is no candidate event", style="dim")
        for check in result.checks:
            checks.append("\n✓ " if check.ok else "\n✗ ", style="bold green" if check.ok else "bold red")
            checks.append(f"{check.name}: ", style="bold")
            checks.append_text(safe_text(check.detail, limit=300))
        self.query_one("#repair-checks", Static).update(checks)

        target = self.query_one("#repair-target", Static)
        dest = view.destination
        if dest is None:
            words = Text.assemble(_section("Where it would go"), "\n")
            words.append_text(safe_text(view.blocked or "nowhere: there is no event to write", limit=400))
            target.update(words)
        else:
            head = Text.assemble(_section("Where it would go"), "\n", (_target_words(dest), "bold"))
            if dest.taken_by is not None:
                head.append(f"\nraw_events row {dest.taken_by} already holds another event for this line", style="red")
            head.append(f"\ntable key: {view.target.unique_key}" if view.target.unique_key else "", style="dim")
            table = destination_table(dest)
            from rich.console import Group

            target.update(Group(head, table))

    # --- actions -----------------------------------------------------------------------------------------------
    def action_close(self) -> None:
        self.dismiss(False)

    def action_redrive(self) -> None:
        view = self.preview
        if view is None or self.redriving:
            return
        if self.dlq.settings.read_only:
            self.notify(READ_ONLY_REFUSAL, severity="error", markup=False)
            return
        if view.blocked is not None or view.destination is None:
            self.notify(plain(view.blocked or "nothing to redrive", limit=400), severity="warning", markup=False)
            return
        dest = view.destination
        body = Text()
        body.append(f"Redrive event {view.event_id} into raw_events", style="bold")
        body.append(f"\n{_target_words(dest)}:")
        body.append("\nsource ")
        body.append_text(safe_text(dest.source, limit=200))
        body.append(f"\noffset {plain(dest.source_offset)} · inode ")
        body.append_text(safe_text(dest.source_inode, limit=60))
        body.append("\n")
        body.append_text(safe_text(dest.event_type, limit=80))
        body.append(" · session ")
        body.append_text(safe_text(dest.session_id, limit=20))
        body.append("\nat ")
        body.append_text(safe_text(_stamp(dest), limit=40))
        body.append(
            f"\nthen the dead letter is resolved as operator_redriven (repair: {view.result.status})", style="dim"
        )

        def first(yes: bool | None) -> None:
            if not yes:
                return
            if view.needs_decision:
                self._second_confirmation(view)
            else:
                self._run(view, ambiguous_ok=False)

        self.app.push_screen(
            ConfirmModal(f"Redrive event {view.event_id}?", body, yes_label="Redrive", danger=True), first
        )

    def _second_confirmation(self, view: RepairPreview) -> None:
        body = Text()
        body.append("This repair is AMBIGUOUS: part of the event is a guess.", style="bold yellow")
        for warning in view.result.warnings:
            body.append("\n⚠ ", style="yellow")
            body.append_text(safe_text(warning, limit=300))
        body.append("\n\nraw_events will hold exactly the repaired event shown in the preview, guess included.")
        body.append(f"\nThe audit entry records that {self.dlq.source.operator.name} accepted it.")
        self.app.push_screen(
            ConfirmModal("Redrive an ambiguous repair?", body, yes_label="Redrive anyway", danger=True),
            lambda yes: self._run(view, ambiguous_ok=True) if yes else None,
        )

    def _run(self, view: RepairPreview, *, ambiguous_ok: bool) -> None:
        assert view.destination is not None
        accept = {view.event_id: view.destination.payload_hash} if ambiguous_ok else None
        self.redriving = True
        self.run_worker(
            lambda: self._redrive(view.event_id, accept),
            name="redrive",
            group="redrive",
            thread=True,
            exit_on_error=False,
        )

    def _redrive(self, event_id: int, accept: dict[int, str] | None) -> None:
        try:
            message = RedriveDone(self.dlq.source.redrive([event_id], accept), None)
        except RedriveRefused as exc:
            message = RedriveDone(None, str(exc))
        self.post_message(message)

    def on_redrive_done(self, message: RedriveDone) -> None:
        self.redriving = False
        if message.refusal is not None:
            self.notify(plain(message.refusal, limit=500), title="redrive", severity="error", markup=False, timeout=10)
            return
        result = message.result
        assert result is not None
        self.notify(
            one_event_line(result, self.event_id),
            title="redrive",
            markup=False,
            timeout=8,
            severity="information" if result.done else "warning",
        )
        self.dismiss(bool(result.done))


def one_event_line(result: RedriveResult, event_id: int) -> str:
    if event_id in result.done:
        raw = result.raw_ids.get(event_id)
        there = " (it was already there)" if event_id in result.existing else ""
        return f"event {event_id} redriven into raw_events row {raw}{there}"
    reason = result.failed.get(event_id) or result.skipped.get(event_id) or "not redriven"
    detail = result.details.get(event_id)
    return plain(f"event {event_id} not redriven: {reason}" + (f": {detail}" if detail else ""), limit=500)


# --- entry points for the events screen --------------------------------------------------------------------------


def open_preview(screen: EventActions) -> None:
    """`f`: the repair preview of the highlighted event; after a redrive the view reloads where it was."""
    reason = screen.unavailable_reason("repair")
    if reason is not None:
        screen.notify(reason, severity="warning", markup=False)
        return
    row = screen.table.highlighted
    if row is None:
        screen.notify("no event selected", severity="warning", markup=False)
        return
    focus_id = screen._focus_after([row.id], not screen.filter.include_resolved)

    def closed(changed: bool | None) -> None:
        if changed:
            screen.table.unmark([row.id])
            screen._reload_at(focus_id)

    screen.app.push_screen(RepairPreviewScreen(row.id), closed)


def redrive_selection(screen: EventActions) -> None:
    """`F`: a dry run over the marked (else highlighted) events, then a confirmation with the counts, then redrive."""
    picked = screen._selection("redrive")
    if picked is None:
        return
    ids, subject = picked
    screen.actions_running += 1
    screen.run_worker(
        lambda: _plan(screen, ids, subject), name="redrive plan", group="triage", thread=True, exit_on_error=False
    )


def _plan(screen: EventActions, ids: list[int], subject: str) -> None:
    try:
        plan: RedriveResult | None = screen.dlq.source.redrive_plan(ids)
        refusal = None
    except RedriveRefused as exc:
        plan, refusal = None, str(exc)
    except Exception:
        screen.app.call_from_thread(screen._one_action_done)
        raise
    screen.app.call_from_thread(_planned, screen, ids, subject, plan, refusal)


def plan_lines(plan: RedriveResult) -> list[str]:
    """What the confirmation says about the set: how many go, how many stay and why."""
    from collections import Counter

    go = len(plan.done)
    already = len(plan.existing)
    lines = [f"{go} repairable (valid or repaired) → raw_events" + (f" ({already} already there)" if already else "")]
    if plan.skipped:
        reasons = Counter(r.split(" until ", 1)[0] for r in plan.skipped.values())
        lines.append(f"{len(plan.skipped)} stay in the queue, untouched:")
        lines += [f"  {n} {reason}" for reason, n in reasons.most_common()]
    if any(status == "ambiguous" for status in plan.statuses.values()):
        lines.append("ambiguous repairs are never redriven in bulk: use f")
    return lines


def _planned(
    screen: EventActions, ids: list[int], subject: str, plan: RedriveResult | None, refusal: str | None
) -> None:
    screen._one_action_done()
    if refusal is not None or plan is None:
        screen.notify(plain(refusal, limit=500), title="redrive", severity="error", markup=False, timeout=10)
        return
    if not plan.done:
        line = "nothing to redrive: " + "; ".join(x.strip() for x in plan_lines(plan)[1:])
        screen.notify(plain(line, limit=500), title="redrive", severity="warning", markup=False, timeout=10)
        return
    highlighted = screen.table.highlighted
    screen._start(
        "Redrive",
        ids,
        subject,
        screen.dlq.source.redrive,
        confirm=True,
        details=plan_lines(plan),
        # Only redriven events leave the pending list: the cursor moves on only when the highlighted one does.
        leaves_view=not screen.filter.include_resolved and highlighted is not None and highlighted.id in plan.done,
    )
