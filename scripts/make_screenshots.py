"""Write screenshots/*.svg: every dlq-tui screen on the demo data (and the migration panel mid-upgrade).

Starts a throwaway embedded PostgreSQL (or uses DLQ_TUI_TEST_DSN's server), builds the databases with
the real migration runner and demo loader, drives the real app with Pilot, and saves each screen.
Run from a checkout: `python scripts/make_screenshots.py [--size 160x45]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlq_tui.db.connect import make_engine  # noqa: E402
from dlq_tui.demo import fill_demo, redrive_ids  # noqa: E402
from dlq_tui.migrate.runner import upgrade  # noqa: E402
from tests.support.dbstates import make_legacy_v6  # noqa: E402
from tests.support.pg import start_test_server, stop_test_server  # noqa: E402
from tests.ui.conftest import make_app, settle  # noqa: E402

OUT = ROOT / "screenshots"


def demo_database(server) -> str:  # type: ignore[no-untyped-def]
    dsn = server.dsn_for(server.create_database())
    engine = make_engine(dsn)
    for _ in upgrade(engine):
        pass
    fill_demo(engine)
    engine.dispose()
    return dsn


def repair_keys(dsn: str) -> list[str]:
    """From the events screen: jump to a demo parse failure with a log prefix and open its repair preview."""
    engine = make_engine(dsn)
    with engine.connect() as conn:
        event_id = redrive_ids(conn)["log_prefix"]
    engine.dispose()
    return ["g", *str(event_id), "enter", "f"]


def legacy_database(server) -> str:  # type: ignore[no-untyped-def]
    dsn = server.dsn_for(server.create_database())
    engine = make_engine(dsn)
    make_legacy_v6(engine, rows=5000)
    engine.dispose()
    return dsn


async def shoot(
    dsn: str, size: tuple[int, int], shots: list[tuple[str, list[str]]], only: set[str] | None = None
) -> None:
    # The real clock: the demo's times are relative to the server's now(), so locks are live and ages real.
    app = make_app(dsn)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for name, keys in shots:
            for key in keys:
                await pilot.press(key)
                await settle(pilot, timeout=120)
            if only is None or name in only:
                path = app.save_screenshot(f"{name}.svg", str(OUT))
                print("wrote", path)


def main() -> None:
    parser = argparse.ArgumentParser()
    # The events screen puts the detail pane beside the table from 150 columns on.
    parser.add_argument("--size", default="160x45", help="terminal WIDTHxHEIGHT (150+ puts the detail beside)")
    parser.add_argument("--only", default=None, help="comma-separated names to write (default: every screenshot)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    width, height = (int(n) for n in args.size.split("x"))
    OUT.mkdir(exist_ok=True)
    server = start_test_server()
    try:
        demo = demo_database(server)
        asyncio.run(
            shoot(
                demo,
                (width, height),
                [
                    ("health", []),
                    ("events", ["e", "down", "down", "down", "down", "down", "down", "down", "down", "down"]),
                    ("help", ["question_mark"]),
                    ("repair", ["escape", *repair_keys(demo)]),
                    ("sources", ["escape", "S"]),
                ],
                only,
            )
        )
        if only is None or "migration" in only:
            asyncio.run(shoot(legacy_database(server), (width, height), [("migration", ["m", "u", "y"])]))
    finally:
        stop_test_server(server)


if __name__ == "__main__":
    main()
