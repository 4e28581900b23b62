"""SVG snapshots of every screen on the demo data at 100x30 (frozen clock, fixed connection label)."""

from __future__ import annotations

from tests.ui.conftest import SIZE, DemoDb, demo_app, settle


def _after(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_health_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after())


def test_events_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after("e", "down", "down"))


def test_migration_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after("m"))


def test_help_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after("e", "question_mark"))


def test_events_resolve_modal_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    # Three marked rows, then x: the method list with keys and the optional note.
    app = demo_app(demo_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=_after("e", "space", "space", "space", "x"))


def test_events_bulk_confirm_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    # The y/n confirmation names the verb, the count, the method and the view the set was marked in.
    app = demo_app(demo_db)
    keys = ("e", "space", "space", "space", "x", "2", "enter")
    assert snap_compare(app, terminal_size=SIZE, run_before=_after(*keys))


def test_repair_preview_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    # A repairable line holding raw escape sequences, Rich markup and a bidi override: all drawn as escapes.
    from dlq_tui.demo import redrive_ids

    with demo_db.engine.connect() as conn:
        event_id = redrive_ids(conn)["raw_escapes"]
    app = demo_app(demo_db)
    assert snap_compare(app, terminal_size=SIZE, run_before=_after("e", "g", *str(event_id), "enter", "f"))


def test_sources_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    # Pending by source file, biggest first; the hostile demo paths are drawn escaped.
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after("S"))


def test_sources_reingest_confirm_snapshot(demo_db: DemoDb, snap_compare) -> None:  # type: ignore[no-untyped-def]
    # x on the biggest file: the y/n names the file and the count read when it was asked.
    assert snap_compare(demo_app(demo_db), terminal_size=SIZE, run_before=_after("S", "x"))
