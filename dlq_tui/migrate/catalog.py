"""What the database really contains: the catalog, the legacy marker, alembic's revision, data gaps.

Earlier tooling swallowed errors, so a marker can claim v7 while objects are missing. Every decision
the runner makes (stamp, what to create, what `check` reports) starts from this inspection, never from
the marker alone. Read-only: safe in a dry run and in `dlq-tui check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, inspect, text

from dlq_tui.db import schema
from dlq_tui.migrate.sql import EVENTS, key_sql

ALEMBIC_TABLE = "alembic_version"

# format_type() spellings of the spec's types.
_PG_TYPE = {
    "VARCHAR(64)": "character varying(64)",
    "VARCHAR(128)": "character varying(128)",
    "VARCHAR(32)": "character varying(32)",
    "INTEGER": "integer",
    "JSONB": "jsonb",
    "UUID": "uuid",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
}


@dataclass(frozen=True)
class ColumnInfo:
    type_sql: str
    not_null: bool
    default: str | None


@dataclass
class Catalog:
    dialect: str
    tables: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    view_columns: dict[str, list[str]] = field(default_factory=dict)
    event_columns: dict[str, ColumnInfo] = field(default_factory=dict)
    indexes: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (table, columns)
    constraints: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (table, contype)
    functions: set[str] = field(default_factory=set)
    triggers: dict[str, str] = field(default_factory=dict)  # name -> table
    marker_raw: str | None = None
    alembic_revision: str | None = None
    rewrite_blockers: list[str] = field(default_factory=list)
    invalid_indexes: list[str] = field(default_factory=list)  # left by an interrupted concurrent build
    unvalidated: list[str] = field(default_factory=list)  # constraints added NOT VALID, not yet validated

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def marker(self) -> int | None:
        if self.marker_raw is None:
            return None
        try:
            return int(self.marker_raw.strip())
        except ValueError:
            return None

    # --- what is missing -------------------------------------------------------------------
    def missing_legacy(self) -> list[str]:
        missing = [f"table {t}" for t in ("schema_state", EVENTS) if t not in self.tables]
        if EVENTS in self.tables:
            missing += [f"index {name}" for name in schema.LEGACY_EVENT_INDEXES if name not in self.indexes]
        return missing

    def missing_columns(self) -> list[str]:
        return [c for c in schema.V7_COLUMNS if c not in self.event_columns]

    def missing_event_indexes(self) -> list[str]:
        return [name for name in schema.V7_EVENT_INDEXES if name not in self.indexes]

    def missing_checks(self) -> list[str]:
        return [name for name in schema.V7_CHECK_CONSTRAINTS if name not in self.constraints]

    def has_unique(self) -> bool:
        return schema.V7_UNIQUE_CONSTRAINT in self.constraints

    def missing_tables(self) -> list[str]:
        return [t for t in schema.V7_TABLE_INDEXES if t not in self.tables]

    def missing_table_indexes(self) -> list[str]:
        return [
            name
            for table, idx in schema.V7_TABLE_INDEXES.items()
            if table in self.tables
            for name in idx
            if name not in self.indexes
        ]

    def missing_triggers(self) -> list[str]:
        return [name for name in schema.UPDATED_AT_TRIGGERS if name not in self.triggers]

    def missing_v7(self) -> list[str]:
        """Every v7 object that is absent (PostgreSQL), as 'kind name' strings."""
        if EVENTS not in self.tables:
            return [f"table {EVENTS}"]
        out = [f"column {EVENTS}.{c}" for c in self.missing_columns()]
        out += [f"index {n}" for n in self.missing_event_indexes()]
        out += [f"constraint {n}" for n in self.missing_checks()]
        if not self.has_unique():
            out.append(f"constraint {schema.V7_UNIQUE_CONSTRAINT}")
        out += [f"table {t}" for t in self.missing_tables()]
        out += [f"index {n}" for n in self.missing_table_indexes()]
        if schema.HEALTH_VIEW not in self.views:
            out.append(f"view {schema.HEALTH_VIEW}")
        if schema.UPDATED_AT_FUNCTION not in self.functions:
            out.append(f"function {schema.UPDATED_AT_FUNCTION}()")
        out += [f"trigger {n}" for n in self.missing_triggers()]
        return out

    def drift(self) -> list[str]:
        """Objects that exist but differ from the spec (the runner fixes defaults/NOT NULL, refuses the rest)."""
        problems: list[str] = []
        for name, (type_sql, not_null, default) in schema.V7_COLUMNS.items():
            info = self.event_columns.get(name)
            if info is None:
                continue
            if info.type_sql != _PG_TYPE[type_sql]:
                problems.append(f"column {EVENTS}.{name} is {info.type_sql}, expected {_PG_TYPE[type_sql]}")
            if not_null and not info.not_null:
                problems.append(f"column {EVENTS}.{name} allows NULL, expected NOT NULL")
            if default is not None and (info.default or "").lower() != default.lower():
                problems.append(
                    f"column {EVENTS}.{name} has default {info.default or 'none'}, expected {default.lower()}"
                )
        expected = {**schema.V7_EVENT_INDEXES}
        for idx in schema.V7_TABLE_INDEXES.values():
            expected.update(idx)
        for name, cols in expected.items():
            # An INVALID index (an interrupted concurrent build) is rebuilt by either path, never kept.
            if name in self.indexes and name not in self.invalid_indexes and self.indexes[name][1] != cols:
                problems.append(
                    f"index {name} is on ({', '.join(self.indexes[name][1])}), expected ({', '.join(cols)})"
                )
        if schema.HEALTH_VIEW in self.views and tuple(self.view_columns.get(schema.HEALTH_VIEW, ())) != (
            schema.HEALTH_VIEW_COLUMNS
        ):
            problems.append(f"view {schema.HEALTH_VIEW} has columns other than the spec's")
        return problems

    def unfixable_drift(self) -> list[str]:
        """Drift the migration must not paper over (wrong types, indexes on other columns)."""
        return [p for p in self.drift() if " is " in p]

    def v7_complete(self) -> bool:
        return self.postgres and not self.missing_v7() and not self.drift()

    def catalog_version(self) -> int:
        if not self.tables & {"schema_state", EVENTS}:
            return 0
        if self.postgres and EVENTS in self.tables and not self.missing_v7():
            return 7
        return 6


_PG_QUERIES = {
    "tables": "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
    "AND relkind IN ('r', 'p')",
    "views": "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
    "AND relkind IN ('v', 'm')",
    "columns": """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped""",
    "indexes": """
        SELECT i.relname, t.relname,
               array(SELECT pg_get_indexdef(x.indexrelid, k + 1, true) FROM generate_subscripts(x.indkey, 1) AS k
                     ORDER BY k)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relnamespace = current_schema()::regnamespace""",
    "constraints": """
        SELECT c.conname, t.relname, c.contype FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE t.relnamespace = current_schema()::regnamespace""",
    "functions": "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace",
    "triggers": """
        SELECT g.tgname, t.relname FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
        WHERE NOT g.tgisinternal AND t.relnamespace = current_schema()::regnamespace""",
    # Views or rules on the two backfilled columns would make the one-pass rewrite fail: use UPDATE then.
    "rewrite_blockers": """
        SELECT DISTINCT v.relname FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.refobjid = to_regclass(:table) AND a.attname IN ('payload_checksum', 'idempotency_key')""",
    "invalid_indexes": """
        SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = to_regclass(:table) AND NOT x.indisvalid ORDER BY 1""",
    "unvalidated": """
        SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:table) AND NOT convalidated ORDER BY 1""",
}


def invalid_indexes(conn: Connection) -> list[str]:
    """Indexes on dead_letter_events an interrupted CREATE INDEX CONCURRENTLY left INVALID (PostgreSQL)."""
    return list(conn.execute(text(_PG_QUERIES["invalid_indexes"]), {"table": EVENTS}).scalars())


def inspect_catalog(conn: Connection) -> Catalog:
    dialect = conn.dialect.name
    cat = Catalog(dialect=dialect)
    if dialect == "postgresql":
        q = _PG_QUERIES
        cat.tables = set(conn.execute(text(q["tables"])).scalars())
        cat.views = set(conn.execute(text(q["views"])).scalars())
        for view in cat.views & {schema.HEALTH_VIEW}:
            cat.view_columns[view] = [
                r[0] for r in conn.execute(text(q["columns"].replace(":table", ":v")), {"v": view}).all()
            ]
        cat.event_columns = {
            r[0]: ColumnInfo(r[1], bool(r[2]), r[3]) for r in conn.execute(text(q["columns"]), {"table": EVENTS})
        }
        cat.indexes = {r[0]: (r[1], tuple(r[2])) for r in conn.execute(text(q["indexes"]))}
        cat.constraints = {r[0]: (r[1], r[2]) for r in conn.execute(text(q["constraints"]))}
        cat.functions = set(conn.execute(text(q["functions"])).scalars())
        cat.triggers = {r[0]: r[1] for r in conn.execute(text(q["triggers"]))}
        if EVENTS in cat.tables:
            cat.rewrite_blockers = list(conn.execute(text(q["rewrite_blockers"]), {"table": EVENTS}).scalars())
            cat.invalid_indexes = invalid_indexes(conn)
            cat.unvalidated = list(conn.execute(text(q["unvalidated"]), {"table": EVENTS}).scalars())
    else:
        insp = inspect(conn)
        cat.tables = set(insp.get_table_names())
        cat.views = set(insp.get_view_names())
        if EVENTS in cat.tables:
            for col in insp.get_columns(EVENTS):
                cat.event_columns[col["name"]] = ColumnInfo(str(col["type"]), not col["nullable"], col.get("default"))
            for ix in insp.get_indexes(EVENTS):
                cat.indexes[str(ix["name"])] = (EVENTS, tuple(str(c) for c in ix["column_names"]))
    if "schema_state" in cat.tables:
        cat.marker_raw = conn.execute(
            text("SELECT value FROM schema_state WHERE key = :k"), {"k": schema.SCHEMA_VERSION_KEY}
        ).scalar()
    if ALEMBIC_TABLE in cat.tables:
        cat.alembic_revision = conn.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar()
    return cat


@dataclass(frozen=True)
class DataGaps:
    rows_without_checksum: int
    rows_without_key: int  # NULL key and not explained by an older row holding the same key
    duplicate_sources: int  # NULL key because an older row holds the same key
    rows_total: int = 0

    def notes(self) -> list[str]:
        """What the rows lack, why, and what fixes it: warnings under a schema verdict, never the verdict.

        Two causes leave checksums NULL and the catalog cannot tell them apart: writers that only know the
        legacy columns (the pipeline's own writers, before and after v7), and a v7 migration run without
        pgcrypto (the pipeline's tool then "succeeds" with every row NULL). So the note names both.
        """
        notes: list[str] = []
        missing, keyless = self.rows_without_checksum, self.rows_without_key
        if missing:
            lacks = "no payload checksum" + (" and no idempotency key" if keyless == missing else "")
            verb = "has" if missing == 1 else "have"
            notes.append(
                f"{missing:,} of {self.rows_total:,} rows {verb} {lacks}: from writers that do not set them, or "
                "a v7 migration run without pgcrypto (it leaves every row NULL); dlq-tui --migrate backfills them"
            )
        if keyless and keyless != missing:
            rows = "row has" if keyless == 1 else "rows have"
            notes.append(f"{keyless:,} {rows} no idempotency key; dlq-tui --migrate backfills them")
        if self.duplicate_sources:
            one = self.duplicate_sources == 1
            notes.append(
                f"duplicate idempotency sources: {self.duplicate_sources:,} "
                f"{'event repeats' if one else 'events repeat'} an older event's source, offset and payload and "
                f"{'has' if one else 'have'} no idempotency key (the oldest keeps it: nothing to backfill)"
            )
        return notes


def data_gaps(conn: Connection, cat: Catalog) -> DataGaps:
    """Rows without checksum/key (see DataGaps.notes for why), and rows left keyless as later duplicates."""
    if not cat.postgres or EVENTS not in cat.tables or cat.missing_columns():
        return DataGaps(0, 0, 0)
    row = conn.execute(
        text(
            f"""SELECT count(*) FILTER (WHERE d.payload_checksum IS NULL),
                       count(*) FILTER (WHERE d.idempotency_key IS NULL AND NOT dup),
                       count(*) FILTER (WHERE d.idempotency_key IS NULL AND dup)
                FROM dead_letter_events d
                CROSS JOIN LATERAL (SELECT d.payload_checksum IS NOT NULL AND EXISTS (
                    SELECT 1 FROM dead_letter_events o WHERE o.id <> d.id
                    AND o.idempotency_key = {key_sql("d.payload_checksum", "d")})) AS x(dup)
                WHERE d.payload_checksum IS NULL OR d.idempotency_key IS NULL"""
        )
    ).one()
    # The table's size only matters to the note about missing checksums ("40 of 40 rows"): count it then.
    total = int(conn.execute(text(f"SELECT count(*) FROM {EVENTS}")).scalar_one()) if row[0] else 0
    return DataGaps(int(row[0]), int(row[1]), int(row[2]), total)
