"""The dlq-tui App: three screens (health, events, migration) as modes, global keys, connection state.

Screens do their database work in thread workers (via DataSource) and report failures through
`report_error`, so an expected fault is a notification and a status in the header, never a traceback.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from dlq_tui.config import Overrides, Settings
from dlq_tui.db.dsn import describe_target
from dlq_tui.ui.faults import describe_fault
from dlq_tui.ui.messages import SchemaChecked
from dlq_tui.ui.palette import DlqCommands
from dlq_tui.ui.profile_switch import ProfileSwitching
from dlq_tui.ui.reconnect import Backoff
from dlq_tui.ui.screens.choice import Choice, ChoiceModal
from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.screens.help import HelpScreen
from dlq_tui.ui.screens.migration import MigrationScreen
from dlq_tui.ui.screens.sources import SourcesScreen
from dlq_tui.ui.source import AccessProblem, DataSource, MigrationRun, SchemaStatus

if TYPE_CHECKING:
    from dlq_tui.profiles import ConfigFile

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Reconnected(Message):
    """A reconnect attempt got an answer from the server."""


class HeartbeatFailed(Message):
    """The idle-time ping found the link down (no screen was polling to notice)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class ReconnectFailed(Message):
    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class QuitPrompt(ChoiceModal):
    """A question asked on the way out (the app dismisses it itself when what it asks about is over)."""

    DEFAULT_CSS = "QuitPrompt > Vertical { width: 80; }"

    def on_mount(self) -> None:
        super().on_mount()
        # "esc cancels" would read as "cancel the migration" here.
        self.query_one("#choice-hint", Static).update(Text("press a key, or ↑ ↓ and enter · esc stays in dlq-tui"))


class QuitClaimsCounted(Message):
    """The claims this session still holds (None: they could not be read, see `error`)."""

    def __init__(self, ids: list[int] | None, error: str | None = None) -> None:
        super().__init__()
        self.ids = ids
        self.error = error


class QuitClaimsReleased(Message):
    def __init__(self, released: int, refusal: str | None) -> None:
        super().__init__()
        self.released = released
        self.refusal = refusal


def migration_question(run: MigrationRun, now: float) -> str:
    """The question for a MigrationRun: what runs (which step, for how long), and what waiting or cancelling does."""
    from dlq_tui.text import plain

    step = run.step
    where = f"step {step.number}: {plain(step.title, limit=60)}, " if step is not None else ""
    what = "The online migration" if run.online else "The migration"
    nature = (
        "It is not atomic: stopping it keeps what it did (o resumes later); waiting lets it finish."
        if run.online
        else "It runs in one transaction on the server: cancelling rolls everything back, waiting lets it commit."
    )
    return f"{what} is running ({where}{now - run.started:.0f} s so far). Quit anyway?\n{nature}"


def migration_choices(run: MigrationRun) -> list[Choice]:
    stop = (
        "Stop it now (what it did stays; o resumes later), then quit"
        if run.online
        else "Cancel it now: roll back, nothing changes, then quit"
    )
    return [
        Choice("w", "Wait for it to finish, then quit (its outcome is printed)", "wait"),
        Choice("c", stop, "cancel"),
        Choice("s", "Stay in dlq-tui (the migration goes on)", "stay"),
    ]


def migration_ending(run: MigrationRun | None) -> str:
    """One line for the terminal after quitting: how the migration the quit waited for really ended."""
    if run is None:
        return ""
    kind = "online migration" if run.online else "migration"
    if run.finished and not run.failed:
        late = " (the cancel came too late: it had committed)" if run.cancel_requested else ""
        return f"{kind} finished: the database is at schema v7{late}"
    if run.cancel_requested:
        return (
            "online migration stopped at your request: what it did stays; rerun it to resume"
            if run.online
            else "migration cancelled at your request: rolled back, nothing changed"
        )
    return f"{kind} failed: {run.error or 'see the step log'}"


class DlqApp(ProfileSwitching, App[int]):
    CSS_PATH = "dlq_tui.tcss"
    TITLE = "dlq-tui"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        "health": HealthScreen,
        "events": EventsScreen,
        "migration": MigrationScreen,
        "sources": SourcesScreen,
    }
    DEFAULT_MODE = "health"
    COMMANDS = App.COMMANDS | {DlqCommands}
    # Wide terminals get the detail pane beside the table, narrow ones below it (see the tcss).
    # App declares it `ClassVar[...] | None`, which type checkers read as an instance variable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "go('health')", "Health", id="go.health"),
        Binding("e", "go('events')", "Events", id="go.events"),
        Binding("m", "go('migration')", "Migration", id="go.migration"),
        # Not in the footer (it keeps `?` and `q` in 100 columns); in help and the palette.
        Binding(
            "S",
            "go('sources')",
            "Sources",
            key_display="S",
            tooltip="Sources: pending by source file",
            id="go.sources",
            show=False,
        ),
        Binding(
            "P",
            "switch_profile",
            "Profile",
            key_display="P",
            tooltip="Switch profile: another database of the config file",
            id="profile.switch",
            show=False,
        ),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    # None while the first schema check runs; True at v7; False when the migration panel is needed.
    schema_ready: reactive[bool | None] = reactive(None)
    schema_label: reactive[str] = reactive("schema ?")
    # "connecting" | "connected" | "disconnected" (then reconnect attempts run with backoff until one answers).
    connection_state: reactive[str] = reactive("connecting")
    # When the app last read data successfully (app clock): the top bar shows it while disconnected.
    last_good_at: reactive[datetime | None] = reactive(None)
    # Bumped after every schema check, so notices re-read a status that changed while schema_ready did not.
    schema_generation: reactive[int] = reactive(0)

    def __init__(
        self,
        settings: Settings,
        *,
        source: DataSource | None = None,
        clock: Clock | None = None,
        target_label: str | None = None,
        config: ConfigFile | None = None,
        overrides: Overrides | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.config = config  # the config file's profiles, for switching (None: no config file)
        self.overrides = overrides  # the command line's app flags: they hold for every profile switched to
        if settings.keys:
            self.set_keymap(dict(settings.keys))
        self.source = source or DataSource(settings)
        # A frozen clock makes ages and "updated … ago" stable in snapshot tests.
        self.frozen_clock = clock is not None
        self.clock: Clock = clock or utc_now
        self.target_label = target_label or describe_target(settings.dsn, embedded=settings.embedded).label()
        self.schema_status: SchemaStatus | None = None
        self.access_problem: AccessProblem | None = None  # the role may not read the tables
        self.backoff = Backoff()
        self.disconnect_line = ""  # the last reason the link is down (one safe line)
        self.reconnect_attempts = 0
        self._retry_timer: Timer | None = None
        self._retry_due: float | None = None  # loop time of the next attempt
        self._last_ok_mono = 0.0  # monotonic time of the last success (data or heartbeat)
        self._quitting = False  # a quit is on its way (asking, waiting for a migration, releasing)
        self._quit_wait: Timer | None = None  # polls for the end of the migration the quit waits for
        self._migration_prompt: QuitPrompt | None = None  # the open "a migration is running" question
        self.exit_lines: list[str] = []  # printed on the terminal after the screen is gone
        self.exiting = False  # set by exit(): late results must not touch screens being taken down

    # --- lifecycle ---------------------------------------------------------------------------------
    def exit(self, result: int | None = None, return_code: int = 0, message: RenderableType | None = None) -> None:
        # A quit while a screen mounts (q right after e or m): workers started by that screen still report.
        # The app's reactives they would set have watchers on every screen, which run at once, also on a
        # screen whose widgets are already removed (a NoMatches crash, exit 1). From now on nothing is set.
        self.exiting = True
        super().exit(result, return_code, message)

    def on_mount(self) -> None:
        self.source.busy_listener = self._database_busy
        self.check_schema()
        # The events screen does not poll: without this an outage would show only at the next key press.
        self.set_interval(max(2.0, self.settings.refresh_seconds), self._heartbeat)
        if not self.is_headless:
            import asyncio

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._hang_up, sig)

    def _database_busy(self, line: str) -> None:
        """From a worker thread: a SQLite write waits for another connection's lock and retries."""
        if not self.exiting:
            self.call_from_thread(self.notify, line, title="database", severity="warning", timeout=10, markup=False)

    def on_unmount(self) -> None:
        self.source.close()

    def check_schema(self) -> None:
        self.run_worker(self._check_schema, thread=True, exclusive=True, group="schema", exit_on_error=False)

    def _check_schema(self) -> None:
        try:
            # Privileges first: the schema check itself reads the events table, and a role without SELECT
            # deserves "grant SELECT on ..." rather than a bare "permission denied".
            access = self.source.access_problem()
            status = None if access is not None else self.source.schema_status()
        except Exception as exc:
            if not get_current_worker().is_cancelled:
                self.call_from_thread(self.report_error, exc, "schema check")
            return
        if not get_current_worker().is_cancelled:
            self.post_message(SchemaChecked(status, access))

    def on_schema_checked(self, message: SchemaChecked) -> None:
        if self.exiting:
            return
        status = message.status
        self.schema_status = status
        self.access_problem = message.access
        self.mark_good()
        self.schema_generation += 1
        if self.access_problem is not None:
            self.schema_label = "no read access"
            self.schema_ready = False
            return
        assert status is not None  # the check reads the status whenever the role may read
        usable = status.usable
        marker, catalog = status.marker, status.catalog_version
        version = catalog if usable else (marker if marker is not None else catalog)
        if usable and status.dialect == "sqlite":
            self.schema_label = f"sqlite legacy, marker {marker if marker is not None else 0}"
        elif usable:
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

    # --- quitting: a running migration and held claims are never left behind without asking -------------
    async def action_quit(self) -> None:
        """q / ctrl+q. Asks first while a migration runs (wait, cancel or stay) and when this session holds claims
        (release, keep or stay); otherwise quits at once."""
        if self._quit_wait is not None and self._migration_prompt is None:
            self._ask_about_migration()  # waiting for a migration: q again asks again (e.g. to cancel it now)
            return
        if self._quitting:
            return
        self._quitting = True
        self._ask_about_migration()

    def _stay(self) -> None:
        self._quitting = False
        if self._quit_wait is not None:
            self._quit_wait.stop()
            self._quit_wait = None

    def _ask_about_migration(self) -> None:
        run = self.source.migration
        if run is None:
            self._ask_about_claims()
            return
        modal = QuitPrompt(migration_question(run, self._loop_time()), migration_choices(run))

        def answered(choice: Choice | None) -> None:
            if modal is not self._migration_prompt:
                return  # dismissed by the app: the migration ended while the question was open
            self._migration_prompt = None
            if choice is None or choice.value == "stay":
                self._stay()
                return
            if choice.value == "cancel":
                self.source.cancel_migration()
            verb = "is being cancelled" if choice.value == "cancel" else "finishes"
            self.notify(f"dlq-tui quits when the {run.kind} {verb}", title="quit", timeout=10, markup=False)
            if self._quit_wait is None:
                self._quit_wait = self.set_interval(0.2, self._migration_over_yet)

        self._migration_prompt = modal
        self.push_screen(modal, answered)

    def _migration_over_yet(self) -> None:
        if self.source.migration is not None:
            return
        if self._quit_wait is not None:
            self._quit_wait.stop()
            self._quit_wait = None
        prompt, self._migration_prompt = self._migration_prompt, None
        if prompt is not None:
            prompt.dismiss(None)  # asked again while waiting: the question is moot now
        self.exit_lines.append(migration_ending(self.source.last_migration))
        self._ask_about_claims()

    def _ask_about_claims(self) -> None:
        if self.settings.read_only or not self.source.claimed:
            self._quit_now()
            return
        self.run_worker(self._count_claims, name="claims at quit", group="quit", thread=True, exit_on_error=False)

    def _count_claims(self) -> None:
        try:
            ids = self.source.held_claims()
        except Exception as exc:
            self.post_message(QuitClaimsCounted(None, describe_fault(exc, self.settings.dsn, "quit").line))
            return
        self.post_message(QuitClaimsCounted(ids))

    def on_quit_claims_counted(self, message: QuitClaimsCounted) -> None:
        from dlq_tui.db.triage import name_events
        from dlq_tui.text import plain

        ttl = self.settings.lock_ttl_minutes
        later = f"they expire by themselves within {ttl} min, and in a new session T takes them back"
        if message.ids is None:
            body = Text(f"The claims this session holds could not be read: {plain(message.error or '', limit=300)}")
            body.append(f"\nIf it holds any, {later}.")
            self.push_screen(
                ConfirmModal("Quit without releasing your claims?", body, yes_label="Quit"),
                lambda yes: self._quit_now() if yes else self._stay(),
            )
            return
        ids = message.ids
        if not ids:
            self._quit_now()
            return
        n = len(ids)
        plural = "s" if n != 1 else ""
        choices = [
            Choice("r", f"Release {'them' if n != 1 else 'it'} and quit", "release"),
            Choice("k", f"Keep {'them' if n != 1 else 'it'} and quit ({later})", "keep"),
            Choice("s", "Stay in dlq-tui", None),
        ]

        def answered(choice: Choice | None) -> None:
            if choice is None or choice.value is None:
                self._stay()
            elif choice.value == "keep":
                self.exit_lines.append(f"kept {n} claim{plural}: {later}")
                self._quit_now()
            else:
                self._release_at_quit(ids)

        title = f"You hold {n} claim{plural} ({name_events(ids)}): release {'them' if n != 1 else 'it'}?"
        self.push_screen(QuitPrompt(title, choices), answered)

    @work(thread=True, exit_on_error=False, name="release at quit", group="quit", description="release at quit")
    def _release_at_quit(self, ids: list[int]) -> None:
        from dlq_tui.db.triage import ActionRefused

        try:
            result = self.source.release(ids)
        except ActionRefused as exc:
            self.post_message(QuitClaimsReleased(len(exc.result.done) if exc.result else 0, str(exc)))
            return
        except Exception as exc:  # anything else: still one line and the choice to quit, never a traceback
            self.post_message(QuitClaimsReleased(0, describe_fault(exc, self.settings.dsn, "release").line))
            return
        self.post_message(QuitClaimsReleased(len(result.done), None))

    def on_quit_claims_released(self, message: QuitClaimsReleased) -> None:
        from dlq_tui.text import plain

        plural = "s" if message.released != 1 else ""
        if message.refusal is None:
            self.exit_lines.append(f"released {message.released} claim{plural}")
            self._quit_now()
            return
        body = Text(f"Releasing your claims failed: {plain(message.refusal, limit=300)}")
        ttl = self.settings.lock_ttl_minutes
        body.append(f"\nThey expire by themselves within {ttl} min; in a new session T takes them back.")
        self.push_screen(
            ConfirmModal("Quit anyway?", body, yes_label="Quit"),
            lambda yes: self._quit_now() if yes else self._stay(),
        )

    def _quit_now(self) -> None:
        lines = [f"dlq-tui: {line}" for line in self.exit_lines if line]
        self.exit(message=Text("\n".join(lines)) if lines else None)

    def _hang_up(self, sig: int) -> None:
        """SIGHUP (the SSH connection dropped) or SIGTERM: nobody can answer a question. Best effort, bounded:
        cancel a running migration (the atomic one rolls back), release this session's claims, then exit."""
        import threading

        if self.source.migration is not None:
            self.source.cancel_migration()

        def release() -> None:
            with suppress(Exception):
                ids = self.source.held_claims()
                if ids:
                    self.source.release(ids)

        worker = threading.Thread(target=release, name="dlq-tui-hangup", daemon=True)
        worker.start()
        worker.join(timeout=5.0)
        self.exit(return_code=128 + sig)  # what the shell reports for a death by that signal

    # --- faults ------------------------------------------------------------------------------------
    def report_error(self, exc: BaseException, context: str = "") -> None:
        """One place for failed database work: a clear line, the password masked, no traceback.

        A lost link turns into the "disconnected, retrying" state (one notification, not one per failed
        poll); a refused triage action is shown as an error in triage's own words.
        """
        from dlq_tui.text import plain

        if self.exiting:
            return  # the session is ending: a late failure is nobody's news
        fault = describe_fault(exc, self.settings.dsn, context)
        if fault.lost_connection:
            first = self.connection_lost(fault.line)
            if not first and fault.kind == "connection":
                return  # already disconnected and retrying: the top bar says so
        title = {"refused": "not done", "permission": "permission denied"}.get(fault.kind, "database")
        self.notify(plain(fault.line, limit=500), title=title, severity="error", timeout=8, markup=False)

    # --- the link: lost, retried with backoff, back -------------------------------------------------
    def mark_good(self, at: datetime | None = None) -> None:
        """A query just succeeded: remember when, and the link is up."""
        if self.exiting:
            return
        self.last_good_at = at or self.clock()
        self._last_ok_mono = self._loop_time()
        if self.connection_state != "connected":
            self.connection_state = "connected"

    def connection_lost(self, line: str) -> bool:
        """Enter "disconnected" and schedule reconnects; False when that was already the state."""
        if self.exiting:
            return False
        self.disconnect_line = line
        if self.connection_state == "disconnected":
            return False
        self.connection_state = "disconnected"
        # Pooled connections point at a server that is gone: drop them so every new call dials anew.
        self.source.reset_pool()
        self._schedule_retry()
        return True

    def retry_in(self) -> float | None:
        """Seconds until the next reconnect attempt (None while one is running)."""
        if self._retry_due is None:
            return None
        return max(0.0, self._retry_due - self._loop_time())

    def retry_now(self) -> None:
        """`r` while disconnected: try at once instead of waiting out the backoff."""
        if self.connection_state == "disconnected" and self._retry_due is not None:
            self._cancel_retry()
            self._attempt_reconnect()

    def _loop_time(self) -> float:
        import time

        return time.monotonic()

    def _schedule_retry(self) -> None:
        self._cancel_retry()
        delay = self.backoff.next_delay()
        self._retry_due = self._loop_time() + delay
        self._retry_timer = self.set_timer(delay, self._attempt_reconnect)

    def _cancel_retry(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.stop()
        self._retry_timer = None
        self._retry_due = None

    def _attempt_reconnect(self) -> None:
        self._retry_timer = None
        self._retry_due = None
        self.reconnect_attempts += 1
        self.run_worker(self._ping, name="reconnect", group="reconnect", thread=True, exclusive=True)

    def _heartbeat(self) -> None:
        idle = self._loop_time() - self._last_ok_mono
        if self.connection_state == "connected" and idle >= self.settings.refresh_seconds:
            self.run_worker(self._beat, name="heartbeat", group="heartbeat", thread=True, exclusive=True)

    def _beat(self) -> None:
        try:
            self.source.ping()
        except Exception as exc:
            self.post_message(HeartbeatFailed(exc))
            return
        self._last_ok_mono = self._loop_time()  # alive; last_good_at stays the last real read

    def on_heartbeat_failed(self, message: HeartbeatFailed) -> None:
        self.report_error(message.error, "heartbeat")

    def _ping(self) -> None:
        try:
            self.source.ping()
        except Exception as exc:  # every failure means "not yet": say why in the bar, try again later
            fault = describe_fault(exc, self.settings.dsn, "reconnect")
            self.post_message(ReconnectFailed(fault.line))
            return
        self.post_message(Reconnected())

    def on_reconnected(self, _message: Reconnected) -> None:
        # The ping is not data: last_good_at stays the time of the last real read until a screen reads.
        if self.connection_state == "disconnected" and not self.exiting:
            self.connection_state = "connected"

    def on_reconnect_failed(self, message: ReconnectFailed) -> None:
        if self.connection_state == "disconnected":
            self.disconnect_line = message.line
            self.source.reset_pool()
            self._schedule_retry()

    def watch_connection_state(self, old: str, new: str) -> None:
        if new == "connected" and old == "disconnected":
            self._cancel_retry()
            self.backoff.reset()
            self.notify("connection to the database is back", title="database", timeout=4, markup=False)
            # The server may have come back restored from a backup: read the schema again. Screens watch
            # connection_state and refresh what they show (health at once, events on the next action).
            self.check_schema()
