"""`dlq-tui check`: is the schema current (v7)?

Exit 0 when every v7 object is there and the marker agrees, 1 when not, 2 when unreachable. Data notes
(rows without checksum or key, duplicate sources) are warnings under the verdict; `--strict` makes them
fail (exit 1) as well.
"""

from __future__ import annotations

import sys

from dlq_tui.db.connect import open_checked
from dlq_tui.db.deadline import Deadline
from dlq_tui.db.errors import connection_errors, explain_connection_error
from dlq_tui.migrate.runner import CURRENT_LINE, SchemaStatus, check
from dlq_tui.text import plain

__all__ = ["CURRENT_LINE", "EXIT_FAULT", "EXIT_NOT_CURRENT", "EXIT_OK", "report_lines", "run_check"]

EXIT_OK, EXIT_NOT_CURRENT, EXIT_FAULT = 0, 1, 2


def run_check(dsn: str, *, strict: bool = False, deadline: Deadline | None = None) -> int:
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
    print("\n".join(report_lines(status, strict=strict)))
    if not status.current or (strict and status.notes):
        return EXIT_NOT_CURRENT
    return EXIT_OK


def report_lines(status: SchemaStatus, *, strict: bool = False) -> list[str]:
    """The verdict line, then what is missing or drifted, then the data notes; one item a line."""
    notes = [f"  warning: {plain(note)}" for note in status.notes]
    if status.current:
        lines = [CURRENT_LINE, *notes]
        if strict and notes:
            what = "the data note above fails" if len(notes) == 1 else f"the {len(notes)} data notes above fail"
            lines.append(f"✗ --strict: {what} the check")
        return lines
    marker = "missing" if status.marker is None else str(status.marker)
    version = {0: "no dlq tables", 6: "pre-v7 or partial v7", 7: "every v7 object"}[status.catalog_version]
    lines = [f"✗ Database schema is not current (marker {marker}; catalog: {version})"]
    lines += [f"  missing: {plain(item)}" for item in status.missing]
    lines += [f"  drift: {plain(item)}" for item in status.problems]
    lines += notes
    lines.append("Run `dlq-tui --migrate` to complete the schema (`--dry-run` shows the SQL first).")
    return lines
