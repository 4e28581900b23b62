"""Sort a failed piece of database work into what the operator should know and what the app should do.

Pure functions (no Textual): the app's `report_error` turns the result into a notification, a
"disconnected" state with reconnects, or a permissions notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlq_tui.db.dsn import describe_target, scrub
from dlq_tui.db.errors import (
    INSUFFICIENT_PRIVILEGE,
    ConnectionFault,
    classify_connection_error,
    driver_error,
    first_line,
    sqlstate,
)

FaultKind = Literal["connection", "permission", "refused", "other"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    line: str  # one line, password scrubbed; still run it through text.plain() before display
    lost_connection: bool = False  # the link is down: start reconnecting


def _connection_line(exc: BaseException, dsn: str) -> str | None:
    import psycopg
    from sqlalchemy.exc import DBAPIError

    inner = driver_error(exc)
    # Only errors of the link itself: a statement or lock timeout is an OperationalError too, but the
    # connection is fine (classify_connection_error answers None for those).
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return classify_connection_error(exc, dsn) or f"lost the connection to {describe_target(dsn).label()}"
    if isinstance(inner, psycopg.OperationalError | OSError | ConnectionFault):
        return classify_connection_error(exc, dsn)
    return None


def describe_fault(exc: BaseException, dsn: str, context: str = "") -> Fault:
    from dlq_tui.db.triage import ActionRefused

    if isinstance(exc, ActionRefused):
        # Triage already says "not done: ..." (or "may or may not be saved"); keep its words.
        cause = exc.__cause__
        lost = cause is not None and _connection_line(cause, dsn) is not None
        return Fault("refused", scrub(first_line(exc), dsn), lost_connection=lost)
    if sqlstate(exc) == INSUFFICIENT_PRIVILEGE:
        user = describe_target(dsn).user or "your role"
        detail = first_line(exc)
        return Fault(
            "permission",
            scrub(f"{detail}: ask an administrator to GRANT SELECT on it TO {user} (see `dlq-tui check`)", dsn),
        )
    line = _connection_line(exc, dsn)
    if line is not None:
        return Fault("connection", scrub(line, dsn), lost_connection=True)
    prefix = f"{context}: " if context else ""
    return Fault("other", scrub(prefix + first_line(exc), dsn))
