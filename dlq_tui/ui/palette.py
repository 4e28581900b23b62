"""The command palette (ctrl+p): every action of every screen, reachable by name.

Built from the BINDINGS themselves, as help is: an entry is a binding (with a description) whose action the app or
a screen has, its key is the key that binding has now (after the app's keymap), and a binding of the same action
under another key adds that key to the entry (`E, ctrl+s`). Only the wording lives here, in `WORDING`, keyed by
binding id, because the footer and help need short texts and the palette a name to search for; a binding without
an entry is listed with its description and tooltip. `{binding.id}` in a text is replaced by that binding's key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding, BindingsMap, BindingType, Keymap
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from dlq_tui.ui.screens.base import DlqScreen
from dlq_tui.ui.screens.help import key_text

# binding id -> (palette title, what it does). The title is what people type ("jump to event").
WORDING: dict[str, tuple[str, str]] = {
    "go.health": ("Go to health", "Health figures, breakers, runs, analysis"),
    "go.events": ("Go to events", "Pending events, keyset paged"),
    "go.migration": ("Go to migration", "Schema version, plan, dry run, upgrade"),
    "go.sources": ("Go to sources", "Pending events by source file: count, reasons, ages"),
    "help": ("Help", "Every key on every screen"),
    "quit": ("Quit", "Leave dlq-tui"),
    "health.refresh": ("Refresh health", "Read the health figures now"),
    "health.findings": ("Toggle all findings", "Every health finding, or only the two worst"),
    "events.reload": ("Reload events", "Reload the events from the top"),
    "events.filter": ("Filter events", "Priority, classification, reason, text, locks"),
    "events.clear_filter": ("Clear event filter", "Show every pending event again"),
    "events.jump": ("Jump to event id", "Open the page that starts at an event id"),
    "events.resolved": ("Toggle resolved events", "Show resolved events too, or pending only"),
    "events.sort": ("Sort events", "By priority, newest first, most retries first: the next order"),
    "events.detail": ("Toggle detail pane", "Show or hide the event detail"),
    "events.back": ("Back to the event table", "Leave the detail pane for the table"),
    "events.payload_next": ("Next payload page", "Page on through a long payload"),
    "events.payload_prev": ("Previous payload page", "Page back through a long payload"),
    "events.mark": ("Mark event", "Mark or unmark the highlighted event"),
    "events.mark_all": ("Mark all in view", "Mark every event in view, or unmark them"),
    "events.unmark_all": ("Unmark all", "Clear every mark, in view or not"),
    "events.claim": ("Claim events", "Take the processing lock of the marked or highlighted events"),
    "events.release": ("Release events", "Give back your lock (or an expired one) on the selected events"),
    "events.classify": ("Classify events", "malicious, corrupted, format_error, or clear"),
    "events.priority": ("Set priority", "Priority 1 (critical) to 10 for the selected events"),
    "events.resolve": ("Resolve events", "Resolve with a method and an optional note, after a confirmation"),
    "events.reopen": ("Reopen events", "Undo a resolve; list resolved events first with {events.resolved}"),
    "events.requeue": ("Requeue events", "Hand back to the processor, counted in metadata, after a confirmation"),
    "events.repair": ("Repair preview", "The highlighted event repaired and checked, and where it would go"),
    "events.redrive": (
        "Redrive events",
        "Repairable marked or highlighted events into raw_events, after a confirmation",
    ),
    "events.take_back": (
        "Take back claims",
        "Claim events locked by another session of yours (same --operator), e.g. after an SSH drop",
    ),
    "events.export": ("Export events", "Write the selected events as JSON Lines for forensics"),
    "events.export_matching": (
        "Export all matching",
        "Every event of this view and filter as of now, after a confirmation with the count",
    ),
    "migration.recheck": ("Recheck schema", "Read the schema version and plan again"),
    "migration.dry_run": ("Migration dry run", "Show the SQL the upgrade would run"),
    "migration.upgrade": ("Run migration", "Upgrade the database to schema v7, after a confirmation"),
    "migration.online": (
        "Run online migration",
        "Upgrade to v7 with short locks, batched and resumable, not atomic, after a confirmation",
    ),
    "migration.online_dry_run": ("Online migration dry run", "Show the steps and SQL the online upgrade would run"),
    "sources.reingest": (
        "Resolve source file for re-ingest",
        "Resolve every pending event of the highlighted source file, after a confirmation",
    ),
    "sources.reload": ("Reload sources", "Read the per-source figures again"),
}


@dataclass(frozen=True)
class PaletteCommand:
    title: str
    help: str  # what it does, then its keys: "Open the page that starts at an event id (g)"
    mode: str | None  # the screen the action lives on (switched to first), None for app actions
    action: str  # run on that screen (or on the app when mode is None)
    keys: tuple[str, ...]  # as help shows them, after the keymap; empty when the keymap took every key away


def _declared_bindings(owner: type[DOMNode]) -> list[BindingType]:
    """The bindings a class and its bases declare, but not Textual's own (tab, ctrl+c, ctrl+q): help does not list
    them either, and the palette already has Textual's system commands."""
    declared: list[BindingType] = []
    for cls in reversed(owner.__mro__):
        if cls.__module__.split(".")[0] != "textual" and "BINDINGS" in vars(cls):
            declared.extend(vars(cls)["BINDINGS"])
    return declared


def _owners(app_class: type[App[Any]]) -> list[tuple[str | None, type[DOMNode], list[type[DOMNode]]]]:
    """(mode, where the action runs, whose bindings count): the app, then each screen with its own widgets'
    keys, where the screen answers the same action (the table's space marks, the screen runs toggle_mark)."""
    from dlq_tui.ui.screens.events import EventsScreen
    from dlq_tui.ui.widgets.event_table import EventTable

    widgets: dict[type[DOMNode], list[type[DOMNode]]] = {EventsScreen: [EventTable]}
    owners: list[tuple[str | None, type[DOMNode], list[type[DOMNode]]]] = [(None, app_class, [app_class])]
    for mode, screen in app_class.MODES.items():
        if isinstance(screen, type) and issubclass(screen, DOMNode):
            owners.append((mode, screen, [screen, *widgets.get(screen, [])]))
    return owners


def _bound(sources: list[type[DOMNode]], keymap: Keymap) -> list[tuple[Binding, list[Binding]]]:
    """Each declared binding in order, with the bindings it has after the keymap (one per key)."""
    result: list[tuple[Binding, list[Binding]]] = []
    for source in sources:
        declared = list(Binding.make_bindings(_declared_bindings(source)))
        live = BindingsMap(declared)
        live.apply_keymap(keymap)  # Textual's own rule, clashes included: the keys a press would use
        by_id: dict[str, list[Binding]] = {}
        for _key, binding in live:
            if binding.id is not None:
                by_id.setdefault(binding.id, []).append(binding)
        seen: set[str] = set()
        for binding in declared:
            if binding.id is None:
                result.append((binding, [binding]))
            elif binding.id not in seen:  # "a,b" declares two bindings with one id
                seen.add(binding.id)
                result.append((binding, by_id.get(binding.id, [])))
    return result


def _fill(text: str, keys_by_id: Mapping[str, str]) -> str:
    return re.sub(r"\{([\w.]+)\}", lambda m: keys_by_id.get(m.group(1), m.group(1)), text)


def palette_commands(app_class: type[App[Any]], keymap: Keymap | None = None) -> list[PaletteCommand]:
    """The app's actions, then each screen's, in binding order; one entry per action with all of its keys."""
    keymap = keymap or {}
    found: list[tuple[str | None, Binding, list[str]]] = []
    by_action: dict[tuple[str | None, str], list[str]] = {}
    keys_by_id: dict[str, str] = {}
    for mode, runner, sources in _owners(app_class):
        for binding, live in _bound(sources, keymap):
            keys = [key_text(b) for b in live]
            if binding.id is not None:
                keys_by_id[binding.id] = ", ".join(keys) or binding.id
            name = parse_action(binding.action)[1]
            if not binding.description or not hasattr(runner, f"action_{name}"):
                continue  # a widget's own key (first row, last row): not something the screen does
            if (mode, binding.action) in by_action:
                by_action[mode, binding.action].extend(k for k in keys if k not in by_action[mode, binding.action])
                continue
            by_action[mode, binding.action] = keys
            found.append((mode, binding, keys))
    commands = []
    for mode, binding, keys in found:
        title, does = WORDING.get(binding.id or "", (binding.description, binding.tooltip or binding.description))
        does = _fill(does, keys_by_id)
        shown = f"{does} ({', '.join(keys)})" if keys else does
        commands.append(PaletteCommand(title, shown, mode, binding.action, tuple(keys)))
    return commands


class DlqCommands(Provider):
    def _commands(self) -> list[PaletteCommand]:
        # The keymap is read at every opening: a key remapped while the app runs shows its new key.
        return palette_commands(type(self.app), self.app._keymap)

    async def _run(self, command: PaletteCommand) -> None:
        app = self.app
        if command.mode is None:
            await app.run_action(command.action)
            return
        if app.current_mode != command.mode:
            await app.switch_mode(command.mode)
        screen = app.screen
        # A key greyed out in the footer is silent; a command picked by name says why it cannot run.
        reason = screen.unavailable_reason(command.action) if isinstance(screen, DlqScreen) else None
        _, name, parameters = parse_action(command.action)
        if reason is None and not screen.check_action(name, parameters):
            reason = f"{command.title}: not available here now"
        if reason is not None:
            app.notify(reason, severity="error" if "read-only" in reason else "warning", markup=False)
            return
        await app.run_action(command.action, screen)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, partial(self._run, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(f"{command.title} {command.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), partial(self._run, command), help=command.help)
