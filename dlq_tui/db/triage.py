"""Write side: operator actions on dead_letter_events, safe next to other operators and the processor.

Every action is one UPDATE statement per batch of ids (one transaction per batch):

* The rows are picked by a ``SELECT ... FOR UPDATE SKIP LOCKED`` whose WHERE clause says "free, expired or
  mine" (plus the action's own precondition). Checking and writing in one statement means two operators can
  never both hold or both change an event; SKIP LOCKED means an operator never waits behind the processor's
  batch transaction: rows it has locked are reported as "busy, try again".
* The same statement appends one audit entry per event to ``processing_attempts`` (old -> new values of the
  columns that really changed). ``updated_at`` is left to the v7 trigger.
* Ids that were not changed get a reason from a second, non-locking read in the same transaction.
* One row the server cannot process (JSON it cannot convert, a trigger that raises) must not sink the others:
  each batch runs in a savepoint, and when the server refuses it for a row's data the batch is split in halves
  and retried, down to the single rows it refuses. Those are skipped with the server's reason; the rest is done.
  Hostile data costs about 2 * log2(batch) extra statements per bad row, normal batches one savepoint.

Requeue marking (so loops back into the DLQ are visible): besides the ``operator:requeue`` audit entry, the
event's ``metadata_json`` object gets ``operator_requeue_count`` (incremented), ``operator_requeued_at`` and
``operator_requeued_by``. The payload is never touched; ``retry_count`` stays the processor's business.

Lock holders (no schema change): each run of dlq-tui is its own holder with a random lock token, and every claim
writes the token into its audit entry (``changes.processing_lock.new``) next to the ``operator`` name. The holder
of a lock is the operator of the last ``operator:claim`` / ``operator:takeback`` entry that set the current token;
a lock no such entry set is the processor's (or another tool's). ``take_back`` lets an operator reclaim live locks
taken under the same ``--operator`` name by another session (a terminal lost with its SSH connection): audited as
``operator:takeback`` with the old token in ``changes.processing_lock.old``.

Expected database faults (read-only session, missing privilege, lost connection, lock timeout) become
ActionRefused with one line meant for the operator; invalid arguments are caller bugs and raise ValueError.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, RowMapping, text
from sqlalchemy.exc import DBAPIError

from dlq_tui.db.errors import SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, first_line, sqlstate_class
from dlq_tui.db.models import ActionResult
from dlq_tui.db.schema import CLASSIFICATIONS, dead_letter_events

BATCH_SIZE = 500  # ids per transaction for bulk actions
LOCK_TIMEOUT_MS = 2000  # waiting on a table lock (e.g. a running migration) fails fast instead of hanging
STATEMENT_TIMEOUT_MS = 30000  # backstop: a thread worker's query is not cancelled with the worker
NOTE_MAX_CHARS = 2000
LOCK_TTL_MAX_MINUTES = 7 * 24 * 60  # a claim outliving a week is a forgotten one, not a plan

READ_ONLY_MESSAGE = "dlq-tui is in read-only mode"
BUSY = "busy, try again"
NO_SUCH_EVENT = "no such event"
REFUSED = "refused by the database"  # a skip reason for one row the server would not change (see _apply)
# SQLSTATE classes of errors caused by one row's data (data exception, integrity, program limit such as the stack
# depth of deeply nested JSON, a trigger's RAISE, external routines, internal/corruption): worth isolating the row.
# Anything else (locks, timeouts, lost connections, privileges, our own SQL) concerns the whole batch.
_ROW_FAULT_CLASSES = frozenset({"22", "23", "54", "P0", "2F", "38", "39", "XX"})

# Stored resolution_method -> label. The processor writes `stored_proc_enhanced`; ours say who did it.
RESOLUTION_METHODS: dict[str, str] = {
    "operator_discarded": "Discarded",
    "operator_fixed_upstream": "Fixed upstream",
    "operator_duplicate": "Duplicate",
    "operator_false_positive": "False positive",
    "operator_reingest": "Re-ingest from source",  # the source file is fed to the pipeline again
}

# Keys of metadata_json that requeue maintains (the UI may show "requeued N times").
REQUEUE_COUNT_KEY = "operator_requeue_count"
REQUEUED_AT_KEY = "operator_requeued_at"
REQUEUED_BY_KEY = "operator_requeued_by"


class ActionRefused(Exception):
    """An action the database refused or could not run; str(exc) is one line for the operator.

    `result` holds what earlier batches of the same bulk action did (they are committed and stay done).
    """

    def __init__(self, message: str, result: ActionResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Operator:
    """Who acts. One lock_token per app session: the same person in two terminals is two lock holders."""

    name: str
    lock_token: uuid.UUID = field(default_factory=uuid.uuid4)
    lock_ttl_minutes: int = 30

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("operator name must not be empty")
        if not 1 <= self.lock_ttl_minutes <= LOCK_TTL_MAX_MINUTES:
            raise ValueError(f"lock TTL must be from 1 to {LOCK_TTL_MAX_MINUTES} minutes")


# PostgreSQL text cannot hold NUL, and a lone surrogate has no UTF-8 form: the driver would fail mid-action.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """The first character of `value` that PostgreSQL text cannot store, described for the operator; else None."""
    found = _UNSTORABLE_RE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a NUL character" if code == 0 else "a lone surrogate"
    return f"{kind} (U+{code:04X}, character {found.start() + 1})"


# --- SQL building blocks, shared with redrive.py (the row alias is always `d`) --------------------------

EVENTS = dead_letter_events.name
IN_IDS = "d.id = ANY(CAST(:ids AS bigint[]))"
# Held = lock set and expiry in the future (a NULL expiry is not "in the future": free, as the spec says).
FREE_OR_MINE = (
    "(d.processing_lock IS NULL OR d.lock_expires_at IS NULL OR d.lock_expires_at <= now()"
    " OR d.processing_lock = CAST(:token AS uuid))"
)
_NEW_EXPIRY = "now() + make_interval(mins => CAST(:ttl AS integer))"
# A claim and a take-back set the same lock: a token of this session, expiring after the lock TTL.
CLAIM_SETS = {"processing_lock": "CAST(:token AS uuid)", "lock_expires_at": _NEW_EXPIRY}
CLAIM_METHODS = ("operator:claim", "operator:takeback")  # audit methods that set a lock token
# The operator name of the current lock (see the module doc); NULL when no claim of ours set it. Entries that are
# not objects, or a history that is not an array, simply do not match.
HOLDER = (
    "(SELECT a.value ->> 'operator' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d.processing_attempts) = 'array'"
    " THEN d.processing_attempts ELSE '[]'::jsonb END) WITH ORDINALITY AS a(value, n)"
    f" WHERE a.value ->> 'method' IN ({', '.join(repr(m) for m in CLAIM_METHODS)})"
    " AND a.value #>> '{changes,processing_lock,new}' = CAST(d.processing_lock AS text)"
    " ORDER BY a.n DESC LIMIT 1)"
)
_HELD_ELSEWHERE = (
    "(d.processing_lock IS NOT NULL AND d.lock_expires_at > now() AND d.processing_lock <> CAST(:token AS uuid))"
)
# metadata_json is `json`: only an object (or NULL) can take our keys, and a \u0000 escape anywhere in it
# makes every operator that de-escapes (->>, casts to jsonb) fail, so such metadata is left alone.
_MARKABLE = (
    "(d.metadata_json IS NULL OR (json_typeof(d.metadata_json) = 'object'"
    " AND strpos(CAST(d.metadata_json AS text), '\\u0000') = 0))"
)
# CASE (unlike AND) evaluates in order: the count is read only from metadata that passed the check.
_OLD_REQUEUES = (
    f"CASE WHEN NOT {_MARKABLE} THEN 0"
    f" WHEN json_typeof(d.metadata_json -> '{REQUEUE_COUNT_KEY}') = 'number'"
    f" THEN CAST(d.metadata_json ->> '{REQUEUE_COUNT_KEY}' AS numeric) ELSE 0 END"
)
_REQUEUE_MARK = (
    f"jsonb_build_object('{REQUEUE_COUNT_KEY}', {_OLD_REQUEUES} + 1, '{REQUEUED_AT_KEY}', now(),"
    f" '{REQUEUED_BY_KEY}', CAST(:operator AS text))"
)
_MARKED_METADATA = (
    f"CASE WHEN {_MARKABLE} THEN CAST(COALESCE(CAST(d.metadata_json AS jsonb), '{{}}'::jsonb) || {_REQUEUE_MARK}"
    " AS json) ELSE d.metadata_json END"
)
_UNRESOLVE = {"resolved": "false", "resolved_at": "NULL", "resolution_method": "NULL"}
UNLOCK_SETS = {"processing_lock": "NULL", "lock_expires_at": "NULL"}


@dataclass(frozen=True)
class Action:
    name: str  # verb shown in results; the audit method is "operator:<name>"
    sets: dict[str, str]  # column -> SQL for the new value (column refs read the old row)
    why_not: Callable[[RowMapping], str]  # reason when the row is free but `eligible` is false
    eligible: str = "true"  # the action's precondition over the old row
    audit_extra: dict[str, tuple[str, str]] = field(default_factory=dict)  # change key -> (old SQL, new SQL)
    entry_extra: dict[str, str] = field(default_factory=dict)  # extra keys of the audit entry (e.g. note)
    json_reads: tuple[str, ...] = ()  # json columns the action converts to jsonb (named when the server refuses)
    guard: str = FREE_OR_MINE  # whose events the action may touch (take back: live locks of your other sessions)
    when_held: Callable[[RowMapping, Operator], str] | None = None  # reason when the guard is false (None: held)

    def changes_sql(self) -> str:
        """Only the columns whose value really changes go into the audit entry."""
        pairs = {col: (f"d.{col}", new) for col, new in self.sets.items() if col != "metadata_json"}
        pairs.update(self.audit_extra)
        args = ", ".join(f"'{k}', jsonb_build_object('old', {old}, 'new', {new})" for k, (old, new) in pairs.items())
        return (
            "(SELECT COALESCE(jsonb_object_agg(c.key, c.value), '{}'::jsonb)"
            f" FROM jsonb_each(jsonb_build_object({args})) AS c"
            " WHERE c.value -> 'old' IS DISTINCT FROM c.value -> 'new')"
        )

    def update_sql(self) -> str:
        entry = (
            "jsonb_build_object('timestamp', now(), 'method', CAST(:method AS text),"
            " 'operator', CAST(:operator AS text), 'success', true, 'changes', "
            + self.changes_sql()
            + "".join(f", '{k}', {v}" for k, v in self.entry_extra.items())
            + ")"
        )
        # A JSON null or a non-array left by someone else is kept (wrapped), never thrown away.
        history = (
            "CASE WHEN d.processing_attempts IS NULL OR jsonb_typeof(d.processing_attempts) = 'null'"
            " THEN '[]'::jsonb WHEN jsonb_typeof(d.processing_attempts) = 'array' THEN d.processing_attempts"
            " ELSE jsonb_build_array(d.processing_attempts) END"
        )
        assignments = [f"{col} = {new}" for col, new in self.sets.items()]
        assignments.append(f"processing_attempts = {history} || jsonb_build_array({entry})")
        return (
            f"WITH target AS (SELECT d.id FROM {EVENTS} AS d"
            f" WHERE {IN_IDS} AND {self.guard} AND ({self.eligible}) FOR UPDATE SKIP LOCKED)"
            f" UPDATE {EVENTS} AS d SET {', '.join(assignments)}"
            " FROM target WHERE d.id = target.id RETURNING d.id"
        )

    def reasons_sql(self) -> str:
        return (
            "SELECT d.id, d.processing_lock, d.lock_expires_at, d.resolved, d.classification, d.priority,"
            f" COALESCE(NOT {self.guard}, true) AS held, ({self.eligible}) AS eligible,"
            f" {_HELD_ELSEWHERE} AS held_elsewhere,"
            f" CASE WHEN d.processing_lock IS NOT NULL THEN {HOLDER} END AS holder"
            f" FROM {EVENTS} AS d WHERE {IN_IDS}"
        )


# --- public actions --------------------------------------------------------------------------------------


def claim(engine: Engine, op: Operator, ids: Iterable[int]) -> ActionResult:
    """Take the processing lock for op.lock_ttl_minutes; re-claiming your own lock extends it."""
    action = Action(
        "claim",
        CLAIM_SETS,
        eligible="NOT d.resolved",
        why_not=lambda row: "resolved",
    )
    return _run(engine, op, ids, action, {})


def release(engine: Engine, op: Operator, ids: Iterable[int]) -> ActionResult:
    """Clear the lock: your own, or an expired one (never a live lock of someone else)."""
    action = Action(
        "release", dict(UNLOCK_SETS), eligible="d.processing_lock IS NOT NULL", why_not=lambda r: "not locked"
    )
    return _run(engine, op, ids, action, {})


def classify(engine: Engine, op: Operator, ids: Iterable[int], classification: str | None) -> ActionResult:
    """Set the classification (one of CLASSIFICATIONS) or clear it with None."""
    if classification is not None and classification not in CLASSIFICATIONS:
        raise ValueError(f"classification must be one of {', '.join(CLASSIFICATIONS)} or None")
    action = Action(
        "classify",
        {"classification": "CAST(:classification AS varchar)"},
        eligible="d.classification IS DISTINCT FROM CAST(:classification AS varchar)",
        why_not=lambda row: f"already {row['classification']}" if row["classification"] else "already unclassified",
    )
    return _run(engine, op, ids, action, {"classification": classification})


def set_priority(engine: Engine, op: Operator, ids: Iterable[int], priority: int) -> ActionResult:
    """Set the priority, 1 (critical) .. 10."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise ValueError("priority must be an integer from 1 to 10")
    action = Action(
        "prioritize",
        {"priority": "CAST(:priority AS integer)"},
        eligible="d.priority <> CAST(:priority AS integer)",
        why_not=lambda row: f"already priority {row['priority']}",
    )
    return _run(engine, op, ids, action, {"priority": priority})


def checked_resolution(method: str, note: str | None) -> str | None:
    """The note as stored (stripped, None when empty); ValueError for a method or note no resolve may store."""
    if method not in RESOLUTION_METHODS:
        raise ValueError(f"resolution method must be one of {', '.join(RESOLUTION_METHODS)}")
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"note is longer than {NOTE_MAX_CHARS} characters")
    if note is not None and (problem := unstorable(note)) is not None:
        raise ValueError(f"note cannot hold {problem}")
    return note


def resolve(engine: Engine, op: Operator, ids: Iterable[int], method: str, note: str | None = None) -> ActionResult:
    """Mark resolved with one of RESOLUTION_METHODS (and an optional note in the audit entry); frees your lock."""
    note = checked_resolution(method, note)
    action = Action(
        "resolve",
        {
            "resolved": "true",
            "resolved_at": "now()",
            "resolution_method": "CAST(:resolution AS varchar)",
            **UNLOCK_SETS,
        },
        eligible="NOT d.resolved",
        why_not=lambda row: "already resolved",
        entry_extra={"note": "CAST(:note AS text)"},
    )
    return _run(engine, op, ids, action, {"resolution": method, "note": note})


def reopen(engine: Engine, op: Operator, ids: Iterable[int]) -> ActionResult:
    """Undo a resolve: unresolved again, resolved_at and resolution_method cleared."""
    action = Action("reopen", dict(_UNRESOLVE), eligible="d.resolved", why_not=lambda row: "not resolved")
    return _run(engine, op, ids, action, {})


def requeue(engine: Engine, op: Operator, ids: Iterable[int]) -> ActionResult:
    """Hand back to the processor: unresolved, lock cleared, requeue counted in metadata_json (see module doc)."""
    action = Action(
        "requeue",
        {**_UNRESOLVE, **UNLOCK_SETS, "metadata_json": _MARKED_METADATA},
        why_not=lambda row: BUSY,  # always eligible
        json_reads=("metadata_json",),
        audit_extra={
            f"metadata_json.{REQUEUE_COUNT_KEY}": (
                _OLD_REQUEUES,
                f"CASE WHEN {_MARKABLE} THEN {_OLD_REQUEUES} + 1 ELSE {_OLD_REQUEUES} END",
            )
        },
    )
    return _run(engine, op, ids, action, {})


def take_back(engine: Engine, op: Operator, ids: Iterable[int]) -> ActionResult:
    """Claim events whose live lock another session of the same operator name holds (see the module doc)."""
    action = Action(
        "takeback",
        CLAIM_SETS,
        eligible="NOT d.resolved",
        why_not=lambda row: "resolved",
        guard=f"({_HELD_ELSEWHERE} AND {HOLDER} = CAST(:operator AS text))",
        when_held=_not_yours_to_take_back,
    )
    return _run(engine, op, ids, action, {})


def _not_yours_to_take_back(row: RowMapping, op: Operator) -> str:
    if row["processing_lock"] == op.lock_token:
        return "already yours"
    if not row["held_elsewhere"]:
        return "not held by another session: claim it instead"
    holder = row["holder"]
    if holder is None:
        return "held by the processor (no operator claim in its audit)"
    return f"held by {holder}, not by {op.name}"


def held_claims(engine: Engine, op: Operator) -> list[int]:
    """The events whose live lock is op's own (this session's token), in id order."""
    with write_transaction(engine, None) as conn:
        found = conn.execute(
            text(
                f"SELECT d.id FROM {EVENTS} AS d WHERE d.processing_lock = CAST(:token AS uuid)"
                " AND d.lock_expires_at > now() ORDER BY d.id"
            ),
            {"token": op.lock_token},
        )
        return list(found.scalars())


def lock_holders(engine: Engine, ids: Iterable[int]) -> dict[int, str | None]:
    """For each locked event among ids: the operator whose claim set its current lock, or None (the processor)."""
    wanted = unique_ids(ids)
    if not wanted:
        return {}
    with write_transaction(engine, None) as conn:
        found = conn.execute(
            text(
                f"SELECT d.id, {HOLDER} AS holder FROM {EVENTS} AS d WHERE {IN_IDS} AND d.processing_lock IS NOT NULL"
            ),
            {"ids": wanted},
        )
        return {r.id: r.holder for r in found}


def describe(result: ActionResult) -> str:
    """One line for a notification: counts, and the skip reasons grouped (lock times dropped).

    Rows the database refused are named ("event 17 refused by the database: ..."): the operator has to find them.
    """
    reasons: dict[str, list[int]] = {}
    for event_id, reason in result.skipped.items():
        key = reason if reason.startswith(REFUSED) else reason.split(" until ", 1)[0]
        reasons.setdefault(key, []).append(event_id)
    parts = []
    for reason, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        parts.append(f"{name_events(ids)} {reason}" if reason.startswith(REFUSED) else f"{len(ids)} {reason}")
    detail = ", ".join(parts)
    return f"{result.summary} ({detail})" if detail else result.summary


def name_events(ids: list[int], shown: int = 5) -> str:
    """A few ids an operator can look up: event 17, events 17, 18 and 3 more."""
    named = ", ".join(str(i) for i in ids[:shown])
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"event{'s' if len(ids) > 1 else ''} {named}{more}"


# --- running an action -----------------------------------------------------------------------------------


def unique_ids(ids: Iterable[int]) -> list[int]:
    seen: dict[int, None] = {}
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"event ids must be integers, got {i!r}")
        seen.setdefault(i, None)
    return list(seen)


HELD_BY_YOU = "held by another session of yours"  # the lock was claimed under your --operator name: take_back


def held_until(row: RowMapping, op: Operator) -> str:
    """ "held by another session until 14:05", naming the holder when a claim of ours set the lock."""
    local = row["lock_expires_at"].astimezone()
    when = local.strftime("%H:%M") if local.date() == datetime.now().astimezone().date() else f"{local:%Y-%m-%d %H:%M}"
    holder = row["holder"]
    if holder is not None and holder == op.name:
        return f"{HELD_BY_YOU} ({holder}) until {when}"
    return f"held by another session until {when}" + (f" ({holder})" if holder is not None else "")


def _run(engine: Engine, op: Operator, ids: Iterable[int], action: Action, params: dict[str, Any]) -> ActionResult:
    wanted = unique_ids(ids)
    result = ActionResult(action.name)
    update, reasons = text(action.update_sql()), text(action.reasons_sql())
    base = {
        "token": op.lock_token,
        "ttl": op.lock_ttl_minutes,
        "operator": op.name,
        "method": f"operator:{action.name}",
        **params,
    }
    for start in range(0, len(wanted), BATCH_SIZE):
        batch = wanted[start : start + BATCH_SIZE]
        with write_transaction(engine, result) as conn:
            done, refused = _apply(conn, action, update, base, batch)
            rest = [i for i in batch if i not in done and i not in refused]
            rows = {r["id"]: r for r in conn.execute(reasons, {**base, "ids": rest}).mappings()} if rest else {}
        for event_id in batch:
            if event_id in done:
                result.done.append(event_id)
            elif event_id in refused:
                result.skipped[event_id] = refused[event_id]
            elif (row := rows.get(event_id)) is None:
                result.skipped[event_id] = NO_SUCH_EVENT
            elif row["held"]:
                result.skipped[event_id] = (action.when_held or held_until)(row, op)
            elif not row["eligible"]:
                result.skipped[event_id] = action.why_not(row)
            else:  # free and eligible, yet SKIP LOCKED passed it: another transaction has the row locked
                result.skipped[event_id] = BUSY
    return result


def _apply(
    conn: Connection, action: Action, update: Any, base: dict[str, Any], ids: list[int]
) -> tuple[set[int], dict[int, str]]:
    """Run the update on `ids` in a savepoint: (ids done, {id: reason} for single rows the server refused).

    When the server refuses the statement because of some row's data, the ids are split in halves and each half
    is retried, until the refused rows stand alone; every other row is still done, in the same transaction.
    """
    savepoint = conn.begin_nested()
    try:
        done = set(conn.execute(update, {**base, "ids": ids}).scalars())
    except DBAPIError as exc:
        savepoint.rollback()
        if not _row_fault(exc):
            raise
        if len(ids) == 1:
            return set(), {ids[0]: _row_refusal(conn, action, ids[0], exc)}
        half = len(ids) // 2
        done_a, refused_a = _apply(conn, action, update, base, ids[:half])
        done_b, refused_b = _apply(conn, action, update, base, ids[half:])
        return done_a | done_b, {**refused_a, **refused_b}
    savepoint.commit()
    return done, {}


def _row_fault(exc: DBAPIError) -> bool:
    return not exc.connection_invalidated and sqlstate_class(exc) in _ROW_FAULT_CLASSES


def _server_says(exc: DBAPIError, *, brief: bool = False) -> str:
    """The server's message and detail (brief: the detail alone when there is one), never its CONTEXT, which
    quotes the row's data."""
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or type(exc.orig).__name__
    detail = (getattr(diag, "message_detail", None) or "").strip().rstrip(".")
    said = detail if brief and detail else f"{primary} ({detail})" if detail else primary
    return " ".join(said.split())


def _row_refusal(conn: Connection, action: Action, event_id: int, exc: DBAPIError) -> str:
    """Why the server refused this row; names the json column when that is what it cannot convert."""
    for column in action.json_reads:
        probe = conn.begin_nested()
        try:
            conn.execute(
                text(f"SELECT CAST(d.{column} AS jsonb) IS NULL FROM {EVENTS} AS d WHERE d.id = :id"),
                {"id": event_id},
            )
        except DBAPIError as bad:
            probe.rollback()
            if _row_fault(bad):
                return f"{REFUSED}: {column} is not valid JSON for the server ({_server_says(bad, brief=True)})"
            raise
        probe.commit()
    return f"{REFUSED}: {_server_says(exc)}"


def set_transaction_limits(conn: Connection, *, lock_timeout_ms: int, statement_timeout_ms: int | None) -> None:
    """The write side's settings for this transaction only: UTC times, and bounded waits (0: no statement limit)."""
    conn.execute(
        text(
            "SELECT set_config('TimeZone', 'UTC', true), set_config('lock_timeout', :lt, true),"
            " set_config('statement_timeout', :st, true)"
        ),
        {"lt": f"{lock_timeout_ms}ms", "st": f"{statement_timeout_ms or 0}ms"},
    )


@contextmanager
def write_transaction(engine: Engine, partial: ActionResult | None, *, export: bool = False) -> Iterator[Connection]:
    """One transaction with our session settings; database faults become ActionRefused."""
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise _refusal(exc, "connect", partial, export) from exc
    with conn:
        try:
            conn.begin()
            set_transaction_limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
            yield conn
        except DBAPIError as exc:
            with suppress(Exception):
                conn.rollback()
            raise _refusal(exc, "statement", partial, export) from exc
        try:
            conn.commit()
        except DBAPIError as exc:
            raise _refusal(exc, "commit", partial, export) from exc


def _refusal(exc: DBAPIError, phase: str, partial: ActionResult | None, export: bool = False) -> ActionRefused:
    """One line for the operator: what happened, and whether anything changed (as far as we can know)."""
    orig = exc.orig
    primary = first_line(exc)
    unchanged = "" if export else "; nothing was changed"
    if isinstance(orig, pg_errors.ReadOnlySqlTransaction):
        message = f"not done: the database session is read-only ({primary}){unchanged}"
    elif isinstance(orig, pg_errors.InsufficientPrivilege):
        message = (
            "not exported: your database role may not read events: permission denied on dead_letter_events"
            if export
            else "your database role may not change events: permission denied on dead_letter_events"
        )
    elif isinstance(orig, pg_errors.LockNotAvailable):
        message = f"{BUSY}: another transaction holds a lock on dead_letter_events{unchanged}"
    elif isinstance(orig, pg_errors.QueryCanceled):
        message = f"not done: the database took too long and the action was cancelled{unchanged}"
    elif isinstance(orig, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        message = f"not done: the database is not at schema v7 ({primary}); run the migration first"
    elif isinstance(orig, psycopg.OperationalError) or exc.connection_invalidated:
        if phase == "connect":
            message = f"not done: cannot reach the database{unchanged}"
        elif phase == "commit" and not export:
            message = "connection to the database was lost while committing: the change may or may not be saved"
        else:
            message = f"not done: connection to the database was lost{unchanged}"
    elif sqlstate_class(exc) == SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
        raise exc  # syntax error or unknown object in our own SQL: a bug, keep the traceback
    else:  # a constraint, a trigger, bad data: the database said no to this batch
        message = f"not done: the database refused the change ({primary}){unchanged}"
    if export:
        message = message.replace("not done:", "not exported:", 1)
    elif partial is not None and partial.done:
        message += f" in this batch ({len(partial.done)} events of earlier batches stay done)"
    return ActionRefused(" ".join(message.split()), partial)


# --- export ----------------------------------------------------------------------------------------------

# Every column; json-typed columns as their exact stored text (key order, spacing, duplicate keys kept).
# The jsonb columns are read as text as well and written into the line as the JSON they already are: parsing
# them (psycopg's json.loads) and encoding them again would recurse, and fail on a deeply nested value.
_EXPORT_SQL = text(
    "SELECT d.id, d.ingest_id, d.source, d.source_offset, d.reason,"
    " CAST(d.payload AS text) AS payload_text, CAST(d.metadata_json AS text) AS metadata_json_text,"
    " d.created_at, d.resolved, d.resolved_at, d.payload_checksum, d.retry_count,"
    " CAST(d.error_history AS text) AS error_history, CAST(d.processing_attempts AS text) AS processing_attempts,"
    " d.resolution_method, d.idempotency_key, d.processing_lock, d.lock_expires_at,"
    " d.priority, d.classification, d.updated_at, d.last_processed_at"
    f" FROM {EVENTS} AS d WHERE {IN_IDS}"
)
_EXPORT_JSON_TEXT = frozenset({"error_history", "processing_attempts"})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _ascii_escape(match: re.Match[str]) -> str:
    cp = ord(match.group())
    if cp > 0xFFFF:  # a UTF-16 surrogate pair, as json.dumps(ensure_ascii=True) writes it
        cp -= 0x10000
        return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"
    return f"\\u{cp:04x}"


def _export_line(row: Mapping[str, Any]) -> str:
    """One JSON Lines record, pure ASCII, in json.dumps's layout; stored JSON text is copied, never parsed.

    PostgreSQL writes jsonb as valid JSON with control characters already escaped; non-ASCII characters (only
    possible inside its strings) become \\u escapes, exactly as json.dumps(ensure_ascii=True) would write them.
    """
    fields = []
    for key, value in row.items():
        if key in _EXPORT_JSON_TEXT and value is not None:
            encoded = value if value.isascii() else _NON_ASCII.sub(_ascii_escape, value)
        else:
            encoded = json.dumps(_jsonable(value), ensure_ascii=True)
        fields.append(f"{json.dumps(key)}: {encoded}")
    return "{" + ", ".join(fields) + "}"


def export_jsonl(engine: Engine, ids: Iterable[int], path: Path, *, overwrite: bool = False) -> int:
    """Write the events as JSON Lines (in the order given) and return how many were written.

    Each line has every column; `payload_text` / `metadata_json_text` are the exact stored text. The file is
    pure ASCII (non-ASCII and control characters are JSON escapes), so `cat` cannot be tricked by payloads.
    Written to a temp file in the same directory, then renamed; an existing file is kept unless overwrite.
    """

    def rows_of(batch: list[int]) -> dict[int, RowMapping]:
        with write_transaction(engine, None, export=True) as conn:
            return {r["id"]: r for r in conn.execute(_EXPORT_SQL, {"ids": batch}).mappings()}

    return write_jsonl(path, ids, rows_of, overwrite=overwrite)


def write_jsonl(
    path: Path,
    ids: Iterable[int],
    rows_of: Callable[[list[int]], Mapping[int, Any]],  # id -> a row mapping (column -> value)
    *,
    overwrite: bool = False,
) -> int:
    """The export file: rows_of(batch) reads one batch of ids (id -> columns); lines in the order of `ids`."""
    wanted = unique_ids(ids)
    path = Path(path)
    if (problem := export_target_problem(path)) is not None:
        raise ActionRefused(f"not exported: {problem}")
    if path.exists() and not overwrite:
        raise ActionRefused(f"not exported: {path} already exists")
    try:
        # A fixed short prefix: one derived from the target's name would push a long legal name over the limit.
        fd, tmp_name = tempfile.mkstemp(prefix=".dlq-export-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ActionRefused(f"not exported: cannot write in {path.parent} ({exc.strerror})") from exc
    tmp = Path(tmp_name)
    written = 0
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as out:
            for start in range(0, len(wanted), BATCH_SIZE):
                batch = wanted[start : start + BATCH_SIZE]
                rows = rows_of(batch)
                for event_id in batch:
                    if (row := rows.get(event_id)) is not None:
                        out.write(_export_line(row) + "\n")
                        written += 1
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file appeared meanwhile: never clobber
    except FileExistsError as exc:
        raise ActionRefused(f"not exported: {path} already exists") from exc
    except OSError as exc:
        raise ActionRefused(f"not exported: cannot write {path} ({exc.strerror})") from exc
    finally:
        with suppress(OSError):
            tmp.unlink()
    return written


def export_target_problem(path: Path) -> str | None:
    """Why `path` cannot take an export (one line), or None. An existing target must be a regular file: anything
    else (a directory, a FIFO, a device) is refused and left untouched rather than replaced by a file."""
    if "\x00" in str(path):
        return "a file path cannot hold a NUL character"
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        return "the path holds a lone surrogate, which no file name can hold"
    name_bytes = len(os.fsencode(path.name))
    try:
        name_max = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255  # the usual limit, when the directory cannot tell (e.g. it does not exist)
    if name_bytes > name_max:
        return f"the file name is {name_bytes} bytes long; this filesystem allows at most {name_max}"
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot use {path} ({exc.strerror})"
    if path.is_dir():
        return f"{path} is a directory"
    if path.is_file():
        return None
    if path.is_fifo():
        kind = "a named pipe (FIFO)"
    elif path.is_char_device() or path.is_block_device():
        kind = "a device"
    else:
        kind = "a socket" if path.is_socket() else "something else"
    return f"{path} is {kind}, not a regular file; it was left untouched"
