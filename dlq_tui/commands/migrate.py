"""`dlq-tui --migrate [--dry-run]`: the live step log of the v7 migration, or the SQL it would run.

`--online` streams the online migration (short locks, batched backfill with progress lines, resumable).
Exit codes: 0 migrated (or already at v7); 1 the migration failed (atomic: rolled back, database
unchanged; online: consistent, a second run resumes); 2 the database could not be reached, the
connection was lost, or the server did not answer within --migrate-timeout.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from sqlalchemy import Engine

from dlq_tui.db.connect import make_engine
from dlq_tui.db.deadline import Deadline
from dlq_tui.db.dsn import describe_target
from dlq_tui.db.errors import ConnectionFault, connection_errors, explain_connection_error
from dlq_tui.migrate.steps import STEP_NAMES, MigrationError, StepEvent
from dlq_tui.text import plain

RESUME = "the database is consistent; run `dlq-tui --migrate --online` again to resume"

EXIT_OK, EXIT_FAILED, EXIT_FAULT = 0, 1, 2
_STATUS_MARK = {"done": "✓", "skipped": "·", "failed": "✗"}


def format_step(event: StepEvent) -> str:
    """One line per finished step: number, name, status, timing, detail (detail sanitized)."""
    timing = f"{event.duration_s:7.2f} s" if event.duration_s is not None else " " * 9
    mark = _STATUS_MARK.get(event.status, " ")
    return (
        f"{mark} {event.number:>2}/{len(STEP_NAMES)} {event.name:<18} {event.status:<7} {timing}  "
        f"{plain(event.detail)}".rstrip()
    )


def run_migrate(
    dsn: str,
    *,
    dry_run: bool,
    online: bool,
    batch_size: int,
    max_rate: float | None,
    deadline: Deadline | None = None,
) -> int:
    try:
        # No statement_timeout: an index build on a large table may rightly take minutes. The deadline
        # cancels whatever runs when it passes, so a live server stops and releases its locks.
        engine = make_engine(dsn, deadline=deadline)
    except ConnectionFault as exc:
        print(f"dlq-tui: {exc}", file=sys.stderr)
        return EXIT_FAULT
    try:
        if online:
            return _online_dry_run(engine) if dry_run else _online(engine, dsn, batch_size, max_rate)
        return _dry_run(engine) if dry_run else _upgrade(engine, dsn)
    except KeyboardInterrupt:
        print("dlq-tui: interrupted" + (f"; {RESUME}" if online else ""), file=sys.stderr)
        return EXIT_FAILED
    except MigrationError as exc:
        if deadline is not None and deadline.expired:
            # The step that failed said "connection lost": the real cause is the limit we enforced.
            state = RESUME if online else "not committed, nothing changed"
            print(f"dlq-tui: {deadline.describe(describe_target(dsn).label())}; {state}", file=sys.stderr)
            return EXIT_FAULT
        print(f"dlq-tui: migration failed: {plain(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except connection_errors() as exc:
        print(f"dlq-tui: {explain_connection_error(exc, dsn)}", file=sys.stderr)
        return EXIT_FAULT
    finally:
        engine.dispose()


def _upgrade(engine: Engine, dsn: str) -> int:
    from dlq_tui.migrate.runner import upgrade

    print(f"Migrating {describe_target(dsn).label()} to schema v7", flush=True)
    last: StepEvent | None = None
    for event in upgrade(engine):
        if event.status in ("done", "skipped", "failed"):
            print(format_step(event), flush=True)
            last = event
    if last is not None and last.name == "commit":
        print(f"✓ {plain(last.detail)}")
    return EXIT_OK


def format_progress(event: StepEvent) -> str:
    """A "running" event with news (backfill progress, the index being built, a lock retry)."""
    return f"  … {event.number:>2}/{len(STEP_NAMES)} {event.name:<18} {plain(event.detail)}"


def _online(engine: Engine, dsn: str, batch_size: int, max_rate: float | None) -> int:
    from dlq_tui.migrate.online import online_upgrade

    print(f"Migrating {describe_target(dsn).label()} to schema v7 online (short locks, resumable)", flush=True)
    last: StepEvent | None = None
    for event in online_upgrade(engine, batch_size=batch_size, max_rate=max_rate):
        if event.status in ("done", "skipped", "failed"):
            print(format_step(event), flush=True)
            last = event
        elif event.status == "running" and event.detail:
            print(format_progress(event), flush=True)
    if last is not None and last.name == "commit":
        print(f"✓ {plain(last.detail)}")
    return EXIT_OK


def _online_dry_run(engine: Engine) -> int:
    from dlq_tui.migrate.online import online_dry_run

    return _print_plan(
        online_dry_run(engine),
        "-- dlq-tui --migrate --online --dry-run: the steps and SQL the online migration would run; nothing changed.",
        "-- Each statement runs in its own short transaction (or autocommit for CONCURRENTLY) under a short",
        "-- lock_timeout with retries; the backfill repeats its batch statement until every row is done.",
    )


def _dry_run(engine: Engine) -> int:
    from dlq_tui.migrate.runner import dry_run

    return _print_plan(
        dry_run(engine),
        "-- dlq-tui --migrate --dry-run: the SQL the migration would run, in order; nothing is changed.",
        "-- Everything runs in one transaction, under SET LOCAL lock_timeout and an advisory lock.",
    )


def _print_plan(events: Iterable[StepEvent], *header: str) -> int:
    print("\n".join(header))
    for event in events:
        print(f"\n-- step {event.number} {event.name}: {event.status}. {plain(event.detail)}".rstrip())
        if event.sql:
            print(event.sql)  # our own SQL text: no database content in it
    return EXIT_OK
