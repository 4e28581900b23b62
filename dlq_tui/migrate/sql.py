"""Every statement of the v7 migration, written once: the atomic and the online path, their dry runs.

Pure builders of catalog facts and variant flags (`concurrently`, `not_valid`, the scope of the key
fill); running them, in which transaction and with which lock_timeout, is the caller's business
(dlq_tui/migrate/steps.py). The checksum and key expressions live here too, because the read side
must recompute a checksum exactly as the migration computed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from dlq_tui.db import schema

if TYPE_CHECKING:
    from dlq_tui.migrate.catalog import Catalog

EVENTS = schema.dead_letter_events.name
UNIQUE = schema.V7_UNIQUE_CONSTRAINT


# --- checksum and key ------------------------------------------------------------------------------
def utf8_sha256_sql(text_sql: str) -> str:
    """SQL for the hex sha256 of a text value's bytes: its UTF-8 bytes, as the spec's checksum defines.

    A SQL_ASCII database stores whatever bytes a writer sent, and convert_to(..., 'UTF8') there refuses
    every value that is not valid UTF-8 (one such event would stop the migration and the detail pane), so
    there the bytes are hashed as stored: the same bytes whenever they are UTF-8.
    """
    return (
        f"encode(sha256(convert_to({text_sql}, CASE current_setting('server_encoding') "
        "WHEN 'SQL_ASCII' THEN 'SQL_ASCII' ELSE 'UTF8' END)), 'hex')"
    )


def checksum_sql(text_sql: str = "payload::text") -> str:
    """The payload checksum: sha256 of the payload's text as stored, hex."""
    return utf8_sha256_sql(text_sql)


HASH_SQL = checksum_sql()


def key_sql(checksum_sql: str, alias: str = "") -> str:
    """The idempotency key of a row, given an SQL expression for its payload checksum."""
    a = f"{alias}." if alias else ""
    return utf8_sha256_sql(
        f"coalesce({a}source, '') || ':' || coalesce({a}source_offset::text, '') || ':' || coalesce({checksum_sql}, '')"
    )


# Rows the backfill (or a later catch-up) still has to fill.
LACKING = "(payload_checksum IS NULL OR idempotency_key IS NULL)"


def count_sql(where: str | None = None) -> str:
    return f"SELECT count(*) FROM {EVENTS}" + (f" WHERE {where}" if where else "")


# --- columns and constraints -----------------------------------------------------------------------
def alter_events_sql(clauses: list[str] | str) -> str:
    """ALTER TABLE for one clause (one line), or several in one statement: one lock, one validating scan."""
    if isinstance(clauses, str):
        return f"ALTER TABLE {EVENTS} {clauses}"
    return f"ALTER TABLE {EVENTS}\n    " + ",\n    ".join(clauses)


def add_column_clauses(cat: Catalog) -> list[str]:
    """ADD COLUMN for each missing v7 column, with its NOT NULL and default."""
    clauses = []
    for name in cat.missing_columns():
        type_sql, not_null, default = schema.V7_COLUMNS[name]
        clause = f"ADD COLUMN {name} {type_sql}" + (" NOT NULL" if not_null else "")
        clauses.append(clause + (f" DEFAULT {default}" if default is not None else ""))
    return clauses


def drifted_defaults(cat: Catalog) -> list[str]:
    """Present v7 columns whose default differs from the spec's (the migration sets it)."""
    return [
        name
        for name, (_type, _nn, default) in schema.V7_COLUMNS.items()
        if name in cat.event_columns
        and default is not None
        and (cat.event_columns[name].default or "").lower() != default.lower()
    ]


def missing_not_null(cat: Catalog) -> list[str]:
    """Present v7 columns that lack the spec's NOT NULL (a half-applied column may hold NULLs)."""
    return [
        name
        for name, (_type, not_null, _d) in schema.V7_COLUMNS.items()
        if not_null and name in cat.event_columns and not cat.event_columns[name].not_null
    ]


def set_default_clause(column: str) -> str:
    return f"ALTER COLUMN {column} SET DEFAULT {schema.V7_COLUMNS[column][2]}"


def set_not_null_clause(column: str) -> str:
    return f"ALTER COLUMN {column} SET NOT NULL"


def fill_default_sql(column: str) -> str:
    """Give a half-applied column's NULLs the default before it becomes NOT NULL."""
    return f"UPDATE {EVENTS} SET {column} = {schema.V7_COLUMNS[column][2]} WHERE {column} IS NULL"


def check_clause(name: str, *, not_valid: bool = False, condition: str | None = None) -> str:
    """ADD CONSTRAINT ... CHECK; NOT VALID adds it without scanning the table (VALIDATE scans later)."""
    check = condition if condition is not None else schema.V7_CHECK_CONSTRAINTS[name]
    return f"ADD CONSTRAINT {name} CHECK ({check})" + (" NOT VALID" if not_valid else "")


def validate_sql(constraint: str) -> str:
    return alter_events_sql(f"VALIDATE CONSTRAINT {constraint}")


def drop_constraint_sql(constraint: str) -> str:
    return alter_events_sql(f"DROP CONSTRAINT {constraint}")


# A temporary check on a column lets SET NOT NULL skip its full-table scan (online path).
NOT_NULL_CHECK_PREFIX = "dlq_tui_online_nn_"


def not_null_check(column: str) -> str:
    return NOT_NULL_CHECK_PREFIX + column


def not_null_sql(column: str, *, check_exists: bool) -> list[str]:
    """SET NOT NULL without its full-table scan under an exclusive lock (online path).

    A NOT VALID check is validated under a lock writers pass; SET NOT NULL then trusts it.
    """
    check = not_null_check(column)
    statements = [fill_default_sql(column)]
    if not check_exists:
        statements.append(alter_events_sql(check_clause(check, not_valid=True, condition=f"{column} IS NOT NULL")))
    return [*statements, validate_sql(check), alter_events_sql(set_not_null_clause(column)), drop_constraint_sql(check)]


def unique_clause() -> str:
    return f"ADD CONSTRAINT {UNIQUE} UNIQUE (idempotency_key)"


def attach_unique_sql() -> str:
    """Make the unique index a constraint without rebuilding it (a brief lock, no scan)."""
    return alter_events_sql(f"ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE}")


# --- backfill ----------------------------------------------------------------------------------------
def rewrite_fill_sql() -> str:
    """One pass, compact result: a table rewrite computes both values per row.

    The key needs the checksum, so the payload hash appears twice; hashing is cheap next to writing
    the table.
    """
    checksum = f"coalesce(payload_checksum, {HASH_SQL})"
    return (
        f"ALTER TABLE {EVENTS}\n"
        f"    ALTER COLUMN payload_checksum TYPE VARCHAR(64) USING {checksum},\n"
        "    ALTER COLUMN idempotency_key TYPE VARCHAR(128) USING "
        f"coalesce(idempotency_key, {key_sql(checksum)})"
    )


def backfill_totals_sql(lacking: str = LACKING) -> str:
    """(rows, rows to fill, first id); a dry run passes "true" for columns it only pretends to have added."""
    return f"SELECT count(*), count(*) FILTER (WHERE {lacking}), min(id) FROM {EVENTS}"


BATCH_END_SQL = f"SELECT max(id) FROM (SELECT id FROM {EVENTS} WHERE id > :lo ORDER BY id LIMIT :n) b"
# Before the unique index exists every row simply gets its key; duplicates are settled afterwards.
FILL_RANGE_SQL = f"""UPDATE {EVENTS}
SET payload_checksum = coalesce(payload_checksum, {HASH_SQL}),
    idempotency_key = coalesce(idempotency_key, {key_sql(f"coalesce(payload_checksum, {HASH_SQL})")})
WHERE id > :lo AND id <= :hi AND {LACKING}"""
LACKING_IDS_SQL = f"SELECT id FROM {EVENTS} WHERE {LACKING} AND id > :lo ORDER BY id LIMIT :n"


def fill_keys_sql(scope: Literal["lacking", "ids"]) -> str:
    """Fill checksum and key of rows lacking them, safely next to existing keys (and a unique one).

    scope "lacking": every such row; "ids": those among :ids (a keyset batch). The oldest row
    (created_at, id) among rows sharing a key gets it unless a row already holds it; the others keep
    NULL. Rows whose values would not change are not touched (no trigger, no bloat). Returns one row:
    (rows updated, rows among them left without key).

    "Already held" is a NOT EXISTS anti-join at WHERE level, not a test inside CASE: the planner can
    then hash it or probe the key index, where a per-row subplan over a table without that index
    (the atomic path's fallback) rescans the table for every row once its keys outgrow work_mem.
    """
    where = LACKING if scope == "lacking" else f"id = ANY(CAST(:ids AS integer[])) AND {LACKING}"
    return f"""WITH todo AS MATERIALIZED (
    SELECT id, created_at, source, source_offset, idempotency_key AS old_key,
           coalesce(payload_checksum, {HASH_SQL}) AS ck
    FROM {EVENTS} WHERE {where}
), keyed AS (
    SELECT t.id, t.ck, t.old_key, coalesce(t.old_key, {key_sql("t.ck", "t")}) AS k, t.created_at FROM todo t
), ranked AS (
    SELECT id, ck, old_key, k, row_number() OVER (PARTITION BY k ORDER BY created_at, id) AS rn FROM keyed
), winners AS (
    SELECT id, k FROM ranked r
    WHERE rn = 1 AND old_key IS NULL AND NOT EXISTS (SELECT 1 FROM {EVENTS} e WHERE e.idempotency_key = r.k)
), decided AS (
    SELECT r.id, r.ck, coalesce(r.old_key, w.k) AS new_key FROM ranked r LEFT JOIN winners w ON w.id = r.id
), upd AS (
    UPDATE {EVENTS} d SET payload_checksum = x.ck, idempotency_key = x.new_key
    FROM decided x
    WHERE d.id = x.id AND (d.payload_checksum IS DISTINCT FROM x.ck OR d.idempotency_key IS DISTINCT FROM x.new_key)
    RETURNING d.idempotency_key IS NULL AS keyless
)
SELECT count(*), count(*) FILTER (WHERE keyless) FROM upd"""


CLEAR_DUPLICATES_SQL = f"""WITH ranked AS (
    -- COLLATE "C": byte-wise equality is what matters for hex keys, and it sorts several times faster.
    SELECT id, row_number() OVER (PARTITION BY idempotency_key COLLATE "C" ORDER BY created_at, id) AS rn
    FROM {EVENTS} WHERE idempotency_key IS NOT NULL
), upd AS (
    UPDATE {EVENTS} d SET idempotency_key = NULL FROM ranked r WHERE d.id = r.id AND r.rn > 1 RETURNING 1
)
SELECT count(*) FROM upd"""


# --- indexes -------------------------------------------------------------------------------------------
def _index_sql(name: str, columns: tuple[str, ...], *, concurrently: bool, unique: bool = False) -> str:
    how = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
    return f"{how}{' CONCURRENTLY' if concurrently else ''} {name} ON {EVENTS} ({', '.join(columns)})"


def event_index_sql(name: str, *, concurrently: bool = False) -> str:
    """CREATE INDEX for one of the spec's 8 event indexes (CONCURRENTLY for the online path)."""
    return _index_sql(name, schema.V7_EVENT_INDEXES[name], concurrently=concurrently)


def paging_index_sql(name: str, *, concurrently: bool = False) -> str:
    """CREATE INDEX for one of dlq-tui's own indexes, schema.OWN_INDEXES (CONCURRENTLY for the online path)."""
    columns, include, where = schema.OWN_INDEXES[name]
    return (
        _index_sql(name, columns, concurrently=concurrently)
        + (f" INCLUDE ({', '.join(include)})" if include else "")
        + (f" WHERE {where}" if where else "")
    )


def unique_index_sql() -> str:
    """The unique constraint's index built without blocking writers; attach_unique_sql() adopts it."""
    return _index_sql(UNIQUE, ("idempotency_key",), concurrently=True, unique=True)


def drop_index_sql(name: str, *, concurrently: bool = True) -> str:
    """Drops what an interrupted concurrent build left INVALID (inside a transaction: not concurrently)."""
    return f"DROP INDEX {'CONCURRENTLY ' if concurrently else ''}IF EXISTS {name}"


# --- view, triggers, marker, locks ---------------------------------------------------------------------
def drop_view_sql() -> str:
    return f"DROP VIEW {schema.HEALTH_VIEW}"


def trigger_sql(trigger: str) -> str:
    return (
        f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {schema.UPDATED_AT_TRIGGERS[trigger]} "
        f"FOR EACH ROW EXECUTE FUNCTION {schema.UPDATED_AT_FUNCTION}()"
    )


MARKER_INSERT_SQL = "INSERT INTO schema_state (key, value) VALUES (:k, :v)"
MARKER_UPDATE_SQL = "UPDATE schema_state SET value = :v WHERE key = :k"
# Readers pass; writers wait only for the last few rows the final online transaction fills.
FINAL_LOCK_SQL = f"LOCK TABLE {EVENTS} IN SHARE MODE"


def lock_timeout_sql(ms: int, *, local: bool = True) -> str:
    return f"SET {'LOCAL ' if local else ''}lock_timeout = {int(ms)}"
