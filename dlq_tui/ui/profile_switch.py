"""Switch profile (P, or the palette): connect to another profile of the config file without a restart.

The new profile's connection is tried first, in a worker; only when its server answers does the app let go of
the current one, so a mistyped profile leaves the operator where they were. Then every screen is built anew
for the new database (nothing of the old one's figures or marks survives the switch).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from dlq_tui.ui.screens.choice import Choice, ChoiceModal

if TYPE_CHECKING:
    from dlq_tui.config import Overrides, Settings
    from dlq_tui.profiles import ConfigFile, Profile
    from dlq_tui.ui.app import DlqApp
    from dlq_tui.ui.source import DataSource

SWITCHING_MODE = "switching"
CHOICE_KEYS = "123456789abcdefghijklmnopqrstuvwxyz"


class ProfileConnected(Message):
    def __init__(self, source: DataSource, settings: Settings) -> None:
        super().__init__()
        self.source = source
        self.settings = settings


class ProfileFailed(Message):
    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class SwitchingScreen(Screen[None]):
    """Shown for the moment the screens of the old database are taken down."""

    def compose(self) -> ComposeResult:
        yield Static(Text("switching profile…"))


def profile_label(profile: Profile) -> str:
    from dlq_tui.text import plain

    notes = [n for n, on in (("production", profile.production), ("read-only", profile.read_only)) if on]
    return plain(profile.name, limit=40) + (f" ({', '.join(notes)})" if notes else "")


def profile_dsn(profile: Profile) -> str | None:
    """The profile's own DSN, else its sensors.toml's; None when it names no database."""
    if profile.dsn:
        return profile.dsn
    if profile.sensors:
        from pathlib import Path

        from dlq_tui.sensors import read_db

        return read_db(Path(profile.sensors).expanduser(), profile.sensor)
    return None


class ProfileSwitching:
    """DlqApp's part that switches profiles (a mixin: it uses the app's settings, source and reporting)."""

    config: ConfigFile | None
    overrides: Overrides | None

    @property
    def _app(self) -> DlqApp:
        return self  # type: ignore[return-value]

    def action_switch_profile(self) -> None:
        app = self._app
        config = self.config
        if config is None or not config.profiles:
            from dlq_tui.profiles import default_path

            where = config.path if config is not None else default_path()
            app.notify(f"no profiles to switch to: add [profiles.NAME] to {where}", severity="warning", markup=False)
            return
        if app.source.migration is not None:
            app.notify("a migration is running: switch profiles when it is over", severity="warning", markup=False)
            return
        current = app.settings.profile
        choices = [
            Choice(key, profile_label(p) + (" · current" if p.name == current else ""), p.name)
            for key, p in zip(CHOICE_KEYS, config.profiles.values(), strict=False)
        ]

        def chosen(choice: Choice | None) -> None:
            if choice is not None:
                self.switch_profile(str(choice.value))

        app.push_screen(ChoiceModal("Switch to profile", choices), chosen)

    def switch_profile(self, name: str) -> None:
        from dlq_tui.config import settings_for
        from dlq_tui.sensors import SensorsFault

        app = self._app
        assert self.config is not None
        profile = self.config.profiles[name]
        try:
            dsn = profile_dsn(profile)
        except SensorsFault as exc:
            app.notify(str(exc), title="switch profile", severity="error", markup=False)
            return
        if dsn is None:
            app.notify(f"profile {profile_label(profile)} names no database (dsn or sensors)", severity="error")
            return
        settings = settings_for(dsn, profile=profile, overrides=self.overrides, config=self.config)
        app.notify(f"connecting to profile {profile_label(profile)}…", title="switch profile", markup=False)
        app.run_worker(lambda: self._connect(settings), name="switch profile", group="profile", thread=True)

    def _connect(self, settings: Settings) -> None:
        from dlq_tui.ui.faults import describe_fault
        from dlq_tui.ui.source import DataSource, is_hot_standby

        app = self._app
        source: DataSource | None = None
        try:
            if is_hot_standby(settings.dsn):  # as at launch: read-only, with the STANDBY badge
                settings = replace(settings, read_only=True, standby=True)
            source = DataSource(settings)
            source.ping()
        except Exception as exc:
            if source is not None:
                source.close()
            app.post_message(ProfileFailed(describe_fault(exc, settings.dsn, "switch profile").line))
            return
        app.post_message(ProfileConnected(source, settings))

    def on_profile_failed(self, message: ProfileFailed) -> None:
        from dlq_tui.text import plain

        line = f"{plain(message.line, limit=400)}; still on the current database"
        self._app.notify(line, title="switch profile", severity="error", timeout=10, markup=False)

    async def on_profile_connected(self, message: ProfileConnected) -> None:
        from dlq_tui.db.dsn import describe_target

        app = self._app
        old, held = app.source, app.source.claimed
        app.source, app.settings = message.source, message.settings
        app.target_label = describe_target(message.settings.dsn).label()
        old.close()
        app.schema_status = app.access_problem = None
        app.schema_label = "schema ?"
        app.schema_ready = None
        app.connection_state = "connecting"
        await self._rebuild_screens()
        app.check_schema()
        name = message.settings.profile or "?"
        tail = f"; claims you hold there expire within {old.settings.lock_ttl_minutes} min" if held else ""
        app.notify(f"switched to profile {name}{tail}", title="switch profile", timeout=6, markup=False)

    async def _rebuild_screens(self) -> None:
        app: Any = self._app
        mode = app.current_mode
        if SWITCHING_MODE not in app._modes:
            app.add_mode(SWITCHING_MODE, SwitchingScreen)
        await app.switch_mode(SWITCHING_MODE)
        for name, screen in app.MODES.items():
            await app.remove_mode(name)
            app.add_mode(name, screen)
        await app.switch_mode(mode)
