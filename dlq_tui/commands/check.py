"""`dlq-tui check`: is the schema current (v7)? Exit 0 only when it is, 1 when not, 2 when unreachable."""

from __future__ import annotations

import sys

from dlq_tui.db.connect import open_checked
from dlq_tui.db.deadline import Deadline
from dlq_tui.db.errors import connection_errors, explain_connection_error
from dlq_tui.migrate.runner import SchemaStatus, check
from dlq_tui.text import plain

CURRENT_LINE = "✓ Database schema is current (v7)"
EXIT_OK, EXIT_NOT_CURRENT, EXIT_FAULT = 0, 1, 2


def run_check(dsn: str, *, deadline: Deadline | None = None) -> int:
    timeout_ms = deadline.statement_timeout_ms() if deadline else None
    # A ConnectionFault here (the deadline's included) is reported by the CLI: one line, exit 2.
    engine = open_checked(dsn, statement_timeout_ms=timeout_ms, deadline=deadline)
    try:
        status: SchemaStatus = check(engine)
    except connection_errors() as exc:
        print(f"dlq-tui: {explain_connection_error(exc, dsn)}", file=sys.stderr)
        return EXIT_FAULT
    finally:
        engine.dispose()
    if status.current:
        print(CURRENT_LINE)
        _duplicates_note(status)
        return EXIT_OK
    print("\n".join(report_lines(status)))
    return EXIT_NOT_CURRENT


def report_lines(status: SchemaStatus) -> list[str]:
    """What is missing or drifted, one item a line."""
    marker = "missing" if status.marker is None else str(status.marker)
    version = {0: "no dlq tables", 6: "pre-v7 or partial v7", 7: "every v7 object"}[status.catalog_version]
    lines = [f"✗ Database schema is not current (marker {marker}; catalog: {version})"]
    lines += [f"  missing: {plain(item)}" for item in status.missing]
    lines += [f"  drift: {plain(item)}" for item in status.problems]
    if status.duplicate_idempotency_sources:
        lines.append(_duplicates_text(status.duplicate_idempotency_sources))
    lines.append("Run `dlq-tui --migrate` to complete the schema (`--dry-run` shows the SQL first).")
    return lines


def _duplicates_text(count: int) -> str:
    return (
        f"  duplicate idempotency sources: {count:,} events repeat an older event's source, offset and payload "
        "and have no idempotency key"
    )


def _duplicates_note(status: SchemaStatus) -> None:
    if status.duplicate_idempotency_sources:
        print(_duplicates_text(status.duplicate_idempotency_sources))
