"""The online v7 migration: the atomic path's end state, reached with short locks, resumable.

`dlq-tui --migrate` (runner.upgrade) is one transaction and holds an exclusive lock on
dead_letter_events for its whole run. This path never does: every step is its own short transaction
(or an autocommit CREATE INDEX CONCURRENTLY), each lock-taking statement runs under a short
`lock_timeout` and is retried with backoff, and the backfill runs in keyset batches of their own
transactions. The order (measured in FINDINGS.md, "lock-friendly sequence"):

  columns + CHECKs NOT VALID (one brief ALTER) -> batched backfill -> unique index CONCURRENTLY,
  attached `USING INDEX` (later duplicate sources lose their key) -> the 8 indexes CONCURRENTLY ->
  VALIDATE CONSTRAINT -> tables, view, function, triggers -> catch-up of rows written meanwhile ->
  one last short transaction: the remaining rows under a brief SHARE lock, marker 7, alembic stamped v7.

No state is kept outside the database: the catalog and the rows without checksum *are* the state, so
a run interrupted anywhere (Ctrl-C, kill -9, lost connection) is finished by the next run, which
says in each step what it found already done. An INVALID index left by an interrupted concurrent
build is dropped and rebuilt; a valid one the server finished after its client died is kept. Not
atomic: an interrupted run leaves a database that is consistent but only partly migrated (marker
still below 7) until a later run completes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.migrate import paging, runner, work
from dlq_tui.migrate.catalog import EVENTS, HASH_SQL, Catalog, data_gaps, inspect_catalog, key_sql
from dlq_tui.migrate.steps import STEP_NAMES, MigrationError, Status, StepEvent, Steps, one_line, step_number

__all__ = ["DEFAULT_LOCK_TIMEOUT_MS", "DEFAULT_RETRIES", "online_dry_run", "online_upgrade"]

DEFAULT_LOCK_TIMEOUT_MS = 1000
DEFAULT_RETRIES = 8
# CREATE/DROP INDEX CONCURRENTLY and VALIDATE CONSTRAINT take SHARE UPDATE EXCLUSIVE, which writers'
# ROW EXCLUSIVE does not conflict with: waiting longer never stalls a writer. It conflicts with
# autovacuum, which a waiter only cancels after deadlock_timeout (1 s); with the short lock_timeout
# a 1M-row run after the batched backfill lost that race nine times in a row.
DEFAULT_SHARE_LOCK_TIMEOUT_MS = 30_000
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 5.0
PROGRESS_EVERY_S = 0.5
CATCH_UP_PASSES = 3
RESUME = "the database is consistent; run `dlq-tui --migrate --online` again to resume"

_RETRYABLE = {"55P03", "40P01"}  # lock_not_available (lock_timeout), deadlock_detected
_UNIQUE_VIOLATION = "23505"
_OWN_INDEXES = (*schema.V7_EVENT_INDEXES, *schema.OWN_INDEXES, schema.V7_UNIQUE_CONSTRAINT)
_NOT_NULL_CHECK = "dlq_tui_online_nn_{}"  # temporary: lets SET NOT NULL skip its full-table scan

T = TypeVar("T")
Hook = Callable[[Any], None]


# --- SQL (shared by the run and the dry run, so the dry run prints what a run executes) ----------------
def _add_columns_sql(cat: Catalog) -> str | None:
    clauses = []
    for name in cat.missing_columns():
        type_sql, not_null, default = schema.V7_COLUMNS[name]
        clause = f"ADD COLUMN {name} {type_sql}" + (" NOT NULL" if not_null else "")
        clauses.append(clause + (f" DEFAULT {default}" if default is not None else ""))
    for name, (_type, _nn, default) in schema.V7_COLUMNS.items():
        info = cat.event_columns.get(name)
        if info is not None and default is not None and (info.default or "").lower() != default.lower():
            clauses.append(f"ALTER COLUMN {name} SET DEFAULT {default}")
    # NOT VALID: added without scanning the table; VALIDATE later takes a lock that lets writers through.
    clauses += [f"ADD CONSTRAINT {n} CHECK ({schema.V7_CHECK_CONSTRAINTS[n]}) NOT VALID" for n in cat.missing_checks()]
    return f"ALTER TABLE {EVENTS}\n    " + ",\n    ".join(clauses) if clauses else None


_TODO = "(payload_checksum IS NULL OR idempotency_key IS NULL)"
_BATCH_END_SQL = f"SELECT max(id) FROM (SELECT id FROM {EVENTS} WHERE id > :lo ORDER BY id LIMIT :n) b"
# Before the unique index exists every row simply gets its key; duplicates are settled afterwards.
_BATCH_SQL = f"""UPDATE {EVENTS}
SET payload_checksum = coalesce(payload_checksum, {HASH_SQL}),
    idempotency_key = coalesce(idempotency_key, {key_sql(f"coalesce(payload_checksum, {HASH_SQL})")})
WHERE id > :lo AND id <= :hi AND {_TODO}"""
_CATCH_UP_IDS_SQL = f"SELECT id FROM {EVENTS} WHERE {_TODO} AND id > :lo ORDER BY id LIMIT :n"
# With the unique index in place: the oldest row (created_at, id) among rows sharing a key gets it,
# unless a row already holds it; the others keep NULL (the same rule as the atomic path).
_CATCH_UP_SQL = f"""WITH todo AS MATERIALIZED (
    SELECT id, created_at, idempotency_key AS old_key, coalesce(payload_checksum, {HASH_SQL}) AS ck,
           source, source_offset
    FROM {EVENTS} WHERE id = ANY(CAST(:ids AS integer[])) AND {_TODO}
), ranked AS (
    SELECT id, ck, old_key, k, row_number() OVER (PARTITION BY k ORDER BY created_at, id) AS rn
    FROM (SELECT t.*, coalesce(t.old_key, {key_sql("t.ck", "t")}) AS k FROM todo t) keyed
), decided AS (
    SELECT id, ck, CASE
        WHEN old_key IS NOT NULL THEN old_key
        WHEN rn = 1 AND NOT EXISTS (SELECT 1 FROM {EVENTS} e WHERE e.idempotency_key = r.k) THEN k
    END AS new_key
    FROM ranked r
), upd AS (
    UPDATE {EVENTS} d SET payload_checksum = x.ck, idempotency_key = x.new_key FROM decided x
    WHERE d.id = x.id AND (d.payload_checksum IS DISTINCT FROM x.ck OR d.idempotency_key IS DISTINCT FROM x.new_key)
    RETURNING d.idempotency_key IS NULL AS keyless
)
SELECT count(*), count(*) FILTER (WHERE keyless) FROM upd"""
_UNIQUE_INDEX_SQL = f"CREATE UNIQUE INDEX CONCURRENTLY {schema.V7_UNIQUE_CONSTRAINT} ON {EVENTS} (idempotency_key)"
_ATTACH_UNIQUE_SQL = (
    f"ALTER TABLE {EVENTS} ADD CONSTRAINT {schema.V7_UNIQUE_CONSTRAINT} "
    f"UNIQUE USING INDEX {schema.V7_UNIQUE_CONSTRAINT}"
)
_FINAL_LOCK_SQL = f"LOCK TABLE {EVENTS} IN SHARE MODE"  # readers pass; writers wait only for the last few rows


def _index_sql(name: str) -> str:
    return f"CREATE INDEX CONCURRENTLY {name} ON {EVENTS} ({', '.join(schema.V7_EVENT_INDEXES[name])})"


def _drop_index_sql(name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {name}"


def _validate_sql(name: str) -> str:
    return f"ALTER TABLE {EVENTS} VALIDATE CONSTRAINT {name}"


# --- catalog facts the shared inspection does not carry ------------------------------------------------
def _invalid_indexes(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(:t) AND NOT x.indisvalid ORDER BY 1"
            ),
            {"t": EVENTS},
        ).scalars()
    )


def _unvalidated(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND NOT convalidated ORDER BY 1"),
            {"t": EVENTS},
        ).scalars()
    )


def _keys_unique(cat: Catalog) -> bool:
    """The keys are held unique: by the constraint, or by its index alone when a run died during its build.

    The server finishes a CREATE INDEX CONCURRENTLY whose client was killed, so a resumed run can find
    a valid unique index that was never attached while later duplicate sources still lack their key:
    from then on only the unique-aware catch-up may fill keys (a plain batch would collide).
    """
    return cat.has_unique() or schema.V7_UNIQUE_CONSTRAINT in cat.indexes


def _not_null_fixes(cat: Catalog) -> list[str]:
    return [
        n
        for n, (_t, nn, _d) in schema.V7_COLUMNS.items()
        if nn and n in cat.event_columns and not cat.event_columns[n].not_null
    ]


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _n(count: int) -> str:
    return f"{count:,}"


# --- the run -----------------------------------------------------------------------------------------------
@dataclass
class _Run:
    engine: Engine
    conn: Connection  # short transactions, one per statement group
    ddl: Connection  # autocommit: CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction
    batch_size: int
    max_rate: float | None
    lock_timeout_ms: int
    retries: int
    hooks: Mapping[str, Hook]
    share_lock_timeout_ms: int = DEFAULT_SHARE_LOCK_TIMEOUT_MS
    current: str | None = None
    started: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    lock_retries: int = 0
    rebuilt: list[str] = field(default_factory=list)

    # events
    def running(self, name: str, detail: str = "") -> StepEvent:
        self.started.setdefault(name, time.perf_counter())
        self.current = name
        return StepEvent(step_number(name), name, "running", None, detail)

    def finish(self, name: str, detail: str, *, skipped: bool = False, sql: list[str] | None = None) -> StepEvent:
        self.hook("after_step", name)
        status: Status = "skipped" if skipped else "done"
        self.statuses[name] = status
        self.current = None
        duration = time.perf_counter() - self.started.get(name, time.perf_counter())
        return StepEvent(step_number(name), name, status, duration, detail, "\n".join(sql) if sql else None)

    def hook(self, point: str, value: Any) -> None:
        fn = self.hooks.get(point)
        if fn is not None:
            fn(value)

    def inspect(self) -> Catalog:
        with self.conn.begin():
            return inspect_catalog(self.conn)

    # retries
    def _wait(self, name: str, attempt: int, exc: BaseException) -> Iterator[StepEvent]:
        self.lock_retries += 1
        delay = min(BACKOFF_START_S * 2**attempt, BACKOFF_MAX_S)
        yield self.running(
            name,
            f"lock busy ({one_line(exc)}); retry {attempt + 1}/{self.retries} in {delay:.2f} s",
        )
        time.sleep(delay)

    def locked(
        self, name: str, body: Callable[[Connection], T], *, share: bool = False
    ) -> Generator[StepEvent, None, T]:
        """body(conn) in one short transaction under lock_timeout, retried with backoff while locks are busy.

        share=True: the statement only takes SHARE UPDATE EXCLUSIVE (writers pass): the long timeout.
        """
        timeout = self.share_lock_timeout_ms if share else self.lock_timeout_ms
        for attempt in range(self.retries + 1):
            try:
                with self.conn.begin():
                    self.conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeout)}")
                    return body(self.conn)
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRYABLE or attempt == self.retries:
                    raise
                yield from self._wait(name, attempt, exc)
        raise AssertionError("unreachable")

    def concurrent(self, name: str, index: str, sql: str) -> Generator[StepEvent, None, None]:
        """A CREATE INDEX CONCURRENTLY, retried; a failed build leaves an INVALID index: drop it first."""
        for attempt in range(self.retries + 1):
            self.hook("before_index", index)
            try:
                self.ddl.exec_driver_sql(sql)
                return
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                yield from self.drop_if_invalid(name, index)
                if _sqlstate(exc) not in _RETRYABLE or attempt == self.retries:
                    raise
                yield from self._wait(name, attempt, exc)

    def drop_if_invalid(self, name: str, index: str) -> Generator[StepEvent, None, bool]:
        for attempt in range(self.retries + 1):
            if index not in _invalid_indexes(self.ddl):
                return False
            try:
                self.ddl.exec_driver_sql(_drop_index_sql(index))
                return True
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRYABLE or attempt == self.retries:
                    raise
                yield from self._wait(name, attempt, exc)
        return False

    def reuse(self, name: str, body: Callable[[Steps], None]) -> Generator[StepEvent, None, StepEvent]:
        """Run one of the atomic path's step bodies (work.py) in a short transaction of its own."""
        buffered: list[StepEvent] = []

        def attempt(conn: Connection) -> None:
            buffered.clear()
            body(Steps(conn=conn, report=buffered.append))

        yield self.running(name)
        yield from self.locked(name, attempt)
        last = buffered[-1]
        return self.finish(name, last.detail, skipped=last.status == "skipped", sql=[last.sql] if last.sql else None)


def online_upgrade(
    engine_or_dsn: Engine | str,
    *,
    batch_size: int = 10_000,
    max_rate: float | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    retries: int = DEFAULT_RETRIES,
    lock_wait_s: float = 30.0,
    share_lock_timeout_ms: int = DEFAULT_SHARE_LOCK_TIMEOUT_MS,
    hooks: Mapping[str, Hook] | None = None,
) -> Iterator[StepEvent]:
    """Migrate to v7 without long locks, yielding StepEvents (the same ones runner.upgrade yields).

    "running" events repeat with a fresh detail while a step works (backfill progress: rows done /
    total, rate, ETA; the index being built; lock retries). Raises MigrationError (one line) after a
    "failed" event: the database is then consistent and a second run resumes. A lost connection
    propagates as the driver's OperationalError. `hooks` is for tests: "after_step" (step name),
    "after_batch" (rows done so far), "before_index" / "after_index" (index name, before each concurrent
    build attempt / after a build); raise or kill the process to interrupt.
    """
    if batch_size < 1:
        raise MigrationError("--batch-size must be at least 1")
    if max_rate is not None and max_rate <= 0:
        raise MigrationError("--max-rate must be a positive number of rows per second")
    if isinstance(engine_or_dsn, str):
        from dlq_tui.db.connect import make_engine

        engine = make_engine(engine_or_dsn)
        try:
            yield from online_upgrade(
                engine,
                batch_size=batch_size,
                max_rate=max_rate,
                lock_timeout_ms=lock_timeout_ms,
                retries=retries,
                lock_wait_s=lock_wait_s,
                share_lock_timeout_ms=share_lock_timeout_ms,
                hooks=hooks,
            )
        finally:
            engine.dispose()
        return
    engine = engine_or_dsn
    if engine.dialect.name != "postgresql":  # nothing to do online: v7 only moves the marker there
        yield from runner.upgrade(engine, lock_wait_s=lock_wait_s, hooks=hooks)
        return
    for name in STEP_NAMES:
        yield StepEvent(step_number(name), name, "pending")
    started = time.perf_counter()
    yield StepEvent(step_number("acquire_lock"), "acquire_lock", "running")
    t0 = time.perf_counter()
    try:
        lock_conn, waited = runner.take_advisory_lock(engine, lock_wait_s, unchanged="nothing changed by this run")
    except MigrationError as exc:
        yield StepEvent(step_number("acquire_lock"), "acquire_lock", "failed", time.perf_counter() - t0, str(exc))
        raise
    try:
        yield StepEvent(
            step_number("acquire_lock"),
            "acquire_lock",
            "done",
            time.perf_counter() - t0,
            f"waited {waited:.1f} s for another migration" if waited >= runner.LOCK_POLL_S else "free",
        )
        with engine.connect() as conn, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ddl:
            ddl.exec_driver_sql(f"SET lock_timeout = {int(share_lock_timeout_ms)}")
            ddl.exec_driver_sql("SET maintenance_work_mem = '256MB'")
            run = _Run(
                engine,
                conn,
                ddl,
                batch_size,
                max_rate,
                lock_timeout_ms,
                retries,
                dict(hooks or {}),
                share_lock_timeout_ms,
            )
            try:
                yield from _sequence(run, started)
            except (MigrationError, DBAPIError) as exc:
                error = _failed(run, exc)
                lost = f"lost the connection ({one_line(exc)}); {RESUME}"
                yield _failed_event(run, str(error) if error is not exc else lost)
                if error is exc:
                    raise
                raise error from exc
            except BaseException as exc:  # Ctrl-C, a hook: still one "failed" event, then re-raise as is
                if run.current is not None:
                    yield _failed_event(run, f"interrupted ({type(exc).__name__}); {RESUME}")
                raise
    finally:
        runner.release_advisory_lock(lock_conn)


def _failed_event(run: _Run, message: str) -> StepEvent:
    name = run.current or "commit"
    duration = time.perf_counter() - run.started.get(name, time.perf_counter())
    run.current = None
    return StepEvent(step_number(name), name, "failed", duration, message)


def _failed(run: _Run, exc: BaseException) -> BaseException:
    """Map an error to one line; a lost connection stays a connection error (exit 2 in the CLI)."""
    where = f" at step {step_number(run.current)} {run.current}" if run.current else ""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return exc
    if _sqlstate(exc) in _RETRYABLE:
        message = (
            f"another transaction kept a lock the online migration needs{where} "
            f"({run.retries + 1} attempts, {run.lock_timeout_ms} ms each); {RESUME} when it ends"
        )
    elif isinstance(exc, MigrationError):
        message = f"{exc}" if "resume" in str(exc) or "nothing changed" in str(exc) else f"{exc}; {RESUME}"
    else:
        message = f"online migration failed{where}: {one_line(exc)}; {RESUME} once that is fixed"
    return MigrationError(message)


def _sequence(run: _Run, started: float) -> Iterator[StepEvent]:
    yield run.running("baseline")
    runner.refuse_unknown_revision(run.inspect())  # before anything changes, even an INVALID index's drop
    # An interrupted concurrent build leaves an INVALID index under one of our names: drop it now
    # (before judging drift), rebuild it in its step.
    for index in _invalid_indexes(run.ddl):
        if index in _OWN_INDEXES and (yield from run.drop_if_invalid("baseline", index)):
            run.rebuilt.append(index)
    cat = run.inspect()
    refused = cat.unfixable_drift() if EVENTS in cat.tables else []
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise MigrationError(f"cannot migrate: {refused[0]}{more}; fix it by hand; nothing changed by this run")
    already = cat.v7_complete() and cat.alembic_revision == runner.HEAD and (cat.marker or 0) >= 7
    found = _found(cat, run.rebuilt)
    if cat.missing_legacy():
        yield (yield from run.reuse("baseline", work.baseline))
        cat = run.inspect()
    else:
        yield run.finish("baseline", found, skipped=True)
    yield from _add_columns(run, cat)
    yield from _backfill(run)
    yield from _unique(run)
    yield from _indexes(run)
    yield from _paging_indexes(run)
    yield from _validate(run)
    for name, body in (
        ("create_tables", work.create_tables),
        ("create_view", work.create_view),
        ("create_function", work.create_function),
        ("create_triggers", work.create_triggers),
    ):
        event = yield from run.reuse(name, body)
        yield event
    yield from _catch_up(run)
    yield from _final(run)
    yield run.running("commit")
    changed = [n for n, st in run.statuses.items() if st == "done" and n not in ("set_marker", "backfill_new_rows")]
    if already and not changed:
        detail = "already at v7; no schema change"
    else:
        detail = f"migrated to v7 online in {time.perf_counter() - started:.1f} s"
    if run.lock_retries:
        detail += f" ({run.lock_retries} lock retries)"
    yield run.finish("commit", detail, skipped=already and not changed)


def _found(cat: Catalog, rebuilt: list[str]) -> str:
    """What an earlier (interrupted) run left, in one line."""
    if EVENTS not in cat.tables:
        return "no tables"
    parts = [f"legacy tables present (marker {cat.marker_raw or 'missing'})"]
    present = len(schema.V7_COLUMNS) - len(cat.missing_columns())
    if present:
        parts.append(f"found {present}/12 v7 columns, {8 - len(cat.missing_event_indexes())}/8 indexes")
    if rebuilt:
        parts.append(f"dropped INVALID {', '.join(rebuilt)} (interrupted concurrent build; rebuilt below)")
    return "; ".join(parts)


def _add_columns(run: _Run, cat: Catalog) -> Iterator[StepEvent]:
    yield run.running("add_columns")
    sql = _add_columns_sql(cat)
    missing, checks = cat.missing_columns(), cat.missing_checks()
    if sql is None:
        yield run.finish("add_columns", "all 12 present (already done)", skipped=True)
        return
    yield from run.locked("add_columns", lambda c: c.exec_driver_sql(sql))
    parts = []
    if missing:
        present = len(schema.V7_COLUMNS) - len(missing)
        parts.append(f"{len(missing)} added" + (f" ({present} present)" if present else ""))
    if checks:
        parts.append(f"{len(checks)} check{'s' if len(checks) > 1 else ''} NOT VALID")
    yield run.finish("add_columns", "; ".join(parts) or "defaults fixed", sql=[sql + ";"])


def _progress(done: int, total: int, t0: float) -> str:
    elapsed = max(time.perf_counter() - t0, 1e-6)
    rate = done / elapsed
    total = max(total, done)
    pct = 100 * done // total if total else 100
    eta = (total - done) / rate if rate > 0 else 0.0
    return f"{_n(done)} / {_n(total)} rows ({pct}%), {rate:,.0f} rows/s, ETA {eta:.0f} s"


def _throttle(run: _Run, done: int, t0: float) -> None:
    if run.max_rate:
        ahead = done / run.max_rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)


def _backfill(run: _Run) -> Iterator[StepEvent]:
    """Keyset batches by id, each its own transaction, before any index on the new columns exists."""
    yield run.running("backfill")
    with run.conn.begin():
        cat = inspect_catalog(run.conn)
        has_unique = _keys_unique(cat)
        if has_unique:
            total = 0
        else:
            row = run.conn.execute(
                text(f"SELECT count(*), count(*) FILTER (WHERE {_TODO}), min(id) FROM {EVENTS}")
            ).one()
            rows, total, first = int(row[0]), int(row[1]), row[2]
    if has_unique:
        held = "unique constraint" if cat.has_unique() else "unique index from an earlier run"
        yield run.finish("backfill", f"{held} in place: rows are filled by the catch-up pass", skipped=True)
        return
    if total == 0:
        yield run.finish("backfill", f"all {_n(rows)} rows have checksum and key (already done)", skipped=True)
        return
    lo, done, batches, t0, last = int(first) - 1, 0, 0, time.perf_counter(), 0.0
    while True:

        def batch(conn: Connection, lo: int = lo) -> tuple[int | None, int]:
            hi = conn.execute(text(_BATCH_END_SQL), {"lo": lo, "n": run.batch_size}).scalar()
            if hi is None:
                return None, 0
            return int(hi), conn.execute(text(_BATCH_SQL), {"lo": lo, "hi": hi}).rowcount

        hi, count = yield from run.locked("backfill", batch)
        if hi is None:
            break
        lo, done, batches = hi, done + count, batches + 1
        run.hook("after_batch", done)
        _throttle(run, done, t0)
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            yield run.running("backfill", _progress(done, total, t0))
    resumed = f"; {_n(rows - total)} rows were already done" if rows > total else ""
    detail = f"{_n(done)} rows backfilled in {batches} batches of {_n(run.batch_size)}{resumed}"
    yield run.finish("backfill", detail, sql=[_BATCH_SQL + ";"])


def _unique(run: _Run) -> Iterator[StepEvent]:
    name = "duplicate_keys"
    yield run.running(name)
    cat = run.inspect()
    if cat.has_unique():
        yield run.finish(name, f"{schema.V7_UNIQUE_CONSTRAINT} present (already done)", skipped=True)
        return
    cleared, notes = 0, []
    if schema.V7_UNIQUE_CONSTRAINT in cat.indexes:
        # The run that built it cleared the later duplicates first: count what it left keyless.
        cleared = yield from run.locked(name, lambda c: data_gaps(c, cat).duplicate_sources)
        notes.append("found its unique index built by an earlier run")
    else:
        for _attempt in range(3):  # a new duplicate can only come from a v7 writer racing us: rare
            yield run.running(name, "building the unique index concurrently")
            try:
                yield from run.concurrent(name, schema.V7_UNIQUE_CONSTRAINT, _UNIQUE_INDEX_SQL)
                break
            except DBAPIError as exc:
                if _sqlstate(exc) != _UNIQUE_VIOLATION:
                    raise
            yield run.running(name, "duplicate sources found: the oldest row keeps the key, later ones get NULL")
            cleared += yield from run.locked(
                name, lambda c: int(c.execute(text(work.CLEAR_DUPLICATES_SQL)).scalar_one())
            )
        else:
            raise MigrationError("new duplicate idempotency keys keep appearing while the unique index is built")
        notes.append("unique index built concurrently")
    yield from run.locked(name, lambda c: c.exec_driver_sql(_ATTACH_UNIQUE_SQL))
    found = f"{_n(cleared)} later duplicate sources left without key (oldest row keeps it)" if cleared else ""
    detail = f"{found or 'no duplicate sources'}; {', '.join(notes)}; attached as {schema.V7_UNIQUE_CONSTRAINT}"
    yield run.finish(
        name, detail, sql=[_UNIQUE_INDEX_SQL + ";", work.CLEAR_DUPLICATES_SQL + ";", _ATTACH_UNIQUE_SQL + ";"]
    )


def _indexes(run: _Run) -> Iterator[StepEvent]:
    name = "create_indexes"
    yield run.running(name)
    missing = run.inspect().missing_event_indexes()
    total = len(schema.V7_EVENT_INDEXES)
    for i, index in enumerate(missing, 1):
        yield run.running(name, f"building {index} concurrently ({i}/{len(missing)})")
        yield from run.concurrent(name, index, _index_sql(index))
        run.hook("after_index", index)
    if not missing:
        yield run.finish(name, f"all {total} present (already done)", skipped=True)
        return
    rebuilt = [i for i in run.rebuilt if i in missing]
    detail = f"{len(missing)} built concurrently" + (
        f" ({total - len(missing)} present)" if len(missing) < total else ""
    )
    if rebuilt:
        detail += f"; rebuilt INVALID {', '.join(rebuilt)}"
    yield run.finish(name, detail, sql=[_index_sql(i) + ";" for i in missing])


def _paging_indexes(run: _Run) -> Iterator[StepEvent]:
    """dlq-tui's own indexes (revisions v7_1 and v7_2), concurrently like the spec's."""
    name = "paging_indexes"
    yield run.running(name)
    cat = run.inspect()
    missing = paging.missing_indexes(cat)
    for index in missing:
        yield run.running(name, f"building {index} concurrently")
        yield from run.concurrent(name, index, paging.index_sql(index, concurrently=True))
        run.hook("after_index", index)
    if not missing:
        yield run.finish(name, "all present (already done)", skipped=True)
        return
    rebuilt = [i for i in run.rebuilt if i in missing]
    detail = f"{len(missing)} built concurrently" + (f"; rebuilt INVALID {', '.join(rebuilt)}" if rebuilt else "")
    yield run.finish(name, detail, sql=[paging.index_sql(i, concurrently=True) + ";" for i in missing])


def _validate(run: _Run) -> Iterator[StepEvent]:
    """VALIDATE takes SHARE UPDATE EXCLUSIVE: writers keep writing while it scans."""
    name = "add_constraints"
    yield run.running(name)
    with run.conn.begin():
        pending = [
            c for c in _unvalidated(run.conn) if c in schema.V7_CHECK_CONSTRAINTS or c.startswith("dlq_tui_online_nn_")
        ]
    cat = run.inspect()
    sql: list[str] = []
    for constraint in pending:
        statement = _validate_sql(constraint)
        yield from run.locked(name, _executes(statement), share=True)
        sql.append(statement + ";")
    fixed = []
    for column in _not_null_fixes(cat):  # a half-applied column without its NOT NULL
        check = _NOT_NULL_CHECK.format(column)
        default = schema.V7_COLUMNS[column][2]
        statements = [f"UPDATE {EVENTS} SET {column} = {default} WHERE {column} IS NULL"]
        if check not in cat.constraints:
            statements.append(f"ALTER TABLE {EVENTS} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID")
        statements += [
            _validate_sql(check),
            f"ALTER TABLE {EVENTS} ALTER COLUMN {column} SET NOT NULL",  # proven by the valid check: no scan
            f"ALTER TABLE {EVENTS} DROP CONSTRAINT {check}",
        ]
        for statement in statements:
            yield from run.locked(name, _executes(statement))
        sql += [s + ";" for s in statements]
        fixed.append(f"{column} NOT NULL")
    checks = [c for c in pending if c in schema.V7_CHECK_CONSTRAINTS]
    if not sql:
        yield run.finish(name, "checks present and validated (already done)", skipped=True)
        return
    parts = [f"{len(checks)} check{'s' if len(checks) > 1 else ''} validated"] if checks else []
    parts += ["fixed " + ", ".join(fixed)] if fixed else []
    yield run.finish(name, "; ".join(parts), sql=sql)


def _executes(statement: str) -> Callable[[Connection], object]:
    """A body for `_Run.locked` that runs one statement (bound now, not when a loop variable has moved on)."""
    return lambda conn: conn.exec_driver_sql(statement)


def _catch_up_batch(conn: Connection, lo: int, batch_size: int) -> tuple[int | None, int, int]:
    ids = list(conn.execute(text(_CATCH_UP_IDS_SQL), {"lo": lo, "n": batch_size}).scalars())
    if not ids:
        return None, 0, 0
    row = conn.execute(text(_CATCH_UP_SQL), {"ids": ids}).one()
    return max(ids), int(row[0]), int(row[1])


def _catch_up_all(run: _Run, name: str) -> Generator[StepEvent, None, tuple[int, int]]:
    lo, done, keyless = 0, 0, 0
    while True:
        hi, count, dups = yield from run.locked(name, partial(_catch_up_batch, lo=lo, batch_size=run.batch_size))
        if hi is None:
            return done, keyless
        lo, done, keyless = hi, done + count, keyless + dups


def _catch_up(run: _Run) -> Iterator[StepEvent]:
    """Rows legacy writers inserted while we worked have no checksum or key yet: fill them (unlocked passes)."""
    name = "backfill_new_rows"
    yield run.running(name)
    total, keyless, passes = 0, 0, 0
    while passes < CATCH_UP_PASSES:
        passes += 1
        count, dups = yield from _catch_up_all(run, name)
        total, keyless = total + count, keyless + dups
        if count == 0:
            break
        yield run.running(name, f"{_n(total)} rows written during the migration backfilled (pass {passes})")
    dup_note = f", {_n(keyless)} of them duplicate sources left without key" if keyless else ""
    if total == 0:
        yield run.finish(name, "no rows written during the migration lack checksum or key", skipped=True)
    else:
        yield run.finish(name, f"{_n(total)} rows written during the migration backfilled{dup_note}")


def _final(run: _Run) -> Iterator[StepEvent]:
    """Marker and alembic stamp in one short transaction, after the last rows under a brief SHARE lock.

    The SHARE lock makes "marker reads 7" imply "no row lacks its checksum": writers wait only for
    the handful of rows inserted since the catch-up pass (and never longer than lock_timeout to get it).
    """
    name = "set_marker"
    yield run.running(name)
    import alembic.command  # noqa: F401  (~0.3 s: paid before the lock, not while writers wait)

    result: dict[str, Any] = {}

    def body(conn: Connection) -> None:
        result.clear()
        cat = inspect_catalog(conn)
        if not cat.v7_complete():
            raise MigrationError(f"v7 objects still missing before the marker: {', '.join(cat.missing_v7()[:3])}")
        runner.stamp(conn)
        t0 = time.perf_counter()
        conn.exec_driver_sql(_FINAL_LOCK_SQL)
        rows = 0
        lo = 0
        while True:
            hi, count, _dups = _catch_up_batch(conn, lo, run.batch_size)
            if hi is None:
                break
            lo, rows = hi, rows + count
        buffered: list[StepEvent] = []
        steps = Steps(conn=conn, report=buffered.append)
        steps.catalog = cat
        work.set_marker(steps)
        result.update(rows=rows, held=time.perf_counter() - t0, marker=buffered[-1], stamped=cat.alembic_revision)

    yield from run.locked(name, body)
    marker: StepEvent = result["marker"]
    detail = marker.detail
    held_ms = result["held"] * 1000
    detail += f"; alembic stamped {runner.HEAD}; last {_n(result['rows'])} rows under a {held_ms:.0f} ms SHARE lock"
    unchanged = marker.status == "skipped" and result["rows"] == 0 and result["stamped"] == runner.HEAD
    sql = [f"-- alembic stamp {runner.HEAD}", _FINAL_LOCK_SQL + ";", marker.sql or ""]
    yield run.finish(name, detail, skipped=unchanged, sql=sql)


# --- dry run -------------------------------------------------------------------------------------------
def online_dry_run(engine: Engine) -> Iterator[StepEvent]:
    """The online plan for this database, step by step with its SQL; read-only, changes nothing."""
    if engine.dialect.name != "postgresql":
        yield from runner.dry_run(engine)
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            cat = inspect_catalog(conn)
            runner.refuse_unknown_revision(cat)
            invalid = [i for i in _invalid_indexes(conn) if i in _OWN_INDEXES]
            todo = (
                int(
                    conn.execute(
                        text(
                            f"SELECT count(*) FROM {EVENTS}" + (f" WHERE {_TODO}" if not cat.missing_columns() else "")
                        )
                    ).scalar_one()
                )
                if EVENTS in cat.tables
                else 0
            )
            unvalidated = _unvalidated(conn) if EVENTS in cat.tables else []
            events = list(_plan(conn, cat, invalid, todo, unvalidated))
        finally:
            conn.rollback()
    yield from events


def _ev(name: str, detail: str, sql: list[str], *, skipped: bool = False) -> StepEvent:
    return StepEvent(
        step_number(name), name, "skipped" if skipped or not sql else "planned", 0.0, detail, "\n".join(sql) or None
    )


def _plan(conn: Connection, cat: Catalog, invalid: list[str], todo: int, unvalidated: list[str]) -> Iterator[StepEvent]:
    yield _ev("acquire_lock", "dry run: no lock taken (a run polls pg_try_advisory_lock)", [], skipped=True)
    drops = [_drop_index_sql(i) + ";  -- INVALID, left by an interrupted concurrent build" for i in invalid]
    baseline: list[str] = []
    if cat.missing_legacy():
        buffered: list[StepEvent] = []
        steps = Steps(conn=conn, report=buffered.append, execute=False)
        steps.catalog = cat
        work.baseline(steps)
        baseline = [buffered[-1].sql or ""]
    yield _ev("baseline", "create legacy tables" if baseline else "legacy tables present", drops + baseline)
    columns = _add_columns_sql(cat) if EVENTS in cat.tables else None
    yield _ev("add_columns", "one brief ALTER under lock_timeout", [columns + ";"] if columns else [])
    unique = _keys_unique(cat) and schema.V7_UNIQUE_CONSTRAINT not in invalid  # an INVALID one is rebuilt
    yield _ev(
        "backfill",
        f"{_n(todo)} rows in keyset batches, one transaction each" if not unique else "done by the catch-up pass",
        [_BATCH_END_SQL + ";", _BATCH_SQL + ";"] if todo and not unique else [],
    )
    attach_only = unique and not cat.has_unique()
    unique_sql = [
        _UNIQUE_INDEX_SQL + ";",
        f"-- on duplicates: {_drop_index_sql(schema.V7_UNIQUE_CONSTRAINT)};",
        work.CLEAR_DUPLICATES_SQL + ";",
        _ATTACH_UNIQUE_SQL + ";",
    ]
    if unique:
        unique_sql = [_ATTACH_UNIQUE_SQL + ";"] if attach_only else []
    yield _ev(
        "duplicate_keys",
        "attach the unique index an earlier run built"
        if attach_only
        else "unique index concurrently; only on a violation: clear later duplicates and rebuild",
        unique_sql,
    )
    missing = list(schema.V7_EVENT_INDEXES) if EVENTS not in cat.tables else cat.missing_event_indexes()
    missing += [i for i in invalid if i in schema.V7_EVENT_INDEXES and i not in missing]
    yield _ev("create_indexes", f"{len(missing)} indexes, CONCURRENTLY", [_index_sql(i) + ";" for i in missing])
    pmissing = [i for i in schema.OWN_INDEXES if i not in cat.indexes or i in invalid]
    yield _ev(
        "paging_indexes",
        f"{len(pmissing)} dlq-tui indexes, CONCURRENTLY",
        [paging.index_sql(i, concurrently=True) + ";" for i in pmissing],
    )
    checks = [c for c in schema.V7_CHECK_CONSTRAINTS if c in unvalidated or c not in cat.constraints]
    yield _ev("add_constraints", "VALIDATE (writers keep writing)", [_validate_sql(c) + ";" for c in checks])
    for name, body in (
        ("create_tables", work.create_tables),
        ("create_view", work.create_view),
        ("create_function", work.create_function),
        ("create_triggers", work.create_triggers),
    ):
        buffered = []
        steps = Steps(conn=conn, report=buffered.append, execute=False)
        steps.catalog = cat
        body(steps)
        last = buffered[-1]
        yield _ev(name, last.detail, [last.sql] if last.sql else [])
    yield _ev(
        "backfill_new_rows",
        "rows written during the migration, unique-aware batches",
        [_CATCH_UP_IDS_SQL + ";", _CATCH_UP_SQL + ";"],
    )
    yield _ev(
        "set_marker",
        "one short transaction: alembic stamp, last rows under a brief SHARE lock, marker 7",
        [
            f"-- alembic stamp {runner.HEAD}",
            _FINAL_LOCK_SQL + ";",
            "-- the catch-up batch again, then:",
            "UPDATE schema_state SET value = '7' WHERE key = 'schema_version';",
        ],
    )
    yield _ev("commit", "dry run: nothing changed", [], skipped=True)
