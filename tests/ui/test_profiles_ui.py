"""Profiles in the app: the header badge (red for production), switching profile without a restart, [keys]."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.color import Color
from textual.widgets import Static

from dlq_tui.config import Overrides, settings_for
from dlq_tui.db.dsn import describe_target
from dlq_tui.profiles import ConfigFile, load_checked
from dlq_tui.ui.app import DlqApp
from dlq_tui.ui.keymap import binding_ids
from dlq_tui.ui.screens.choice import ChoiceModal
from dlq_tui.ui.source import DataSource
from tests.support.pg import TestServer
from tests.ui.conftest import SIZE, DemoDb, notes, screen_text, settle

SECRET = "Pw-9z-not-for-eyes"


@pytest.fixture
def other_db(pg_server: TestServer, v7_template: str) -> Iterator[str]:
    """A second database at v7, with no events: the production profile's."""
    with pg_server.fresh_database(template=v7_template) as dsn:
        yield dsn


@pytest.fixture
def config(demo_db: DemoDb, other_db: str, tmp_path: Path) -> ConfigFile:
    path = tmp_path / "config.toml"
    path.write_text(
        f'default_profile = "staging"\n\n'
        f'[profiles.staging]\ndsn = "{demo_db.dsn}"\noperator = "alice"\n\n'
        f'[profiles.prod]\ndsn = "{other_db}"\nproduction = true\nread_only = true\n\n'
        # Nothing listens on port 1: the switch must fail and leave the app where it was.
        f'[profiles.broken]\ndsn = "postgresql://dlq:{SECRET}@127.0.0.1:1/dlq?connect_timeout=3"\n',
        "utf-8",
    )
    path.chmod(0o600)  # it holds a password
    return load_checked(path, binding_ids=binding_ids())


def app_for(config: ConfigFile, name: str, demo_db: DemoDb, **overrides: object) -> DlqApp:
    profile = config.profiles[name]
    assert profile.dsn is not None
    settings = settings_for(profile.dsn, profile=profile, config=config, overrides=Overrides(**overrides))  # type: ignore[arg-type]
    return DlqApp(settings, source=DataSource(settings), clock=demo_db.clock, config=config, overrides=Overrides())


def badge(app: DlqApp) -> Static:
    return app.screen.query_one("#bar-profile", Static)


async def test_badge_names_the_profile_and_is_red_for_production(config: ConfigFile, demo_db: DemoDb) -> None:
    app = app_for(config, "staging", demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "staging" in screen_text(app).splitlines()[0]
        assert not badge(app).has_class("-production")
        staging_background = badge(app).styles.background
    app = app_for(config, "prod", demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        top = screen_text(app).splitlines()[0]
        assert "prod · PRODUCTION" in top and "READ-ONLY" in top
        assert badge(app).has_class("-production")
        red = Color.parse(app.get_css_variables()["error"])
        assert badge(app).styles.background == red != staging_background


async def test_no_badge_without_a_profile(demo_db: DemoDb) -> None:
    settings = settings_for(demo_db.dsn)
    app = DlqApp(settings, clock=demo_db.clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.screen.query("#bar-profile")


async def test_switch_profile_reconnects_without_a_restart(config: ConfigFile, demo_db: DemoDb, other_db: str) -> None:
    app = app_for(config, "staging", demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert "no pending events" not in screen_text(app).lower()  # the demo's queue
        old_source = app.source
        await pilot.press("P")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceModal)
        chooser = screen_text(app)
        assert "staging · current" in chooser and "prod (production, read-only)" in chooser
        await pilot.press("2")
        await settle(pilot)
        assert app.current_mode == "events"  # still where the operator was, on the new database
        assert (app.settings.profile, app.settings.read_only, app.settings.operator) == (
            "prod",
            True,
            app.settings.operator,
        )
        assert app.settings.operator != "alice"  # staging's operator went with staging
        assert app.source is not old_source and app.source.dsn == other_db
        assert app.target_label == describe_target(other_db).label()
        shown = screen_text(app)
        top = shown.splitlines()[0]
        assert "prod · PRODUCTION" in top and "READ-ONLY" in top and "schema v7" in top
        assert "staging" not in top
        assert "no pending events" in shown.lower()  # the other database's (empty) queue
        assert any("switched to profile prod" in n for n in notes(app))


async def test_a_profile_that_cannot_connect_leaves_the_app_where_it_was(config: ConfigFile, demo_db: DemoDb) -> None:
    app = app_for(config, "staging", demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        source = app.source
        await pilot.press("P")
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot, timeout=30)
        assert app.source is source and app.settings.profile == "staging"
        failure = [n for n in notes(app) if "still on the current database" in n]
        assert len(failure) == 1 and "cannot connect" in failure[0]
        assert all(SECRET not in n for n in notes(app))
        assert SECRET not in screen_text(app)
        assert "staging" in screen_text(app).splitlines()[0]


async def test_switch_profile_from_the_palette_and_without_profiles(demo_db: DemoDb) -> None:
    app = DlqApp(settings_for(demo_db.dsn), clock=demo_db.clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"switch profile")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert any(n.startswith("no profiles to switch to: add [profiles.NAME] to ") for n in notes(app))


async def test_keys_remap_bindings(demo_db: DemoDb, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keys]\n"go.events" = "w"\n"go.health" = "ctrl+h,H"\n', "utf-8")
    config = load_checked(path, binding_ids=binding_ids())
    app = DlqApp(settings_for(demo_db.dsn, config=config), clock=demo_db.clock, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")  # no longer bound
        await settle(pilot)
        assert app.current_mode == "health"
        await pilot.press("w")
        await settle(pilot)
        assert app.current_mode == "events"
        await pilot.press("H")
        await settle(pilot)
        assert app.current_mode == "health"


def test_unknown_binding_id_is_refused_with_the_valid_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlq_tui.cli import run

    path = tmp_path / "config.toml"
    path.write_text('[keys]\n"go.event" = "w"\n', "utf-8")
    assert run(["--config", str(path), "--dsn", "postgresql://nobody@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"dlq-tui: {path}:2: [keys]: no binding has the id 'go.event' (ids: ")
    assert "go.events" in err and "profile.switch" in err
