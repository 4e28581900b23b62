"""The command palette provider: every action of every screen, reachable by name (ctrl+p)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteCommand:
    title: str
    help: str
    mode: str | None  # the screen the action lives on (switched to first), None for app actions
    action: str  # run on that screen (or on the app when mode is None)


PALETTE: tuple[PaletteCommand, ...] = (
    PaletteCommand("Go to health", "Health figures, breakers, runs, analysis (h)", None, "go('health')"),
    PaletteCommand("Go to events", "Pending events, keyset paged (e)", None, "go('events')"),
    PaletteCommand("Go to migration", "Schema version, plan, dry run, upgrade (m)", None, "go('migration')"),
    PaletteCommand("Go to sources", "Pending events by source file: count, reasons, ages (S)", None, "go('sources')"),
    PaletteCommand("Refresh health", "Read the health figures now (r)", "health", "refresh"),
    PaletteCommand(
        "Toggle all findings", "Every health finding, or only the two worst (f)", "health", "toggle_findings"
    ),
    PaletteCommand("Reload events", "Reload the events from the top (r)", "events", "refresh"),
    PaletteCommand("Filter events", "Priority, classification, reason, text, locks (/)", "events", "filter"),
    PaletteCommand("Clear event filter", "Show every pending event again (backspace)", "events", "clear_filter"),
    PaletteCommand("Jump to event id", "Open the page that starts at an event id (g)", "events", "jump"),
    PaletteCommand(
        "Toggle resolved events", "Show resolved events too, or pending only (v)", "events", "toggle_resolved"
    ),
    PaletteCommand(
        "Sort events", "By priority, newest first, most retries first: the next order (s)", "events", "cycle_order"
    ),
    PaletteCommand("Toggle detail pane", "Show or hide the event detail (d)", "events", "toggle_detail"),
    PaletteCommand("Next payload page", "Page on through a long payload (])", "events", "payload_page(1)"),
    PaletteCommand("Previous payload page", "Page back through a long payload ([)", "events", "payload_page(-1)"),
    PaletteCommand("Mark event", "Mark or unmark the highlighted event (space)", "events", "toggle_mark"),
    PaletteCommand("Mark all in view", "Mark every event in view, or unmark them (*)", "events", "mark_all"),
    PaletteCommand("Unmark all", "Clear every mark, in view or not (-)", "events", "clear_marks"),
    PaletteCommand(
        "Claim events", "Take the processing lock of the marked or highlighted events (c)", "events", "claim"
    ),
    PaletteCommand(
        "Release events", "Give back your lock (or an expired one) on the selected events (u)", "events", "release"
    ),
    PaletteCommand("Classify events", "malicious, corrupted, format_error, or clear (k)", "events", "classify"),
    PaletteCommand("Set priority", "Priority 1 (critical) to 10 for the selected events (p)", "events", "priority"),
    PaletteCommand(
        "Resolve events", "Resolve with a method and an optional note, after a confirmation (x)", "events", "resolve"
    ),
    PaletteCommand("Reopen events", "Undo a resolve; list resolved events first with v (o)", "events", "reopen"),
    PaletteCommand(
        "Requeue events",
        "Hand back to the processor, counted in metadata, after a confirmation (R)",
        "events",
        "requeue",
    ),
    PaletteCommand(
        "Repair preview", "The highlighted event repaired and checked, and where it would go (f)", "events", "repair"
    ),
    PaletteCommand(
        "Redrive events",
        "Repairable marked or highlighted events into raw_events, after a confirmation (F)",
        "events",
        "redrive",
    ),
    PaletteCommand(
        "Take back claims",
        "Claim events locked by another session of yours (same --operator), e.g. after an SSH drop (T)",
        "events",
        "take_back",
    ),
    PaletteCommand(
        "Export events", "Write the selected events as JSON Lines for forensics (E, ctrl+s)", "events", "export"
    ),
    PaletteCommand(
        "Export all matching",
        "Every event of this view and filter as of now, after a confirmation with the count (ctrl+e)",
        "events",
        "export_matching",
    ),
    PaletteCommand("Migration dry run", "Show the SQL the upgrade would run (d)", "migration", "dry_run"),
    PaletteCommand(
        "Run migration", "Upgrade the database to schema v7, after a confirmation (u)", "migration", "upgrade"
    ),
    PaletteCommand(
        "Run online migration",
        "Upgrade to v7 with short locks, batched and resumable, not atomic, after a confirmation (o)",
        "migration",
        "online",
    ),
    PaletteCommand(
        "Online migration dry run",
        "Show the steps and SQL the online upgrade would run (D)",
        "migration",
        "online_dry_run",
    ),
    PaletteCommand("Recheck schema", "Read the schema version and plan again (r)", "migration", "refresh"),
    PaletteCommand("Reload sources", "Read the per-source figures again (r)", "sources", "refresh"),
    PaletteCommand(
        "Resolve source file for re-ingest",
        "Resolve every pending event of the highlighted source file, after a confirmation (x)",
        "sources",
        "reingest",
    ),
    PaletteCommand(
        "Switch profile", "Connect to another profile of the config file, without a restart (P)", None, "switch_profile"
    ),
    PaletteCommand("Help", "Every key on every screen (?)", None, "help"),
    PaletteCommand("Quit", "Leave dlq-tui (q)", None, "quit"),
)


class DlqCommands(Provider):
    async def _run(self, command: PaletteCommand) -> None:
        app = self.app
        if command.mode is None:
            await app.run_action(command.action)
            return
        if app.current_mode != command.mode:
            await app.switch_mode(command.mode)
        # A key greyed out in the footer is silent; a command picked by name says why it cannot run.
        reason = getattr(app.screen, "unavailable_reason", lambda action: None)(command.action)
        if reason is not None:
            app.notify(reason, severity="error" if "read-only" in reason else "warning", markup=False)
            return
        await app.run_action(command.action, app.screen)

    async def discover(self) -> Hits:
        for command in PALETTE:
            yield DiscoveryHit(command.title, partial(self._run, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in PALETTE:
            score = matcher.match(f"{command.title} {command.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), partial(self._run, command), help=command.help)
