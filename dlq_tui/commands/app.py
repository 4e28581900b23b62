"""`dlq-tui` without a command: check the database can be reached, optionally prepare the demo, run the App."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from dlq_tui.config import Overrides, Settings
from dlq_tui.db.deadline import Deadline

if TYPE_CHECKING:
    from dlq_tui.profiles import ConfigFile

EXIT_FAULT = 2


def _say(message: str) -> None:
    from dlq_tui.text import plain

    print(f"dlq-tui: {plain(message, limit=500)}", file=sys.stderr)


def prepare_demo(dsn: str, deadline: Deadline | None = None) -> bool:
    """Migrate to v7 and fill the demo events, but only where there are no events yet.

    A database that already holds events (a real pipeline's, or a demo from last time) is left exactly as it is:
    `--demo` pointed at a production DSN by mistake must neither migrate it nor add fake events to it.
    Returns whether demo events were added.
    """
    from sqlalchemy import text

    from dlq_tui.db.connect import make_engine
    from dlq_tui.demo import fill_demo
    from dlq_tui.migrate.runner import upgrade

    # Its own writable engine: the CLI refuses --demo with --read-only before it gets here.
    engine = make_engine(dsn, deadline=deadline)
    try:
        with engine.connect() as conn:
            has_table = conn.execute(text("SELECT to_regclass('dead_letter_events') IS NOT NULL")).scalar_one()
            if has_table and conn.execute(text("SELECT EXISTS (SELECT 1 FROM dead_letter_events)")).scalar_one():
                return False
        for _step in upgrade(engine):
            pass
        return fill_demo(engine) > 0
    finally:
        engine.dispose()


def run_app(
    settings: Settings,
    demo: bool = False,
    deadline: Deadline | None = None,
    config: ConfigFile | None = None,
    overrides: Overrides | None = None,
) -> int:
    from dlq_tui.db.errors import connection_errors, explain_connection_error
    from dlq_tui.ui.source import DataSource

    source = DataSource(settings)
    if deadline is not None:
        # The start is bounded like a one-shot command; the app itself then runs without a limit.
        deadline.attach(source.engine)
    try:
        # Fail before the screen takes over the terminal: one clear line, exit 2.
        with source.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except connection_errors() as exc:
        source.close()
        _say(explain_connection_error(exc, settings.dsn))
        return EXIT_FAULT
    if demo:
        try:
            if not prepare_demo(settings.dsn, deadline) and not settings.embedded:
                _say("--demo: this database already holds events; it was left as it is")
        except connection_errors() as exc:
            source.close()
            _say(explain_connection_error(exc, settings.dsn))
            return EXIT_FAULT
        except Exception as exc:  # the migration runner's MigrationError and friends: say it, no traceback
            source.close()
            _say(f"demo setup failed: {exc}")
            return 1

    if deadline is not None:
        deadline.stop()
    from dlq_tui.ui.app import DlqApp

    app = DlqApp(settings, source=source, config=config, overrides=overrides)
    app.run()
    # App.run() returns even after a crash: the return code is what tells the shell.
    return app.return_code or 0
