"""The command palette is built from the bindings: every bound action is in it, under the key it has now."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.actions import parse as parse_action
from textual.binding import Binding, BindingType

import dlq_tui.ui.app
from dlq_tui.ui.app import DlqApp
from dlq_tui.ui.palette import PaletteCommand, palette_commands
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.health import HealthScreen
from dlq_tui.ui.screens.help import key_text
from dlq_tui.ui.widgets.event_table import EventTable
from tests.ui.conftest import SIZE, DemoDb, demo_app, make_app, notes, press, screen_text, settle


def entry(commands: list[PaletteCommand], mode: str | None, action: str) -> PaletteCommand:
    found = [c for c in commands if (c.mode, c.action) == (mode, action)]
    assert len(found) == 1, (mode, action, found)
    return found[0]


def test_every_bound_action_is_in_the_palette_with_the_key_it_is_bound_to() -> None:
    commands = palette_commands(DlqApp)
    owners: list[tuple[str | None, type[Any], list[BindingType]]] = [(None, DlqApp, DlqApp.BINDINGS)]
    for mode, screen in DlqApp.MODES.items():
        widget = EventTable.BINDINGS if screen is EventsScreen else []
        owners.append((mode, screen, [*screen.BINDINGS, *widget]))
    checked = 0
    for mode, owner, bindings in owners:
        for binding in Binding.make_bindings(bindings):
            if binding.id is None or not binding.description:
                continue
            if not hasattr(owner, f"action_{parse_action(binding.action)[1]}"):
                continue  # the table's own first row / last row: keys, not commands
            command = entry(commands, mode, binding.action)
            assert key_text(binding) in command.keys, (binding, command)
            assert command.help.endswith(f"({', '.join(command.keys)})"), command
            checked += 1
    assert checked >= 40
    # ctrl+s is bound to export too: one entry with both keys, as it was written by hand before.
    export = entry(commands, "events", "export")
    assert export.help == "Write the selected events as JSON Lines for forensics (E, ctrl+s)"


def test_a_remapped_key_shows_in_the_palette_and_in_texts_that_name_it() -> None:
    commands = palette_commands(DlqApp, {"events.jump": "J", "events.export": "X", "events.resolved": "V"})
    assert entry(commands, "events", "jump").help == "Open the page that starts at an event id (J)"
    assert entry(commands, "events", "export").keys == ("X", "ctrl+s")
    assert entry(commands, "events", "reopen").help == "Undo a resolve; list resolved events first with V (o)"
    # A key taken by a remapped binding is gone from the one that had it (as a key press would find it).
    commands = palette_commands(DlqApp, {"events.jump": "r"})
    assert entry(commands, "events", "jump").keys == ("r",)
    assert entry(commands, "events", "refresh").help == "Reload the events from the top"


class ExtendedHealth(HealthScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("z", "ping", "Ping", tooltip="Say hello from the health screen", id="health.ping", show=False),
    ]
    pinged = 0

    def action_ping(self) -> None:
        type(self).pinged += 1

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if action == "refresh" and self.app.settings.read_only else True


class ExtendedApp(DlqApp):
    CSS_PATH = str(Path(dlq_tui.ui.app.__file__).with_name("dlq_tui.tcss"))  # relative paths are to this file
    MODES: ClassVar[dict[str, Any]] = {**DlqApp.MODES, "health": ExtendedHealth}


def test_a_new_binding_is_in_the_palette_without_a_palette_entry_written_for_it() -> None:
    commands = palette_commands(ExtendedApp)
    ping = entry(commands, "health", "ping")
    assert (ping.title, ping.help, ping.keys) == ("Ping", "Say hello from the health screen (z)", ("z",))
    assert entry(commands, "health", "refresh").keys == ("r",)  # the inherited bindings stay


async def test_the_palette_shows_and_runs_a_key_remapped_in_the_running_app(demo_db: DemoDb) -> None:
    app = demo_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.update_keymap({"events.jump": "J"})
        await press(pilot, "ctrl+p")
        await pilot.press(*"jump to event")
        await pilot.pause(0.5)
        shown = screen_text(app)
        assert "event id (J)" in shown and "event id (g)" not in shown
        await press(pilot, "enter")
        assert app.current_mode == "events"
        assert type(app.screen).__name__ == "JumpModal"
        await press(pilot, "escape", "J")  # the key the palette named is the key that works
        assert type(app.screen).__name__ == "JumpModal"


async def test_a_command_the_screen_refuses_says_so_from_another_screen(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+p")
        await pilot.press(*"resolve source file")
        await press(pilot, "enter")
        assert app.current_mode == "sources"  # switched to where it lives, then refused there
        assert "read-only mode: actions are disabled" in notes(app)
        assert type(app.screen).__name__ == "SourcesScreen"  # no confirmation opened


async def test_check_action_decides_for_a_screen_without_reasons(empty_dsn: str) -> None:
    from dlq_tui.config import Settings
    from dlq_tui.ui.source import DataSource

    conf = Settings(dsn=empty_dsn, operator="tester", read_only=True)
    app = ExtendedApp(conf, source=DataSource(conf))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "e", "ctrl+p")
        await pilot.press(*"refresh health")
        await press(pilot, "enter")
        assert app.current_mode == "health"
        assert "Refresh health: not available here now" in notes(app)
        await press(pilot, "ctrl+p")
        await pilot.press(*"ping")
        await press(pilot, "enter")
        assert ExtendedHealth.pinged == 1
