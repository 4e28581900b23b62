"""Can the current role read what the screens show? Asked of the catalog, before any query fails.

A role without SELECT on the events table or the health view otherwise surfaces as a raw
"permission denied" from whichever query runs first; this names every object at once, with the
GRANT that fixes it. Only objects that exist are judged: missing ones are the schema check's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from dlq_tui.db import schema

# What health and events read: the three tables and the view (schema_state is read by the schema check).
READ_OBJECTS: tuple[str, ...] = (
    schema.dead_letter_events.name,
    schema.HEALTH_VIEW,
    schema.dlq_circuit_breaker_state.name,
    schema.dlq_processing_metrics.name,
    schema.schema_state.name,
)


@dataclass(frozen=True)
class AccessProblem:
    """The role may not SELECT from `objects` (names as the catalog spells them)."""

    role: str
    objects: list[str] = field(default_factory=list)

    def grant_sql(self) -> str:
        names = ", ".join(f'"{name}"' if not name.isidentifier() else name for name in self.objects)
        role = self.role if self.role.isidentifier() else '"' + self.role.replace('"', '""') + '"'
        return f"GRANT SELECT ON {names} TO {role};"


def unreadable_objects(conn: Connection) -> AccessProblem | None:
    """None when the role can read every existing object the screens use."""
    rows = conn.execute(
        text(
            "SELECT current_user, c.relname FROM pg_catalog.pg_class c"
            " WHERE c.relname = ANY(:names) AND c.relkind IN ('r', 'v', 'm', 'p')"
            " AND pg_catalog.pg_table_is_visible(c.oid)"
            " AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')"
            " ORDER BY array_position(CAST(:names AS text[]), CAST(c.relname AS text))"
        ),
        {"names": list(READ_OBJECTS)},
    ).all()
    if not rows:
        return None
    return AccessProblem(role=str(rows[0][0]), objects=[str(r[1]) for r in rows])
