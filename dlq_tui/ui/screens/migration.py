"""Migration panel: schema version (marker and catalog), the steps still to run, a dry run with its
SQL, and the upgrade itself, whose step events stream live from a thread worker into the step log.

Two upgrades: `u` is atomic (one transaction, exclusive lock for its whole run); `o` is the online
migration (short locks, batched backfill with live progress, resumable, not atomic). `d` / `D` show
the SQL each would run.

After a successful upgrade the app re-checks the schema, and the health and events screens start
working without a restart.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static
from textual.worker import Worker

from dlq_tui.ui.screens.base import DlqScreen
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.source import CURRENT_LINE, MigrationError, StepEvent, explain_connection_error
from dlq_tui.ui.widgets.connection_bar import ConnectionBar
from dlq_tui.ui.widgets.step_log import StepLog, step_title

SQLITE_NOTE = (
    "This is a SQLite database. Schema v7 is PostgreSQL-only (JSONB audit columns, the health view, triggers, "
    "checksums computed by the server): on SQLite the upgrade changes nothing but the schema_state marker, "
    "and the health and events screens need PostgreSQL."
)
SQLITE_ONLINE = "SQLite: nothing to do online (v7 only moves the marker there); u does it"
READ_ONLY_REFUSAL = "read-only session: the upgrade needs write access"
WRITE_ACTIONS = ("upgrade", "online")
ONLINE_ACTIONS = ("online", "online_dry_run")


class PlanLoaded(Message):
    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps


class StepReported(Message):
    def __init__(self, step: StepEvent, dry_run: bool) -> None:
        super().__init__()
        self.step = step
        self.dry_run = dry_run


class MigrationFinished(Message):
    def __init__(self, dry_run: bool, ok: bool, message: str = "", *, online: bool = False) -> None:
        super().__init__()
        self.dry_run = dry_run
        self.ok = ok
        self.message = message
        self.online = online


def _header_line(out: Text, label: str, value: str | Text) -> None:
    """One label a line, its value aligned. The colon and the padding go with the value: spacing at the end
    of a styled run is what text taken from the screen or its SVG pictures loses, and then the labels and
    values ran together ("schema_state says 7Catalog looks like v7")."""
    out.append(label, style="bold dim")
    out.append(":" + " " * max(1, 9 - len(label)))
    if isinstance(value, Text):
        out.append_text(value)
    else:
        out.append(value)
    out.append("\n")


class MigrationScreen(DlqScreen):
    TITLE_TEXT = "migration"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Recheck", id="migration.recheck"),
        Binding("d", "dry_run", "Dry run", id="migration.dry_run", tooltip="Dry run: the SQL `u` would run"),
        Binding(
            "u", "upgrade", "Upgrade", id="migration.upgrade", tooltip="Upgrade to v7 in one transaction (asks first)"
        ),
        Binding(
            "o",
            "online",
            "Online upgrade",
            id="migration.online",
            tooltip="Upgrade online: short locks, writers keep writing, resumable, not atomic (asks first)",
        ),
        Binding(
            "D",
            "online_dry_run",
            "Online dry run",
            id="migration.online_dry_run",
            tooltip="Online dry run: the steps and SQL `o` would run",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self.steps: list[str] = []
        self.sql: list[Text] = []
        self.outcome: str | None = None
        self.online = False  # the current (or last) run is the online migration

    def compose(self) -> ComposeResult:
        yield ConnectionBar("migration")
        with VerticalScroll(id="migration-body"):
            yield Static(id="migration-status")
            yield Static(id="migration-outcome")
            yield StepLog(id="step-log")
            yield Static(id="migration-sql")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "schema_label", lambda _: self._show_status())
        self.action_refresh()

    def busy(self) -> bool:
        return self.running

    # --- status and plan -------------------------------------------------------------------------
    def action_refresh(self) -> None:
        if self.running:
            return
        self.dlq.check_schema()
        self.run_worker(
            self._load_plan, name="migration plan", group="plan", thread=True, exclusive=True, exit_on_error=False
        )

    def _load_plan(self) -> None:
        self.post_message(PlanLoaded(self.dlq.source.plan()))

    def on_plan_loaded(self, message: PlanLoaded) -> None:
        self.data_ok()
        self.steps = message.steps
        if not self.running and self.outcome is None:  # keep the log of a run (or dry run) on screen
            self.query_one(StepLog).show_plan(self.steps)
        self._show_status()
        self.refresh_bindings()

    def _show_status(self) -> None:
        from dlq_tui.text import safe_text

        status = self.dlq.schema_status
        out = Text()
        _header_line(out, "Database", self.dlq.target_label)
        if self.dlq.source.is_sqlite:
            out.append(SQLITE_NOTE + "\n", style="yellow")
            out.append(SQLITE_ONLINE + ": the online upgrade is off.\n", style="yellow")
        access = self.dlq.access_problem
        if access is not None:
            from dlq_tui.ui.widgets.schema_notice import describe_access

            out.append_text(describe_access(access))
        elif status is None:
            out.append("Reading the schema…", style="italic")
        else:
            marker, catalog, revision = status.marker, status.catalog_version, status.alembic_revision
            _header_line(
                out, "Marker", f"schema_state says {marker}" if marker is not None else "no schema_state marker"
            )
            _header_line(out, "Catalog", f"looks like v{catalog}" if catalog else "no dead-letter tables")
            # alembic_version is database text: never markup, never raw control characters.
            _header_line(out, "Alembic", safe_text(str(revision), limit=80) if revision else "not stamped")
            notes = status.notes
            if status.current:
                out.append(CURRENT_LINE, style="bold green")
                out.append("" if notes else ": nothing to do.", style="bold green")
            elif status.usable and not self.steps:
                out.append("Every v7 object is in place, but:", style="bold yellow")
            else:
                out.append(f"{len(self.steps)} step(s) to run. ", style="bold yellow")
                out.append("d", style="bold reverse")
                out.append(" shows the SQL without changing anything, ")
                out.append("u", style="bold reverse")
                out.append(" upgrades (asks first; one transaction, all or nothing).")
                if not self.dlq.source.is_sqlite:
                    out.append("\n")
                    out.append("o", style="bold reverse")
                    out.append(" upgrades online (short locks, writers keep writing, resumable, not atomic), ")
                    out.append("D", style="bold reverse")
                    out.append(" shows its plan.")
            for problem in status.problems[:6]:
                out.append("\n• ", style="yellow")
                out.append_text(safe_text(problem))
            # Data notes: the same lines `dlq-tui check` prints under its verdict.
            for note in notes[:4]:
                out.append("\n")
                out.append_text(safe_text(f"  warning: {note}", limit=500, style="yellow"))
            if notes and status.current and self.steps and not self.dlq.settings.read_only:
                out.append("\n")
                out.append("u", style="bold reverse")
                out.append(" runs that backfill here (asks first), ")
                out.append("d", style="bold reverse")
                out.append(" shows its SQL.")
        if self.dlq.settings.read_only:
            out.append("\nRead-only session: the upgrade is disabled (restart without --read-only).", style="bold")
        self.query_one("#migration-status", Static).update(out)

    # --- dry run and upgrade ----------------------------------------------------------------------
    def unavailable_reason(self, action: str) -> str | None:
        """Why a migration action cannot run now (None: it can). check_action and the palette both use it."""
        if action not in ("dry_run", "upgrade", "refresh", *ONLINE_ACTIONS):
            return None
        if self.running:
            return "a migration is running: wait for it to finish"
        if action in WRITE_ACTIONS and self.dlq.settings.read_only:
            return READ_ONLY_REFUSAL
        if action in ONLINE_ACTIONS and self.dlq.source.is_sqlite:
            return SQLITE_ONLINE
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True if self.unavailable_reason(action) is None else None

    def _refused(self, action: str) -> bool:
        reason = self.unavailable_reason(action)
        if reason is not None:
            self.notify(reason, severity="error" if reason == READ_ONLY_REFUSAL else "warning", markup=False)
        return reason is not None

    def action_dry_run(self) -> None:
        if not self._refused("dry_run"):
            self._start(dry_run=True)

    def action_online_dry_run(self) -> None:
        if not self._refused("online_dry_run"):
            self._start(dry_run=True, online=True)

    def action_upgrade(self) -> None:
        if self._refused("upgrade"):
            return
        body = Text()
        body.append("Upgrade ")
        body.append(self.dlq.target_label, style="bold")
        body.append(" to schema v7?\n\n")
        if self.steps:
            body.append(f"{len(self.steps)} step(s): ")
            body.append(", ".join(step_title(s) for s in self.steps[:6]) + (" …" if len(self.steps) > 6 else ""))
            body.append("\n\n")
        body.append("It runs in one transaction (all or nothing) and takes locks on dead_letter_events while it runs.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._start(dry_run=False)

        self.app.push_screen(ConfirmModal("Run the migration?", body, yes_label="Upgrade", danger=True), answered)

    def action_online(self) -> None:
        if self._refused("online"):
            return
        source = self.dlq.source
        body = Text()
        body.append("Upgrade ")
        body.append(self.dlq.target_label, style="bold")
        body.append(" to schema v7 online?\n\n")
        body.append("What it does: ", style="bold")
        body.append(
            f"short locks only: the columns in one brief ALTER, the backfill in batches of {source.online_batch_size:,}"
            " rows (each its own transaction), indexes built CONCURRENTLY, every lock under a short lock_timeout"
            " with retries. Writers keep writing.\n\n"
        )
        body.append("What it does not guarantee: ", style="bold")
        body.append(
            "it is NOT atomic. If it stops (an error, a lost connection, quitting), the steps already done stay "
            "and the marker stays below 7; the database remains consistent and a rerun (o again, or "
            "dlq-tui --migrate --online) resumes where it stopped. It takes longer than u."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._start(dry_run=False, online=True)

        self.app.push_screen(
            ConfirmModal("Run the online migration?", body, yes_label="Upgrade online", danger=True), answered
        )

    def _start(self, *, dry_run: bool, online: bool = False) -> None:
        if self.running:
            return
        self.running = True
        self.online = online
        self.outcome = None
        self.sql = []
        self.query_one("#migration-sql", Static).update("")
        self.query_one(StepLog).reset()
        kind = "Online dry run" if online and dry_run else "Dry run" if dry_run else None
        busy = f"{kind}: rendering the SQL…" if kind else "Upgrading" + (" online" if online else "")
        self.query_one("#migration-outcome", Static).update(
            Text(busy if kind else busy + "… (steps appear as they run)", style="yellow")
        )
        self.refresh_bindings()
        self.run_worker(
            lambda: self._run(dry_run, online),
            name="migration",
            group="migration",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _run(self, dry_run: bool, online: bool) -> None:
        from sqlalchemy.exc import DBAPIError

        source = self.dlq.source
        if online:
            events = source.online_dry_run() if dry_run else source.online_upgrade()
        else:
            events = source.dry_run() if dry_run else source.upgrade()
        try:
            for step in events:
                self.post_message(StepReported(step, dry_run))
        except MigrationError as exc:
            self.post_message(MigrationFinished(dry_run, False, str(exc), online=online))
            return
        except DBAPIError as exc:
            if not online:
                raise  # the atomic path rolled back: the worker's error handler reports it
            # A lost connection mid-run: the online path is consistent and resumable, say so.
            message = explain_connection_error(exc, source.dsn) or str(exc)
            self.post_message(MigrationFinished(dry_run, False, message, online=online))
            return
        self.post_message(MigrationFinished(dry_run, True, online=online))

    def on_step_reported(self, message: StepReported) -> None:
        from dlq_tui.text import safe_text

        step = message.step
        self.query_one(StepLog).report(step)
        if step.sql:
            block = Text(f"-- {step.number}. ", style="dim")
            block.append_text(safe_text(step.name, style="dim"))
            block.append("\n")
            block.append_text(safe_text(step.sql, limit=20_000, multiline=True, style="cyan"))
            self.sql.append(block)
            self.query_one("#migration-sql", Static).update(Group(Text("SQL", style="bold underline"), *self.sql))

    def on_migration_finished(self, message: MigrationFinished) -> None:
        from dlq_tui.text import plain

        self.running = False
        self.refresh_bindings()
        outcome = self.query_one("#migration-outcome", Static)
        kind = "Online migration" if message.online else "Migration"
        if message.dry_run:
            what = "Online dry run" if message.online else "Dry run"
            outcome.update(Text(f"{what} finished: nothing was changed. The SQL is below.", style="bold green"))
            self.outcome = "dry-run"
        elif message.ok:
            outcome.update(Text(f"✓ {kind} finished: the database is at schema v7.", style="bold green"))
            self.outcome = "done"
            self.notify(f"{kind.lower()} finished: schema v7", severity="information", markup=False)
        elif message.online:
            text = Text("✗ Online migration stopped (not rolled back; steps done stay, o resumes): ", style="bold red")
            text.append(plain(message.message, limit=500))
            outcome.update(text)
            self.outcome = "failed"
        else:
            text = Text("✗ Migration failed and was rolled back: ", style="bold red")
            text.append(plain(message.message, limit=500))
            outcome.update(text)
            self.outcome = "failed"
        self.action_refresh()

    def worker_failed(self, worker: Worker[object]) -> None:
        if worker.group == "migration":
            self.running = False
            self.outcome = "failed"
            self.refresh_bindings()
            self.query_one("#migration-outcome", Static).update(Text("✗ The migration did not run.", style="bold red"))
