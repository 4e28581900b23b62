"""Redrive: a repaired dead letter goes into the pipeline's `raw_events` table and the dead letter is resolved.

A redrive writes the row the pipeline's loader would have written for that log line, and nothing it would not:

* The target is read from the catalog every run (`inspect_target`): the columns the pipeline writes, their types
  (`event_timestamp` is varchar(64) in older databases and timestamptz from the pipeline's v12 on; both are
  written), and a unique key on (source, source_inode, source_generation, source_offset), as a constraint or a
  unique index. A missing table, column or key makes redrive unavailable with one line naming it.
* `source_inode` is never made up: it is the most common inode among the loader's own rows of the same source
  (generation 0, not the path the pipeline's own repair writes there), or NULL when there is none.
* `risk_score` is 50, what the pipeline's own dead-letter repair writes for a repaired event; `quarantined` is
  false, `source_generation` 0, `ingest_at` now(); the rest comes from the dead letter and the event.

Per batch of ids, one transaction: lock the dead letters (FOR UPDATE SKIP LOCKED, free or mine, as every triage
action does), repair each, write the raw_events rows, resolve the dead letters as `operator_redriven` with an
`operator:redrive` audit entry (raw_events id, repair status and steps), commit. A dead letter whose repair is not
usable stays untouched and is reported with its reason.

Idempotency. NULLs are distinct in the unique key, so a row with source_inode NULL never conflicts; instead:
1. a dead letter resolved as operator_redriven is never redriven again, and one reopened after a redrive is linked
   to the raw_events row its audit entry names (if that row still exists) instead of getting a second one;
2. before inserting, raw_events is searched for the same line (source, generation 0, offset; inode = the inferred
   one or NULL): the same event there (same payload_hash) is linked, a different event there blocks the redrive;
3. a transaction-level advisory lock per (source, offset) serialises two sessions redriving two dead letters of
   the same line, so the second one sees the first one's row;
4. ON CONFLICT DO NOTHING on the unique key is the backstop against the loader writing the line meanwhile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, RowMapping, insert, select, text
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.db.errors import first_line
from dlq_tui.db.models import ActionResult, EventFilter
from dlq_tui.db.queries import filter_conditions
from dlq_tui.db.triage import (
    _FREE_OR_MINE,
    _HOLDER,
    _IN_IDS,
    _TABLE,
    _UNLOCK,
    BATCH_SIZE,
    BUSY,
    NO_SUCH_EVENT,
    ActionRefused,
    Operator,
    _Action,
    _held_until,
    _transaction,
    _unique_ids,
)
from dlq_tui.repair import AMBIGUOUS, MAX_TEXT_BYTES, REFUSED, RepairResult, raw_event_fields, repair_payload
from dlq_tui.text import json_nesting_exceeds, plain

RAW_EVENTS = "raw_events"
UNIQUE_COLUMNS: tuple[str, ...] = ("source", "source_inode", "source_generation", "source_offset")
RESOLUTION_METHOD = "operator_redriven"
AUDIT_METHOD = "operator:redrive"
METRICS_METHOD = "dlq_tui_redrive"
RISK_SCORE = 50  # what the pipeline's own dead-letter repair scores a repaired event
SOURCE_GENERATION = 0
# A payload is parsed only up to this size: the repair itself looks at no more than MAX_TEXT_BYTES of text, and
# the JSON around it (and its escapes) can at most double or so that; beyond it the payload is refused unparsed.
PAYLOAD_CAP_CHARS = 4 * MAX_TEXT_BYTES
PREVIEW_HEAD_CHARS = 20_000
_ADVISORY_NAMESPACE = 0x646C7172  # "dlqr": keeps our per-line advisory locks apart from anyone else's
_AUDIT_TEXT_LIMIT = 300

TimestampType = Literal["text", "timestamptz"]

# Skip reasons (short, so that a notification can group them); per-event specifics go into `details`.
NOT_REPAIRABLE = "not repairable"
NEEDS_DECISION = "ambiguous: needs an operator's decision in the preview"
SEVERAL_EVENTS = "several objects in one dead letter: it can only become one event"
CHANGED_SINCE_PREVIEW = "the payload changed since the preview"
ALREADY_REDRIVEN = "already redriven"
ALREADY_RESOLVED = "already resolved"
NO_SOURCE = "no source (raw_events.source may not be NULL)"
LINE_TAKEN = "raw_events holds another event for this line"
LINE_RACED = "a row for this line appeared in raw_events meanwhile: try again"
DATABASE_REFUSED = "the database refused it"

_TEXT = ("character varying", "text")
_INTEGER = ("smallint", "integer", "bigint")
_TIMESTAMPTZ = "timestamp with time zone"
# The columns of the pipeline's raw_events (the ones redrive writes, and id) -> the types that can hold them.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": _INTEGER,
    "ingest_id": _TEXT,
    "ingest_at": (_TIMESTAMPTZ, "timestamp without time zone"),
    "source": _TEXT,
    "source_offset": _INTEGER,
    "source_inode": _TEXT,
    "source_generation": _INTEGER,
    "payload": ("json", "jsonb"),
    "payload_hash": _TEXT,
    "risk_score": _INTEGER,
    "quarantined": ("boolean",),
    "session_id": _TEXT,
    "event_type": _TEXT,
    "event_timestamp": (*_TEXT, _TIMESTAMPTZ),
}


class RedriveRefused(ActionRefused):
    """Nothing (more) can be redriven in this run; `connection_lost` tells a fault of the link from a refusal."""

    def __init__(self, message: str, result: ActionResult | None = None, *, connection_lost: bool = False) -> None:
        super().__init__(message, result)
        self.connection_lost = connection_lost


# --- the target --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the catalog says about raw_events.

    problem: the table's shape does not take a row as the pipeline writes it (one line), else None.
    refusal: this session may not write it (read-only, a privilege missing; one line), else None.
    """

    problem: str | None
    refusal: str | None = None
    timestamp_type: TimestampType = "text"
    payload_type: str = "json"
    unique_key: str = ""  # e.g. "constraint uq_raw_events_source_offset"

    @property
    def blocked(self) -> str | None:
        return self.problem or self.refusal


_COLUMNS_SQL = text(
    "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,"
    " (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default"
    " FROM pg_catalog.pg_attribute a WHERE a.attrelid = CAST(:oid AS oid) AND a.attnum > 0 AND NOT a.attisdropped"
)
# Keys ON CONFLICT can use: unique, immediate, valid, not partial, plain columns. Constraint name when it is one.
_KEYS_SQL = text(
    "SELECT ic.relname AS index_name, con.conname AS constraint_name,"
    " ARRAY(SELECT a.attname FROM unnest(i.indkey) AS k(attnum)"
    "       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS columns"
    " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
    " LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('u', 'p')"
    " WHERE i.indrelid = CAST(:oid AS oid) AND i.indisunique AND i.indimmediate AND i.indisvalid"
    " AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY con.conname NULLS LAST, ic.relname"
)
_ACCESS_SQL = text(
    "SELECT current_setting('transaction_read_only') = 'on' AS read_only,"
    " has_table_privilege(CAST(:oid AS oid), 'INSERT') AS may_insert,"
    " (SELECT has_sequence_privilege(s, 'USAGE') FROM pg_get_serial_sequence(:qualified, 'id') AS s"
    "  WHERE s IS NOT NULL) AS may_use_sequence,"
    " has_table_privilege(CAST(:dlq AS regclass), 'UPDATE') AS may_update_events,"
    " has_table_privilege(CAST(:metrics AS regclass), 'INSERT') AS may_record_runs"
)


def _base_type(formatted: str) -> str:
    return formatted.split("(", 1)[0].strip()


def inspect_target(conn: Connection) -> Target:
    """raw_events as the catalog has it: may a row be written as the pipeline writes it, and may we write it?"""
    found = conn.execute(
        text(
            "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = :name AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid)"
        ),
        {"name": RAW_EVENTS},
    ).first()
    if found is None:
        return Target(f"there is no {RAW_EVENTS} table (the pipeline's event table) in this database")
    oid, qualified = found
    columns = {r["name"]: r for r in conn.execute(_COLUMNS_SQL, {"oid": oid}).mappings()}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        return Target(f"{RAW_EVENTS} has no {noun} {', '.join(missing)}")
    for name, accepted in REQUIRED_COLUMNS.items():
        if _base_type(columns[name]["type"]) not in accepted:
            return Target(f"{RAW_EVENTS}.{name} is {columns[name]['type']}, not {' or '.join(accepted)}")
    if not columns["id"]["has_default"]:
        return Target(f"{RAW_EVENTS}.id has no default (no sequence to number new rows)")
    for name, col in columns.items():
        if name not in REQUIRED_COLUMNS and col["not_null"] and not col["has_default"]:
            return Target(
                f"{RAW_EVENTS}.{name} may not be NULL and has no default: the pipeline's rows have no such column"
            )
    key = None
    for row in conn.execute(_KEYS_SQL, {"oid": oid}).mappings():
        if sorted(row["columns"]) == sorted(UNIQUE_COLUMNS):
            key = f"constraint {row['constraint_name']}" if row["constraint_name"] else f"index {row['index_name']}"
            break
    if key is None:
        return Target(f"{RAW_EVENTS} has no unique key on ({', '.join(UNIQUE_COLUMNS)})")
    stamp: TimestampType = "timestamptz" if _base_type(columns["event_timestamp"]["type"]) == _TIMESTAMPTZ else "text"
    payload_type = _base_type(columns["payload"]["type"])
    access = conn.execute(
        _ACCESS_SQL,
        {
            "oid": oid,
            "qualified": qualified,
            "dlq": schema.dead_letter_events.name,
            "metrics": schema.dlq_processing_metrics.name,
        },
    ).one()
    refusal = None
    if access.read_only:
        refusal = "the database session is read-only: nothing is written"
    elif not access.may_insert:
        refusal = f"your database role may not INSERT into {RAW_EVENTS}"
    elif access.may_use_sequence is False:
        refusal = f"your database role may not use the sequence of {RAW_EVENTS}.id"
    elif not access.may_update_events:
        refusal = "your database role may not change events: permission denied on dead_letter_events"
    elif not access.may_record_runs:
        refusal = "your database role may not INSERT into dlq_processing_metrics (one row per redrive run)"
    return Target(None, refusal, stamp, payload_type, key)


# --- what a redrive writes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """The raw_events row a redrive writes, or the existing row it links to (existing_id)."""

    source: str
    source_offset: int | None
    source_inode: str | None
    inode_basis: str  # how source_inode was chosen, for the operator
    ingest_id: str | None
    session_id: str | None
    event_type: str | None
    event_timestamp: str | datetime | None  # text or an aware datetime, as the column's type wants
    timestamp_type: TimestampType
    payload_hash: str
    payload: dict[str, Any]
    source_generation: int = SOURCE_GENERATION
    risk_score: int = RISK_SCORE
    quarantined: bool = False
    existing_id: int | None = None  # the same event already is in raw_events: linked, not inserted
    taken_by: int | None = None  # a different event holds this line: redrive refused


@dataclass
class RedriveResult(ActionResult):
    """Per event: done (redriven, or in a dry run: would be), skipped with a short reason, or failed.

    details: the specifics of a skip or a failure (a repair's reason, a raw_events row id); raw_ids: dead letter ->
    raw_events id of each done event; existing: done events linked to a row that was already there.
    """

    dry_run: bool = False
    failed: dict[int, str] = field(default_factory=dict)
    details: dict[int, str] = field(default_factory=dict)
    raw_ids: dict[int, int] = field(default_factory=dict)
    existing: set[int] = field(default_factory=set)
    statuses: dict[int, str] = field(default_factory=dict)  # repair status of every event repaired
    destinations: dict[int, Destination] = field(default_factory=dict)  # dry run: where each would go
    run_id: str = ""
    duration_s: float = 0.0
    metrics_recorded: bool = False

    @property
    def summary(self) -> str:
        if self.dry_run:
            text_ = f"redrive (dry run): {len(self.done)} would be redriven"
            if self.skipped:
                text_ += f", {len(self.skipped)} would not"
        else:
            text_ = f"redrive: {len(self.done)} redriven"
            if self.existing:
                text_ += f" ({len(self.existing)} already in {RAW_EVENTS})"
            if self.skipped:
                text_ += f", {len(self.skipped)} not redriven"
        if self.failed:
            text_ += f", {len(self.failed)} failed"
        return text_

    def skip(self, event_id: int, reason: str, detail: str | None = None) -> None:
        self.skipped[event_id] = reason
        if detail:
            self.details[event_id] = detail


Checkpoint = Callable[[str, Connection], None]
Progress = Callable[[int, int], None]


# --- reading dead letters ----------------------------------------------------------------------------------------

# The raw_events id named by the last operator:redrive entry of the audit trail (a reopened event keeps it).
_PRIOR_RAW_ID = (
    "(SELECT CAST(e.value ->> 'raw_events_id' AS bigint) FROM jsonb_array_elements(CASE"
    " WHEN jsonb_typeof(d.processing_attempts) = 'array' THEN d.processing_attempts ELSE '[]'::jsonb END)"
    " WITH ORDINALITY AS e(value, n)"
    f" WHERE jsonb_typeof(e.value) = 'object' AND e.value ->> 'method' = '{AUDIT_METHOD}'"
    " AND (e.value ->> 'raw_events_id') ~ '^[0-9]{1,18}$' ORDER BY e.n DESC LIMIT 1)"
)


def _rows_sql(*, lock: bool) -> str:
    """Dead letters by id with what a redrive needs; lock=True takes only the free-or-mine unresolved ones."""
    where = _IN_IDS + (f" AND {_FREE_OR_MINE} AND NOT d.resolved" if lock else "")
    return (
        "SELECT d.id, d.ingest_id, d.source, d.source_offset, d.reason, d.resolved, d.resolution_method,"
        f" d.lock_expires_at, NOT {_FREE_OR_MINE} AS held, {_PRIOR_RAW_ID} AS prior_raw_id,"
        f" CASE WHEN d.processing_lock IS NOT NULL THEN {_HOLDER} END AS holder,"
        " octet_length(p.t) AS payload_bytes, length(p.t) > CAST(:cap AS integer) AS payload_cut,"
        " CASE WHEN length(p.t) <= CAST(:cap AS integer) THEN p.t ELSE left(p.t, CAST(:head AS integer)) END"
        " AS payload_text"
        f" FROM {_TABLE} AS d CROSS JOIN LATERAL (SELECT CAST(d.payload AS text) AS t) AS p WHERE {where}"
        + (" FOR UPDATE OF d SKIP LOCKED" if lock else "")
    )


_LOCK_ROWS = text(_rows_sql(lock=True))
_READ_ROWS = text(_rows_sql(lock=False))


def repair_stored(payload_text: str, cut: bool, total_bytes: int) -> RepairResult:
    """The verdict on a payload as stored (its json text); a payload too big to look at is refused unparsed."""
    if cut:
        reason = f"the payload is {total_bytes} bytes: larger than a repair looks at ({MAX_TEXT_BYTES // 1024} KB)"
        return RepairResult(REFUSED, None, "", reason=reason)
    if not json_nesting_exceeds(payload_text, 64):
        try:
            return repair_payload(json.loads(payload_text))
        except (ValueError, RecursionError):
            pass
    return repair_payload(payload_text)  # the repair refuses what nests too deep, with its own reason


def _skip_reason(row: RowMapping, op: Operator) -> tuple[str, str | None]:
    """Why a dead letter the locking read did not return is not redriven."""
    if row["resolved"]:
        if row["resolution_method"] == RESOLUTION_METHOD:
            prior = row["prior_raw_id"]
            return ALREADY_REDRIVEN, (f"as {RAW_EVENTS} row {prior}" if prior is not None else None)
        return ALREADY_RESOLVED, row["resolution_method"]
    if row["held"]:
        return _held_until(row, op), None
    return BUSY, None


# --- source_inode ------------------------------------------------------------------------------------------------

_INODES_SQL = text(
    "SELECT s.source, i.inode, i.n, (SELECT count(*) FROM raw_events r2 WHERE r2.source = s.source"
    "  AND r2.source_generation = 0) AS total"
    " FROM unnest(CAST(:sources AS text[])) AS s(source) LEFT JOIN LATERAL ("
    "  SELECT r.source_inode AS inode, count(*) AS n FROM raw_events r WHERE r.source = s.source"
    "  AND r.source_generation = 0 AND r.source_inode IS NOT NULL AND r.source_inode <> r.source"
    "  GROUP BY r.source_inode ORDER BY count(*) DESC, r.source_inode LIMIT 1) AS i ON true"
)


@dataclass(frozen=True)
class _Inode:
    inode: str | None
    basis: str


def _infer_inodes(conn: Connection, sources: Iterable[str], cache: dict[str, _Inode]) -> None:
    wanted = sorted({s for s in sources if s not in cache})
    if not wanted:
        return
    for row in conn.execute(_INODES_SQL, {"sources": wanted}).mappings():
        if row["inode"] is not None:
            basis = (
                f"the most common inode of this source's {row['total']:,} rows in {RAW_EVENTS} ({row['n']:,} have it)"
            )
        elif row["total"]:
            basis = f"none of this source's {row['total']:,} rows in {RAW_EVENTS} has a real inode: NULL"
        else:
            basis = f"no row of this source in {RAW_EVENTS} to take an inode from: NULL"
        cache[row["source"]] = _Inode(row["inode"], basis)


# --- existing rows of the same line ------------------------------------------------------------------------------

# Four exact index lookups per candidate (inode = the inferred one | NULL) x (offset = the offset | both NULL), so
# the unique index serves each; ordered so the same event (same hash) comes first.
_LINE_SQL = text(
    "SELECT c.n, r.id, r.payload_hash = c.hash AS same"
    " FROM unnest(CAST(:sources AS text[]), CAST(:offsets AS bigint[]), CAST(:inodes AS text[]),"
    "  CAST(:hashes AS text[])) WITH ORDINALITY AS c(source, off, inode, hash, n)"
    " JOIN LATERAL ("
    "  SELECT r.id, r.payload_hash FROM raw_events r WHERE r.source = c.source AND r.source_inode = c.inode"
    "   AND r.source_generation = 0 AND r.source_offset = c.off"
    "  UNION ALL SELECT r.id, r.payload_hash FROM raw_events r WHERE r.source = c.source AND r.source_inode IS NULL"
    "   AND r.source_generation = 0 AND r.source_offset = c.off"
    "  UNION ALL SELECT r.id, r.payload_hash FROM raw_events r WHERE c.off IS NULL AND r.source = c.source"
    "   AND r.source_inode = c.inode AND r.source_generation = 0 AND r.source_offset IS NULL"
    "   AND r.payload_hash = c.hash"
    "  UNION ALL SELECT r.id, r.payload_hash FROM raw_events r WHERE c.off IS NULL AND r.source = c.source"
    "   AND r.source_inode IS NULL AND r.source_generation = 0 AND r.source_offset IS NULL"
    "   AND r.payload_hash = c.hash"
    " ) AS r ON true ORDER BY c.n, same DESC, r.id"
)
_LINE_LOCKS_SQL = text(
    "SELECT pg_advisory_xact_lock(CAST(:ns AS integer), k.key) FROM ("
    " SELECT DISTINCT hashtext(c.source || ':' || coalesce(CAST(c.off AS text), '')) AS key"
    " FROM unnest(CAST(:sources AS text[]), CAST(:offsets AS bigint[])) AS c(source, off) ORDER BY 1) AS k"
)
_EXISTING_IDS_SQL = text("SELECT id FROM raw_events WHERE id = ANY(CAST(:ids AS bigint[]))")


def _insert_sql(target: Target) -> Any:
    stamp = "timestamptz" if target.timestamp_type == "timestamptz" else "text"
    payload = "jsonb" if target.payload_type == "jsonb" else "json"
    return text(
        "INSERT INTO raw_events (ingest_id, ingest_at, source, source_offset, source_inode, source_generation,"
        " payload, payload_hash, risk_score, quarantined, session_id, event_type, event_timestamp)"
        f" SELECT v.ingest_id, now(), v.source, v.source_offset, v.source_inode, {SOURCE_GENERATION},"
        f" CAST(v.payload AS {payload}), v.payload_hash, {RISK_SCORE}, false, v.session_id, v.event_type,"
        f" CAST(v.event_timestamp AS {stamp})"
        " FROM unnest(CAST(:ingest_ids AS text[]), CAST(:sources AS text[]), CAST(:offsets AS bigint[]),"
        " CAST(:inodes AS text[]), CAST(:payloads AS text[]), CAST(:hashes AS text[]), CAST(:sessions AS text[]),"
        " CAST(:types AS text[]), CAST(:stamps AS text[]))"
        " AS v(ingest_id, source, source_offset, source_inode, payload, payload_hash, session_id, event_type,"
        " event_timestamp)"
        f" ON CONFLICT ({', '.join(UNIQUE_COLUMNS)}) DO NOTHING"
        " RETURNING id, source, source_offset, payload_hash"
    )


# Resolving: triage's own statement (lock rules, audit entry with the changed columns), with the redrive's facts
# added to the entry from a per-event JSON map.
def _fact(key: str) -> str:
    return f"(CAST(:facts AS jsonb) -> CAST(d.id AS text) -> '{key}')"


_RESOLVE = _Action(
    "redrive",
    {"resolved": "true", "resolved_at": "now()", "resolution_method": "CAST(:resolution AS varchar)", **_UNLOCK},
    eligible="NOT d.resolved",
    why_not=lambda row: ALREADY_RESOLVED,
    entry_extra={
        "raw_events_id": _fact("raw_events_id"),
        "raw_events_row": _fact("row"),
        "repair_status": _fact("status"),
        "repair_steps": _fact("steps"),
        "run": "CAST(:run AS text)",
    },
)
_RESOLVE_SQL = text(_RESOLVE.update_sql())


@dataclass
class _Candidate:
    row: RowMapping
    result: RepairResult
    dest: Destination

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def key(self) -> tuple[str, int | None, str]:
        return (self.dest.source, self.dest.source_offset, self.dest.payload_hash)


@dataclass
class _Done:
    raw_id: int | None  # None in a dry run for a row that would be new
    existing: bool
    repair: RepairResult


@dataclass
class _Run:
    engine: Engine
    op: Operator
    target: Target
    result: RedriveResult
    accept: Mapping[int, str]
    checkpoint: Checkpoint | None
    inodes: dict[str, _Inode] = field(default_factory=dict)
    batches_timed_out: int = 0


def _destination(row: RowMapping, result: RepairResult, target: Target, inode: _Inode) -> Destination:
    assert result.event is not None
    fields = raw_event_fields(result.event)
    stamp = fields["event_timestamp"] if target.timestamp_type == "timestamptz" else fields["event_timestamp_text"]
    return Destination(
        source=row["source"],
        source_offset=row["source_offset"],
        source_inode=inode.inode,
        inode_basis=inode.basis,
        ingest_id=row["ingest_id"],
        session_id=fields["session_id"],
        event_type=fields["event_type"],
        event_timestamp=stamp,
        timestamp_type=target.timestamp_type,
        payload_hash=fields["payload_hash"],
        payload=fields["payload"],
    )


def _unusable(row: RowMapping, result: RepairResult) -> tuple[str, str | None] | None:
    """Why this dead letter cannot be redriven whatever the operator decides (None: it can)."""
    if result.status == REFUSED:
        return NOT_REPAIRABLE, result.reason
    if result.event is None:
        return SEVERAL_EVENTS, "; ".join(result.warnings) or None
    if row["source"] is None:
        return NO_SOURCE, None
    return None


def _undecided(row: RowMapping, result: RepairResult, accept: Mapping[int, str]) -> tuple[str, str | None] | None:
    """An ambiguous repair goes only where the operator accepted exactly this event in the preview."""
    if result.status != AMBIGUOUS or result.event is None:
        return None
    accepted = accept.get(row["id"])
    if accepted is None:
        return NEEDS_DECISION, "; ".join(result.warnings) or None
    if accepted != raw_event_fields(result.event)["payload_hash"]:
        return CHANGED_SINCE_PREVIEW, None
    return None


def _safe_steps(result: RepairResult) -> list[str]:
    # Steps can quote attacker text; the audit column is jsonb, which takes no NUL and no lone surrogate.
    return [plain(step, limit=_AUDIT_TEXT_LIMIT) for step in result.steps]


def _link_lines(conn: Connection, dests: list[Destination]) -> dict[int, list[tuple[int, bool]]]:
    """Index into dests -> raw_events rows already at that line: (id, holds the same event)."""
    found: dict[int, list[tuple[int, bool]]] = {}
    if not dests:
        return found
    params = {
        "sources": [d.source for d in dests],
        "offsets": [d.source_offset for d in dests],
        "inodes": [d.source_inode for d in dests],
        "hashes": [d.payload_hash for d in dests],
    }
    for n, raw_id, same in conn.execute(_LINE_SQL, params):
        found.setdefault(int(n) - 1, []).append((int(raw_id), bool(same)))
    return found


@contextmanager
def _raw_events_faults() -> Iterator[None]:
    """A fault on raw_events in the middle of a batch names raw_events (triage's lines name dead_letter_events)."""
    try:
        yield
    except DBAPIError as exc:
        orig = exc.orig
        primary = first_line(exc)
        if isinstance(orig, pg_errors.InsufficientPrivilege):
            raise RedriveRefused(f"not redriven: your database role may not write {RAW_EVENTS} ({primary})") from exc
        if isinstance(orig, pg_errors.UndefinedTable | pg_errors.UndefinedColumn | pg_errors.UndefinedObject):
            raise RedriveRefused(f"not redriven: {RAW_EVENTS} changed while redriving ({primary})") from exc
        raise


def _read(
    run: _Run, conn: Connection, batch: list[int], outcome: dict[int, tuple[str, str | None]]
) -> list[RowMapping]:
    """The dead letters of the batch a redrive may take (locked unless a dry run); the others get their reason."""
    params = {"ids": batch, "token": run.op.lock_token, "cap": PAYLOAD_CAP_CHARS, "head": 0}
    if run.result.dry_run:
        rows = conn.execute(_READ_ROWS, params).mappings().all()
        usable = [r for r in rows if not r["held"] and not r["resolved"]]
        others = [r for r in rows if r["held"] or r["resolved"]]
    else:
        usable = list(conn.execute(_LOCK_ROWS, params).mappings().all())
        got = {r["id"] for r in usable}
        others = (
            [r for r in conn.execute(_READ_ROWS, params).mappings() if r["id"] not in got]
            if len(got) < len(batch)
            else []
        )
    for row in others:
        outcome[row["id"]] = _skip_reason(row, run.op)
    return usable


def _plan(
    run: _Run, conn: Connection, rows: list[RowMapping], outcome: dict[int, tuple[str, str | None]]
) -> list[_Candidate]:
    """Repair each dead letter; those that may go get where they go (source_inode inferred per source)."""
    repaired: list[tuple[RowMapping, RepairResult]] = []
    for row in rows:
        result = repair_stored(row["payload_text"], row["payload_cut"], row["payload_bytes"])
        run.result.statuses[row["id"]] = result.status
        why = _unusable(row, result) or _undecided(row, result, run.accept)
        if why is not None:
            outcome[row["id"]] = why
        else:
            repaired.append((row, result))
    _infer_inodes(conn, (row["source"] for row, _ in repaired), run.inodes)
    return [
        _Candidate(row, result, _destination(row, result, run.target, run.inodes[row["source"]]))
        for row, result in repaired
    ]


def _place(
    run: _Run,
    conn: Connection,
    cands: list[_Candidate],
    outcome: dict[int, tuple[str, str | None]],
    done: dict[int, _Done],
) -> None:
    """Link each candidate to the row already holding its event, or insert it (not in a dry run)."""
    dry = run.result.dry_run
    # A reopened event that was redriven before keeps its row.
    priors = sorted({c.row["prior_raw_id"] for c in cands if c.row["prior_raw_id"] is not None})
    alive = set(conn.execute(_EXISTING_IDS_SQL, {"ids": priors}).scalars()) if priors else set()
    fresh: list[_Candidate] = []
    for c in cands:
        if c.row["prior_raw_id"] in alive:
            done[c.id] = _Done(int(c.row["prior_raw_id"]), True, c.result)
        else:
            fresh.append(c)
    if fresh and not dry:
        lines = {"sources": [c.dest.source for c in fresh], "offsets": [c.dest.source_offset for c in fresh]}
        conn.execute(_LINE_LOCKS_SQL, {"ns": _ADVISORY_NAMESPACE, **lines})
    at_line = _link_lines(conn, [c.dest for c in fresh])
    inserts: list[_Candidate] = []
    first_of_key: dict[tuple[str, int | None, str], _Candidate] = {}
    first_of_line: dict[tuple[str, int], _Candidate] = {}
    twins: list[tuple[_Candidate, _Candidate]] = []  # the same event as an earlier dead letter of this batch
    for n, c in enumerate(fresh):
        here = at_line.get(n, [])
        same = next((raw_id for raw_id, is_same in here if is_same), None)
        line = (c.dest.source, c.dest.source_offset) if c.dest.source_offset is not None else None
        if same is not None:
            done[c.id] = _Done(same, True, c.result)
        elif here:
            outcome[c.id] = (LINE_TAKEN, f"{RAW_EVENTS} row {here[0][0]}")
        elif c.key in first_of_key:
            twins.append((c, first_of_key[c.key]))
        elif line is not None and line in first_of_line:
            outcome[c.id] = (LINE_TAKEN, f"dead letter {first_of_line[line].id} of this run holds another")
        else:
            first_of_key[c.key] = c
            if line is not None:
                first_of_line[line] = c
            inserts.append(c)
    if run.checkpoint is not None:
        run.checkpoint("looked", conn)
    new_ids: dict[tuple[str, int | None, str], int] = {}
    if inserts and not dry:
        dests = [c.dest for c in inserts]
        returned = conn.execute(
            _insert_sql(run.target),
            {
                "ingest_ids": [d.ingest_id for d in dests],
                "sources": [d.source for d in dests],
                "offsets": [d.source_offset for d in dests],
                "inodes": [d.source_inode for d in dests],
                "payloads": [json.dumps(d.payload) for d in dests],
                "hashes": [d.payload_hash for d in dests],
                "sessions": [d.session_id for d in dests],
                "types": [d.event_type for d in dests],
                "stamps": [_stamp_text(d.event_timestamp) for d in dests],
            },
        )
        new_ids = {(r.source, r.source_offset, r.payload_hash): int(r.id) for r in returned}
    for c in inserts:
        if dry:
            done[c.id] = _Done(None, False, c.result)
        elif c.key in new_ids:
            done[c.id] = _Done(new_ids[c.key], False, c.result)
        else:  # ON CONFLICT: the loader (or someone) wrote this line after our look
            outcome[c.id] = (LINE_RACED, None)
    for c, first in twins:
        if first.id in done:
            done[c.id] = _Done(done[first.id].raw_id, True, c.result)
        else:
            outcome[c.id] = outcome[first.id]


def _resolve(run: _Run, conn: Connection, done: dict[int, _Done]) -> None:
    facts = {
        str(event_id): {
            "raw_events_id": d.raw_id,
            "row": "existing" if d.existing else "new",
            "status": d.repair.status,
            "steps": _safe_steps(d.repair),
        }
        for event_id, d in done.items()
    }
    params = {
        "ids": sorted(done),
        "token": run.op.lock_token,
        "ttl": run.op.lock_ttl_minutes,
        "operator": run.op.name,
        "method": AUDIT_METHOD,
        "resolution": RESOLUTION_METHOD,
        "facts": json.dumps(facts),
        "run": run.result.run_id,
    }
    resolved = set(conn.execute(_RESOLVE_SQL, params).scalars())
    if resolved != set(done):  # cannot happen while we hold the row locks; never commit half of it
        raise RedriveRefused("not redriven: the dead letters changed under their lock; nothing was changed")


def _batch(run: _Run, batch: list[int]) -> None:
    """One transaction: lock, repair, write raw_events, resolve; or, in a dry run, the same without writing."""
    result = run.result
    outcome: dict[int, tuple[str, str | None]] = {}
    done: dict[int, _Done] = {}
    cands: list[_Candidate] = []
    with _transaction(run.engine, result) as conn:
        rows = _read(run, conn, batch, outcome)
        if run.checkpoint is not None:
            run.checkpoint("locked", conn)
        with _raw_events_faults():
            cands = _plan(run, conn, rows, outcome)
            _place(run, conn, cands, outcome, done)
        if run.checkpoint is not None:
            run.checkpoint("inserted", conn)
        if done and not result.dry_run:
            _resolve(run, conn, done)
    # Committed (in a dry run: only read). Record every id of the batch exactly once.
    dests = {c.id: c.dest for c in cands}
    for event_id in batch:
        if event_id in done:
            d = done[event_id]
            result.done.append(event_id)
            if d.raw_id is not None:
                result.raw_ids[event_id] = d.raw_id
            if d.existing:
                result.existing.add(event_id)
            if result.dry_run:
                result.destinations[event_id] = dests[event_id]
        elif event_id in outcome:
            result.skip(event_id, *outcome[event_id])
        else:
            result.skip(event_id, NO_SUCH_EVENT)


def _stamp_text(value: str | datetime | None) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _cause(exc: BaseException) -> BaseException | None:
    cause = exc.__cause__
    return cause.orig if isinstance(cause, DBAPIError) else None


def _lost(exc: BaseException) -> bool:
    cause = exc.__cause__
    if not isinstance(cause, DBAPIError):
        return False
    return isinstance(cause.orig, psycopg.OperationalError) or bool(cause.connection_invalidated)


def _data_fault(exc: BaseException) -> bool:
    """The database refused the batch's data (a constraint, a type, a trigger): worth trying event by event."""
    orig = _cause(exc)
    if orig is None or _lost(exc):
        return False
    stopping = (
        pg_errors.ReadOnlySqlTransaction,
        pg_errors.InsufficientPrivilege,
        pg_errors.LockNotAvailable,
        pg_errors.QueryCanceled,
        pg_errors.UndefinedTable,
        pg_errors.UndefinedColumn,
    )
    return not isinstance(orig, stopping)


def _run_batch(run: _Run, batch: list[int]) -> None:
    try:
        _batch(run, batch)
    except RedriveRefused as exc:
        exc.result = run.result
        raise
    except ActionRefused as exc:
        if _lost(exc):
            raise RedriveRefused(str(exc), run.result, connection_lost=True) from exc
        if isinstance(_cause(exc), pg_errors.LockNotAvailable):
            run.batches_timed_out += 1
            for event_id in batch:
                run.result.skip(event_id, BUSY, "another transaction holds a lock the redrive needs")
            return
        if not _data_fault(exc):
            raise RedriveRefused(str(exc), run.result) from exc
        if len(batch) == 1:
            orig = _cause(exc)
            diag = getattr(orig, "diag", None)
            said = [
                getattr(diag, "message_primary", None) or type(orig).__name__,
                getattr(diag, "message_detail", None),
            ]
            run.result.failed[batch[0]] = DATABASE_REFUSED
            run.result.details[batch[0]] = plain(": ".join(s for s in said if s), limit=_AUDIT_TEXT_LIMIT)
            return
        for event_id in batch:  # one bad event must not keep the others of its batch from being redriven
            _run_batch(run, [event_id])


# --- public ------------------------------------------------------------------------------------------------------


def redrive(
    engine: Engine,
    op: Operator,
    ids: Iterable[int],
    *,
    dry_run: bool = False,
    accept_ambiguous: Mapping[int, str] | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
) -> RedriveResult:
    """Redrive the dead letters `ids` (see the module doc); with dry_run, say what would happen and write nothing.

    accept_ambiguous: id -> the payload_hash of the ambiguous repair the operator accepted in the preview (any
    other ambiguous event is skipped, and so is an accepted one whose repair is no longer that event).
    progress(done, total) is called after each batch; checkpoint(phase, conn) inside each batch's transaction
    ("locked", "looked", "inserted") is for tests that break a batch half-way.
    Raises RedriveRefused when no redrive is possible (no target, read-only, no privilege) or the run stops (lost
    connection); its `result` holds what earlier batches did (committed, they stay done).
    """
    wanted = _unique_ids(ids)
    result = RedriveResult("redrive", dry_run=dry_run, run_id=f"dlq-tui-redrive-{uuid.uuid4().hex[:16]}")
    started = time.monotonic()
    try:
        with _transaction(engine, None) as conn:
            target = inspect_target(conn)
            started_at: datetime = conn.execute(text("SELECT now()")).scalar_one()
    except ActionRefused as exc:
        raise RedriveRefused(str(exc), result, connection_lost=_lost(exc)) from exc
    if target.problem is not None:
        raise RedriveRefused(f"redrive unavailable: {target.problem}", result)
    if target.refusal is not None and not dry_run:
        raise RedriveRefused(f"not redriven: {target.refusal}", result)
    run = _Run(engine, op, target, result, accept_ambiguous or {}, checkpoint)
    try:
        for start in range(0, len(wanted), BATCH_SIZE):
            _run_batch(run, wanted[start : start + BATCH_SIZE])
            if progress is not None:
                progress(min(start + BATCH_SIZE, len(wanted)), len(wanted))
    finally:
        result.duration_s = time.monotonic() - started
        if not dry_run and wanted:
            _record_run(run, started_at)
    return result


def _record_run(run: _Run, started_at: datetime) -> None:
    """One dlq_processing_metrics row per run, so the health screen lists operator redrives with the processor's.

    As the processor counts: processed = repaired + failed + skipped, where a repair that is refused is a failure.
    """
    result = run.result
    not_repairable = sum(1 for reason in result.skipped.values() if reason == NOT_REPAIRABLE)
    looked_at = len(result.done) + len(result.skipped) + len(result.failed)
    duration_ms = int(result.duration_s * 1000)
    values = {
        "processing_session_id": result.run_id,
        "processing_method": METRICS_METHOD,
        "batch_size": min(BATCH_SIZE, max(1, looked_at)),
        "processed_count": looked_at,
        "repaired_count": len(result.done),
        "failed_count": len(result.failed) + not_repairable,
        "skipped_count": len(result.skipped) - not_repairable,
        "processing_duration_ms": duration_ms,
        "avg_processing_time_ms": duration_ms // looked_at if looked_at else 0,
        "circuit_breaker_triggered": False,
        "rate_limit_hits": 0,
        "lock_timeout_count": run.batches_timed_out,
        "started_at": started_at,
        "completed_at": started_at + timedelta(seconds=result.duration_s),
    }
    try:
        with _transaction(run.engine, None) as conn:
            conn.execute(insert(schema.dlq_processing_metrics).values(**values))
    except ActionRefused:
        return  # the redrive itself is committed; result.metrics_recorded stays False and the caller says so
    result.metrics_recorded = True


# --- the preview -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairPreview:
    """One dead letter, its repair and where a redrive would put it. Reading it writes nothing."""

    event_id: int
    reason: str
    source: str | None
    source_offset: int | None
    ingest_id: str | None
    payload_text: str  # as stored; only its beginning when payload_cut
    payload_cut: bool
    payload_bytes: int
    result: RepairResult
    target: Target
    destination: Destination | None
    blocked: str | None  # why a redrive cannot happen now (None: it can, after a decision when ambiguous)

    @property
    def needs_decision(self) -> bool:
        return self.blocked is None and self.result.status == AMBIGUOUS


def preview(conn: Connection, op: Operator, event_id: int) -> RepairPreview | None:
    """The repair view of one dead letter (None when there is no such event). It runs the repair: call it off the
    UI thread. Nothing is written and nothing is locked."""
    params = {"ids": [event_id], "token": op.lock_token, "cap": PAYLOAD_CAP_CHARS, "head": PREVIEW_HEAD_CHARS}
    row = conn.execute(_READ_ROWS, params).mappings().first()
    if row is None:
        return None
    repaired = repair_stored(row["payload_text"], row["payload_cut"], row["payload_bytes"])
    target = inspect_target(conn)
    why = _skip_reason(row, op) if row["resolved"] or row["held"] else _unusable(row, repaired)
    dest: Destination | None = None
    if repaired.event is not None and row["source"] is not None and target.problem is None:
        inodes: dict[str, _Inode] = {}
        _infer_inodes(conn, [row["source"]], inodes)
        dest = _destination(row, repaired, target, inodes[row["source"]])
        prior = row["prior_raw_id"]
        if prior is not None and conn.execute(_EXISTING_IDS_SQL, {"ids": [prior]}).first() is not None:
            dest = replace(dest, existing_id=int(prior))
        else:
            here = _link_lines(conn, [dest]).get(0, [])
            same = next((raw_id for raw_id, is_same in here if is_same), None)
            if same is not None:
                dest = replace(dest, existing_id=same)
            elif here:
                dest = replace(dest, taken_by=here[0][0])
                why = why or (LINE_TAKEN, f"{RAW_EVENTS} row {here[0][0]}")
    if target.problem is not None:
        blocked: str | None = f"redrive unavailable: {target.problem}"
    elif why is not None:
        blocked = f"{why[0]} ({why[1]})" if why[1] else why[0]
    elif target.refusal is not None:
        blocked = f"not redriven: {target.refusal}"
    else:
        blocked = None
    return RepairPreview(
        event_id=row["id"],
        reason=row["reason"],
        source=row["source"],
        source_offset=row["source_offset"],
        ingest_id=row["ingest_id"],
        payload_text=row["payload_text"],
        payload_cut=row["payload_cut"],
        payload_bytes=row["payload_bytes"],
        result=repaired,
        target=target,
        destination=dest,
        blocked=blocked,
    )


def select_ids(conn: Connection, *, reason: str | None = None, limit: int | None = None) -> list[int]:
    """Pending events (optionally of one reason) in the events screen's order: what `dlq-tui redrive` selects."""
    ev = schema.dead_letter_events
    query = (
        select(ev.c.id)
        .where(*filter_conditions(EventFilter(reason=reason)))
        .order_by(ev.c.priority, ev.c.created_at, ev.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [int(i) for i in conn.execute(query).scalars()]
