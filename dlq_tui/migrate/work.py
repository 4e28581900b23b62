"""The SQL of each step: baseline (legacy objects), the v7 steps in the fast order, marker, late rows.

Every step looks at the catalog first and only does what is missing, which is what makes a
half-applied v7 complete instead of fail, and a second run a no-op.

Why this order (measured by bench/migration_timing.py): the spec's order backfills
after eight indexes, a unique constraint and a per-row trigger exist (~50 s for 1M rows). Here the
12 columns come first (one ALTER, no rewrite), then checksums and keys are filled in ONE pass by a
table rewrite (`ALTER COLUMN ... TYPE ... USING <hash>`): it writes a compact new heap instead of
leaving a million dead row versions behind for every later index build to scan. Duplicate sources
are cleared next, and only then come the indexes, constraints, tables, view, function and triggers.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Column, Index, MetaData, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable

from dlq_tui.db import schema
from dlq_tui.db.errors import UNIQUE_VIOLATION, sqlstate
from dlq_tui.migrate import sql
from dlq_tui.migrate.sql import EVENTS, UNIQUE
from dlq_tui.migrate.steps import Outcome, Steps

SKIP_SQLITE = "PostgreSQL only: v7 changes nothing on SQLite"

# The legacy objects (the pre-v7 tables and indexes), taken from the shared schema so names cannot drift.
legacy_metadata = MetaData()
_LEGACY_COLUMNS: tuple[str, ...] = ("id", "ingest_id", "source", "source_offset", "reason", "payload", "metadata_json")
_LEGACY_COLUMNS += ("created_at", "resolved", "resolved_at")
legacy_schema_state = schema.schema_state.to_metadata(legacy_metadata)
legacy_events = Table(
    EVENTS,
    legacy_metadata,
    *(
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, server_default=c.server_default)
        for c in (schema.dead_letter_events.c[n] for n in _LEGACY_COLUMNS)
    ),
)
_legacy_indexes = [
    Index(name, *(legacy_events.c[c] for c in cols)) for name, cols in schema.LEGACY_EVENT_INDEXES.items()
]


def _ddl(steps: Steps, element: object) -> str:
    return str(element.compile(dialect=steps.conn.dialect)).strip()  # type: ignore[attr-defined]


def _n(count: int) -> str:
    return f"{count:,}"


# --- baseline --------------------------------------------------------------------------------------
def baseline(steps: Steps, out: Outcome) -> None:
    cat = steps.inspect()
    created: list[str] = []
    for table in (legacy_schema_state, legacy_events):
        if table.name not in cat.tables:
            steps.sql(_ddl(steps, CreateTable(table)))
            created.append(table.name)
    for index in _legacy_indexes:
        if index.name not in cat.indexes:
            steps.sql(_ddl(steps, CreateIndex(index)))
            created.append(str(index.name))
    if created:
        out.detail = "created " + ", ".join(created)
    else:
        out.skipped, out.detail = True, "legacy tables present"
    if steps.execute:
        steps.inspect()
    else:  # dry run: pretend the baseline ran so that the v7 plan is rendered against it
        steps.simulated |= {t for t in (legacy_schema_state.name, EVENTS) if t not in cat.tables}
        cat.tables |= {legacy_schema_state.name, EVENTS}
        for index in _legacy_indexes:
            cat.indexes.setdefault(str(index.name), (EVENTS, ()))


# --- v7 --------------------------------------------------------------------------------------------
def v7(steps: Steps) -> None:
    """Everything the spec's nine steps describe, in the fast order."""
    if not steps.postgres:
        for name in ("add_columns", "backfill", "duplicate_keys", "create_indexes", "add_constraints"):
            steps.run(name, _skip_sqlite)
        for name in ("create_tables", "create_view", "create_function", "create_triggers"):
            steps.run(name, _skip_sqlite)
        steps.run("set_marker", set_marker)
        return
    cat = steps.cat
    had_unique = cat.has_unique()
    columns_existed = not cat.missing_columns()
    steps.run("add_columns", add_columns)
    steps.run("backfill", partial(backfill, columns_existed=columns_existed))
    steps.run("duplicate_keys", partial(duplicate_keys, needed=not had_unique))
    steps.run("create_indexes", create_indexes)
    steps.run("add_constraints", add_constraints)
    steps.run("create_tables", create_tables)
    steps.run("create_view", create_view)
    steps.run("create_function", create_function)
    steps.run("create_triggers", create_triggers)
    steps.run("set_marker", set_marker)


def _skip_sqlite(_steps: Steps, out: Outcome) -> None:
    out.skipped, out.detail = True, SKIP_SQLITE


def _clear_online_leftovers(steps: Steps) -> list[str]:
    """What an interrupted online run leaves that this transaction builds its own way: INVALID indexes of
    its concurrent builds, a unique index not yet attached as the constraint (the backfill's table rewrite
    would trip over it), and its temporary NOT NULL checks. Dropped here; rebuilt by the steps below."""
    cat = steps.cat
    indexes = [i for i in cat.invalid_indexes if i in cat.indexes]
    if UNIQUE in cat.indexes and not cat.has_unique() and UNIQUE not in indexes:
        indexes.append(UNIQUE)
    checks = [c for c in cat.constraints if c.startswith(sql.NOT_NULL_CHECK_PREFIX)]
    for index in indexes:
        steps.sql(sql.drop_index_sql(index, concurrently=False))
        cat.indexes.pop(index, None)
    cat.invalid_indexes = [i for i in cat.invalid_indexes if i not in indexes]
    for check in checks:
        steps.sql(sql.drop_constraint_sql(check))
        cat.constraints.pop(check, None)
    cat.unvalidated = [c for c in cat.unvalidated if c not in checks]
    return (
        [f"dropped {', '.join([*indexes, *checks])} (left by an interrupted online run)"] if indexes or checks else []
    )


def add_columns(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    cleared = _clear_online_leftovers(steps)
    missing = cat.missing_columns()
    clauses = sql.add_column_clauses(cat)
    fixed = []
    defaults, not_null = sql.drifted_defaults(cat), sql.missing_not_null(cat)
    for name in schema.V7_COLUMNS:
        if name in defaults:
            clauses.append(sql.set_default_clause(name))
            fixed.append(f"{name} default")
        if name in not_null:
            steps.sql(sql.fill_default_sql(name))
            clauses.append(sql.set_not_null_clause(name))
            fixed.append(f"{name} NOT NULL")
    if clauses:
        steps.sql(sql.alter_events_sql(clauses))
    parts = list(cleared)
    if missing:
        present = len(schema.V7_COLUMNS) - len(missing)
        parts.append(f"{len(missing)} added" + (f" ({present} present)" if present else ""))
    if fixed:
        parts.append("fixed " + ", ".join(fixed))
    out.detail = "; ".join(parts) or "all 12 present"
    out.skipped = not clauses and not cleared


def backfill(steps: Steps, out: Outcome, *, columns_existed: bool) -> None:
    cat = steps.cat
    if EVENTS in steps.simulated:
        todo = 0
    elif columns_existed:
        todo = int(steps.query(sql.count_sql(sql.LACKING)).scalar_one())
    else:  # columns added in this run (or about to be, in a dry run): every row needs them
        todo = int(steps.query(sql.count_sql()).scalar_one())
    if todo == 0:
        out.skipped, out.detail = True, "no rows to backfill"
        return
    if not cat.rewrite_blockers and not cat.has_unique():
        steps.sql(sql.rewrite_fill_sql())
        out.detail = f"{_n(todo)} rows backfilled (one-pass rewrite)"
    else:
        rows, dups = backfill_rows(steps)
        out.detail = f"{_n(rows if steps.execute else todo)} rows backfilled" + (
            f", {_n(dups)} duplicate sources left without key" if dups else ""
        )


def backfill_rows(steps: Steps) -> tuple[int, int]:
    """Fill checksum and key of the rows lacking them, safely next to existing keys (and a unique one).

    The oldest row (created_at, id) among rows sharing a key gets it unless a row already holds it;
    the others keep NULL. Rows whose values would not change are not touched (no trigger, no bloat).
    Returns (rows updated, rows among them left without key).
    """
    result = steps.sql(sql.fill_keys_sql("lacking"))
    if result is None:
        return 0, 0
    updated, keyless = tuple(result.one())
    return int(updated), int(keyless)


_UNIQUE_SQL = sql.alter_events_sql(sql.unique_clause())


def duplicate_keys(steps: Steps, out: Outcome, *, needed: bool) -> None:
    """The unique constraint, built right after the backfill; the oldest row keeps a shared key.

    Most databases have no duplicate sources, so the unique index is simply built (its sort is the
    duplicate check, nothing is scanned twice). Only when it reports a violation is it rolled back to
    a savepoint, later duplicates (by created_at, id) get a NULL key, and it is built again.
    """
    if not needed:
        out.skipped, out.detail = True, "unique constraint already in place"
        return
    if not steps.execute:
        steps.sql("SAVEPOINT dlq_unique")
        steps.sql(_UNIQUE_SQL)
        steps.sql("-- only if that reports duplicate keys:\nROLLBACK TO SAVEPOINT dlq_unique")
        steps.sql(sql.CLEAR_DUPLICATES_SQL)
        steps.sql(_UNIQUE_SQL)
        out.detail = "unique constraint first; clears later duplicates' keys if it finds any"
        steps.cat.constraints[schema.V7_UNIQUE_CONSTRAINT] = (EVENTS, "u")
        return
    savepoint = steps.conn.begin_nested()
    try:
        steps.sql(_UNIQUE_SQL)
        savepoint.commit()
        count = 0
    except IntegrityError as exc:
        if sqlstate(exc) != UNIQUE_VIOLATION:
            raise
        savepoint.rollback()
        result = steps.sql(sql.CLEAR_DUPLICATES_SQL)
        count = int(result.scalar_one()) if result is not None else 0
        steps.sql(_UNIQUE_SQL)
    steps.cat.constraints[schema.V7_UNIQUE_CONSTRAINT] = (EVENTS, "u")
    found = f"{_n(count)} later duplicate sources left without key (oldest row keeps it)" if count else ""
    out.detail = f"{found or 'no duplicate sources'}; {schema.V7_UNIQUE_CONSTRAINT} added"


def create_indexes(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    missing = cat.missing_event_indexes()
    for name in missing:
        steps.sql(sql.event_index_sql(name))
    out.skipped = not missing
    out.detail = _created(len(missing), len(schema.V7_EVENT_INDEXES))


def add_constraints(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    # Checks an interrupted online run added NOT VALID: validated here, in this transaction.
    unvalidated = [c for c in cat.unvalidated if c in schema.V7_CHECK_CONSTRAINTS]
    for check in unvalidated:
        steps.sql(sql.validate_sql(check))
    cat.unvalidated = [c for c in cat.unvalidated if c not in unvalidated]
    checks = cat.missing_checks()
    clauses = [sql.check_clause(n) for n in checks]
    if not cat.has_unique():  # normally added with the duplicate check above
        clauses.append(sql.unique_clause())
    if clauses:  # one statement: the checks are validated in a single scan
        steps.sql(sql.alter_events_sql(clauses))
    out.skipped = not clauses and not unvalidated
    out.detail = _created(len(checks), len(schema.V7_CHECK_CONSTRAINTS)) + " (checks)"
    if unvalidated:
        out.detail += f"; {len(unvalidated)} validated"
    if len(clauses) > len(checks):
        out.detail += f"; {schema.V7_UNIQUE_CONSTRAINT} added"


def create_tables(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    made = 0
    for table_name, indexes in schema.V7_TABLE_INDEXES.items():
        table = schema.metadata.tables[table_name]
        fresh = table_name not in cat.tables
        if fresh:
            steps.sql(_ddl(steps, CreateTable(table)))
            made += 1
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name in indexes and (fresh or index.name not in cat.indexes):
                steps.sql(_ddl(steps, CreateIndex(index)))
                made += 1
    out.skipped = made == 0
    out.detail = "both tables and their 5 indexes present" if not made else f"{made} objects created"


def create_view(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    if schema.HEALTH_VIEW in cat.views:
        if tuple(cat.view_columns.get(schema.HEALTH_VIEW, ())) == schema.HEALTH_VIEW_COLUMNS:
            out.skipped, out.detail = True, "present"
            return
        steps.sql(sql.drop_view_sql())
        out.detail = "replaced a drifted view"
    steps.sql(schema.HEALTH_VIEW_SQL)
    out.detail = out.detail or "created"


def create_function(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    if schema.UPDATED_AT_FUNCTION in cat.functions:
        out.skipped, out.detail = True, "present"
        return
    steps.sql(schema.UPDATED_AT_FUNCTION_SQL)
    out.detail = "created"


def create_triggers(steps: Steps, out: Outcome) -> None:
    cat = steps.cat
    missing = cat.missing_triggers()
    for trigger in missing:
        steps.sql(sql.trigger_sql(trigger))
    out.skipped = not missing
    out.detail = _created(len(missing), 2)


def set_marker(steps: Steps, out: Outcome) -> None:
    """The pipeline's own marker reads 7 afterwards; a v8+ marker is never moved back."""
    cat = steps.cat
    current = cat.marker
    if current is not None and current >= schema.SCHEMA_VERSION:
        out.skipped, out.detail = True, f"marker reads {current}; left as is"
        return
    if "schema_state" not in cat.tables:  # possible on SQLite files the pipeline never touched
        steps.sql(_ddl(steps, CreateTable(legacy_schema_state)))
    was = "missing" if cat.marker_raw is None else repr(cat.marker_raw)
    if cat.marker_raw is None:
        steps.sql(sql.MARKER_INSERT_SQL, {"k": schema.SCHEMA_VERSION_KEY, "v": str(schema.SCHEMA_VERSION)})
    else:
        steps.sql(sql.MARKER_UPDATE_SQL, {"k": schema.SCHEMA_VERSION_KEY, "v": str(schema.SCHEMA_VERSION)})
    cat.marker_raw = str(schema.SCHEMA_VERSION)
    out.detail = f"{was} -> '7'"


def backfill_new_rows(steps: Steps, out: Outcome, *, covered: bool) -> None:
    """Rows without checksum and key at v7 (writers that do not set them, or a v7 migration run without
    pgcrypto, which leaves every row NULL): fill them, on every run."""
    if not steps.postgres:
        out.skipped, out.detail = True, SKIP_SQLITE
        return
    if covered:
        out.skipped, out.detail = True, "covered by the backfill above"
        return
    todo = int(steps.query(sql.count_sql("payload_checksum IS NULL")).scalar_one())
    keyless = int(steps.query(sql.count_sql("idempotency_key IS NULL")).scalar_one())
    if todo == 0 and keyless == 0:
        out.skipped, out.detail = True, "no rows without checksum or key"
        return
    rows, dups = backfill_rows(steps)
    if not steps.execute:
        out.detail = f"would backfill up to {_n(max(todo, keyless))} rows"
    elif rows == 0:
        out.skipped = True
        out.detail = f"no new rows ({_n(keyless)} duplicate sources stay without key)"
    else:
        out.detail = f"{_n(rows)} rows without checksum or key backfilled" + (
            f", {_n(dups)} of them duplicate sources left without key" if dups else ""
        )


def _created(count: int, total: int) -> str:
    if count == 0:
        return f"all {total} present"
    if count == total:
        return f"{count} created"
    return f"{count} created ({total - count} present)"
