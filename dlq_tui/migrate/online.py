"""The online v7 migration: the atomic path's end state, reached with short locks, resumable.

`dlq-tui --migrate` (runner.upgrade) is one transaction and holds an exclusive lock on
dead_letter_events for its whole run. This path never does: it runs its SEQUENCE under the resumable
Policy (steps.py): every unit of work is its own short transaction (or an autocommit CREATE INDEX
CONCURRENTLY) under a short `lock_timeout`, retried with backoff, and the backfill runs in keyset
batches of their own transactions. The lock-friendly order:

  columns + CHECKs NOT VALID (one brief ALTER) -> batched backfill -> unique index CONCURRENTLY,
  attached `USING INDEX` (later duplicate sources lose their key) -> the 8 indexes CONCURRENTLY ->
  VALIDATE CONSTRAINT -> tables, view, function, triggers -> catch-up of rows written meanwhile ->
  one last short transaction: the remaining rows under a brief SHARE lock, marker 7, alembic stamped v7.

No state is kept outside the database: the catalog and the rows without checksum *are* the state, so
a run interrupted anywhere (Ctrl-C, kill -9, lost connection) is finished by the next run, which
says in each step what it found already done. An INVALID index left by an interrupted concurrent
build is dropped and rebuilt; a valid one the server finished after its client died is kept. Not
atomic: an interrupted run leaves a database that is consistent but only partly migrated (marker
still below 7) until a later run completes it. The dry run is the same sequence with execute=False.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from dlq_tui.db import schema
from dlq_tui.db.errors import UNIQUE_VIOLATION, sqlstate
from dlq_tui.migrate import paging, runner, sql, work
from dlq_tui.migrate.catalog import Catalog, data_gaps
from dlq_tui.migrate.sql import EVENTS, UNIQUE
from dlq_tui.migrate.steps import (
    STEP_NAMES,
    Hook,
    MigrationError,
    Outcome,
    Policy,
    Report,
    StepEvent,
    Steps,
    step_number,
    stream,
)

__all__ = ["DEFAULT_LOCK_TIMEOUT_MS", "DEFAULT_RETRIES", "online_dry_run", "online_upgrade"]

DEFAULT_LOCK_TIMEOUT_MS = 1000
DEFAULT_RETRIES = 8
# CREATE/DROP INDEX CONCURRENTLY and VALIDATE CONSTRAINT take SHARE UPDATE EXCLUSIVE, which writers'
# ROW EXCLUSIVE does not conflict with: waiting longer never stalls a writer. It conflicts with
# autovacuum, which a waiter only cancels after deadlock_timeout (1 s); with the short lock_timeout
# a 1M-row run after the batched backfill lost that race nine times in a row.
DEFAULT_SHARE_LOCK_TIMEOUT_MS = 30_000
PROGRESS_EVERY_S = 0.5
CATCH_UP_PASSES = 3

_OWN_INDEXES = (*schema.V7_EVENT_INDEXES, *schema.OWN_INDEXES, UNIQUE)


@dataclass
class _Run(Steps):
    """Steps plus what the online sequence carries from one step to the next."""

    started_at: float = field(default_factory=time.perf_counter)
    rebuilt: list[str] = field(default_factory=list)  # INVALID indexes dropped, to be rebuilt in their step
    already: bool = False  # at v7 before this run started


Body = Callable[[_Run, Outcome], None]


def _n(count: int) -> str:
    return f"{count:,}"


def _keys_unique(cat: Catalog) -> bool:
    """The keys are held unique: by the constraint, or by its index alone when a run died during its build.

    The server finishes a CREATE INDEX CONCURRENTLY whose client was killed, so a resumed run can find
    a valid unique index that was never attached while later duplicate sources still lack their key:
    from then on only the unique-aware catch-up may fill keys (a plain batch would collide).
    """
    return cat.has_unique() or UNIQUE in cat.indexes


# --- the steps -----------------------------------------------------------------------------------------
def baseline(run: _Run, out: Outcome) -> None:
    cat = run.fresh()
    runner.refuse_unknown_revision(cat)  # before anything changes, even an INVALID index's drop
    # An interrupted concurrent build leaves an INVALID index under one of our names: drop it now
    # (before judging drift), rebuild it in its step.
    for index in list(cat.invalid_indexes):
        if index in _OWN_INDEXES and run.drop_if_invalid(index):
            run.rebuilt.append(index)
    cat = run.fresh()
    if EVENTS in cat.tables:
        runner.refuse_drift(cat, unchanged="nothing changed by this run")
    run.already = cat.v7_complete() and cat.alembic_revision == runner.head() and (cat.marker or 0) >= 7
    if cat.missing_legacy():
        in_one_transaction(work.baseline)(run, out)
    else:
        out.skipped, out.detail = True, _found(cat, run.rebuilt)


def _found(cat: Catalog, rebuilt: list[str]) -> str:
    """What an earlier (interrupted) run left, in one line."""
    parts = [f"legacy tables present (marker {cat.marker_raw or 'missing'})"]
    present = len(schema.V7_COLUMNS) - len(cat.missing_columns())
    if present:
        parts.append(f"found {present}/12 v7 columns, {8 - len(cat.missing_event_indexes())}/8 indexes")
    if rebuilt:
        parts.append(f"dropped INVALID {', '.join(rebuilt)} (interrupted concurrent build; rebuilt below)")
    return "; ".join(parts)


def add_columns(run: _Run, out: Outcome) -> None:
    cat = run.fresh()
    missing, checks = cat.missing_columns(), cat.missing_checks()
    clauses = sql.add_column_clauses(cat) + [sql.set_default_clause(n) for n in sql.drifted_defaults(cat)]
    # NOT VALID: added without scanning the table; VALIDATE later takes a lock that lets writers through.
    clauses += [sql.check_clause(n, not_valid=True) for n in checks]
    if not clauses:
        out.skipped, out.detail = True, "all 12 present (already done)"
        return
    run.transaction(partial(run.sql, sql.alter_events_sql(clauses)))
    parts = []
    if missing:
        present = len(schema.V7_COLUMNS) - len(missing)
        parts.append(f"{len(missing)} added" + (f" ({present} present)" if present else ""))
    if checks:
        parts.append(f"{len(checks)} check{'s' if len(checks) > 1 else ''} NOT VALID")
    out.detail = "; ".join(parts) or "defaults fixed"
    if not run.execute:  # what the next steps of a dry run find
        run.simulated |= {f"{EVENTS}.{c}" for c in missing}
        cat.constraints.update((c, (EVENTS, "c")) for c in checks)
        cat.unvalidated = sorted([*cat.unvalidated, *checks])  # as the catalog lists them


def backfill(run: _Run, out: Outcome) -> None:
    """Keyset batches by id, each its own transaction, before any index on the new columns exists."""
    cat = run.fresh()
    if _keys_unique(cat):
        held = "unique constraint" if cat.has_unique() else "unique index from an earlier run"
        out.skipped, out.detail = True, f"{held} in place: rows are filled by the catch-up pass"
        return
    rows, total, first = 0, 0, 0
    if EVENTS not in run.simulated:  # columns a dry run only pretends to have added: every row lacks them
        new_columns = any(s.startswith(f"{EVENTS}.") for s in run.simulated)
        totals = tuple(run.query(sql.backfill_totals_sql("true" if new_columns else sql.LACKING)).one())
        rows, total, first = int(totals[0]), int(totals[1]), int(totals[2] or 0)
    if total == 0:
        out.skipped, out.detail = True, f"all {_n(rows)} rows have checksum and key (already done)"
        return
    size = run.policy.batch_size
    lo, done, batches, t0, last = first - 1, 0, 0, time.perf_counter(), 0.0
    while True:
        hi, count = run.transaction(partial(_fill_range, run, lo))
        if hi is None:
            break
        lo, done, batches = hi, done + count, batches + 1
        run.hook("after_batch", done)
        run.throttle(done, t0)
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            run.progress(_progress(done, total, t0))
    if not run.execute:  # a dry run shows one batch: the run would do them all
        done, batches = total, -(-rows // size)
    resumed = f"; {_n(rows - total)} rows were already done" if rows > total else ""
    out.detail = f"{_n(done)} rows backfilled in {batches} batches of {_n(size)}{resumed}"


def _fill_range(run: _Run, lo: int) -> tuple[int | None, int]:
    """The next keyset batch after id `lo`: (its last id, rows filled); (None, 0) past the end (or in a dry run)."""
    found = run.sql(sql.BATCH_END_SQL, {"lo": lo, "n": run.policy.batch_size}, repeated=True)
    hi = found.scalar() if found is not None else None
    if hi is None and run.execute:
        return None, 0
    filled = run.sql(sql.FILL_RANGE_SQL, {"lo": lo, "hi": hi}, repeated=True)
    return (None, 0) if filled is None or hi is None else (int(hi), filled.rowcount)


def _progress(done: int, total: int, t0: float) -> str:
    elapsed = max(time.perf_counter() - t0, 1e-6)
    rate = done / elapsed
    total = max(total, done)
    pct = 100 * done // total if total else 100
    eta = (total - done) / rate if rate > 0 else 0.0
    return f"{_n(done)} / {_n(total)} rows ({pct}%), {rate:,.0f} rows/s, ETA {eta:.0f} s"


def duplicate_keys(run: _Run, out: Outcome) -> None:
    cat = run.fresh()
    if cat.has_unique():
        out.skipped, out.detail = True, f"{UNIQUE} present (already done)"
        return
    if UNIQUE in cat.indexes:
        # The run that built it cleared the later duplicates first: count what it left keyless.
        cleared = run.transaction(lambda: data_gaps(run.conn, cat).duplicate_sources)
        note = "found its unique index built by an earlier run"
    else:
        cleared, note = _build_unique(run), "unique index built concurrently"
    run.transaction(partial(run.sql, sql.attach_unique_sql()))
    cat.constraints[UNIQUE] = (EVENTS, "u")  # what the next steps of a dry run find
    found = f"{_n(cleared)} later duplicate sources left without key (oldest row keeps it)" if cleared else ""
    out.detail = f"{found or 'no duplicate sources'}; {note}; attached as {UNIQUE}"
    if not run.execute and note == "unique index built concurrently":
        out.detail = "unique index concurrently; only on a violation: clear later duplicates and rebuild"


def _build_unique(run: _Run) -> int:
    """Build the unique index; on duplicate keys clear the later duplicates' and build again. Returns the cleared."""
    cleared = 0
    for _attempt in range(3):  # a new duplicate can only come from a v7 writer racing us: rare
        run.progress("building the unique index concurrently")
        try:
            run.concurrently(UNIQUE, sql.unique_index_sql())
            if run.execute:
                return cleared
            # A dry run cannot know whether the build meets duplicates: it shows that path too.
            run.note("only if that reports duplicate keys:")
            run.record(sql.drop_index_sql(UNIQUE))
        except DBAPIError as exc:
            if sqlstate(exc) != UNIQUE_VIOLATION:
                raise
        run.progress("duplicate sources found: the oldest row keeps the key, later ones get NULL")
        cleared += run.transaction(lambda: _count(run.sql(sql.CLEAR_DUPLICATES_SQL)))
        if not run.execute:
            run.concurrently(UNIQUE, sql.unique_index_sql())
            return 0
    raise MigrationError("new duplicate idempotency keys keep appearing while the unique index is built")


def _count(result: Any) -> int:
    return int(result.scalar_one()) if result is not None else 0


def create_indexes(run: _Run, out: Outcome) -> None:
    missing = run.fresh().missing_event_indexes()
    total = len(schema.V7_EVENT_INDEXES)
    for i, index in enumerate(missing, 1):
        run.progress(f"building {index} concurrently ({i}/{len(missing)})")
        _build(run, index, sql.event_index_sql(index, concurrently=True))
    if not missing:
        out.skipped, out.detail = True, f"all {total} present (already done)"
        return
    out.detail = f"{len(missing)} built concurrently" + (
        f" ({total - len(missing)} present)" if len(missing) < total else ""
    )
    out.detail += _rebuilt(run, missing)


def paging_indexes(run: _Run, out: Outcome) -> None:
    """dlq-tui's own indexes (revisions v7_1 and v7_2), concurrently like the spec's."""
    cat = run.fresh()
    missing = paging.missing_indexes(cat)
    for index in missing:
        run.progress(f"building {index} concurrently")
        _build(run, index, sql.paging_index_sql(index, concurrently=True))
    if not missing:
        out.skipped, out.detail = True, "all present (already done)"
        return
    out.detail = f"{len(missing)} built concurrently" + _rebuilt(run, missing)


def _build(run: _Run, index: str, statement: str) -> None:
    run.concurrently(index, statement)
    run.hook("after_index", index)


def _rebuilt(run: _Run, built: list[str]) -> str:
    rebuilt = [i for i in run.rebuilt if i in built]
    return f"; rebuilt INVALID {', '.join(rebuilt)}" if rebuilt else ""


def add_constraints(run: _Run, out: Outcome) -> None:
    """VALIDATE takes SHARE UPDATE EXCLUSIVE: writers keep writing while it scans."""
    cat = run.fresh()
    pending = [
        c for c in cat.unvalidated if c in schema.V7_CHECK_CONSTRAINTS or c.startswith(sql.NOT_NULL_CHECK_PREFIX)
    ]
    for constraint in pending:
        run.transaction(partial(run.sql, sql.validate_sql(constraint)), share=True)
    fixed = sql.missing_not_null(cat)  # a half-applied column without its NOT NULL
    for column in fixed:
        for statement in sql.not_null_sql(column, check_exists=sql.not_null_check(column) in cat.constraints):
            run.transaction(partial(run.sql, statement))
    checks = [c for c in pending if c in schema.V7_CHECK_CONSTRAINTS]
    if not pending and not fixed:
        out.skipped, out.detail = True, "checks present and validated (already done)"
        return
    parts = [f"{len(checks)} check{'s' if len(checks) > 1 else ''} validated"] if checks else []
    parts += ["fixed " + ", ".join(f"{c} NOT NULL" for c in fixed)] if fixed else []
    out.detail = "; ".join(parts)


def in_one_transaction(body: Callable[[Steps, Outcome], None]) -> Body:
    """One of the atomic path's step bodies (work.py), in a short transaction of its own, on a fresh catalog."""

    def online(run: _Run, out: Outcome) -> None:
        def attempt() -> None:
            out.detail, out.skipped = "", False
            run.fresh()
            body(run, out)

        run.transaction(attempt)

    return online


def backfill_new_rows(run: _Run, out: Outcome) -> None:
    """Rows legacy writers inserted while we worked have no checksum or key yet: fill them (unlocked passes)."""
    total, keyless, passes = 0, 0, 0
    while passes < CATCH_UP_PASSES:
        passes += 1
        count, dups = _fill_lacking(run)
        total, keyless = total + count, keyless + dups
        if count == 0:
            break
        run.progress(f"{_n(total)} rows written during the migration backfilled (pass {passes})")
    dup_note = f", {_n(keyless)} of them duplicate sources left without key" if keyless else ""
    if not run.execute:
        out.detail = "rows written during the migration, unique-aware batches"
    elif total == 0:
        out.skipped, out.detail = True, "no rows written during the migration lack checksum or key"
    else:
        out.detail = f"{_n(total)} rows written during the migration backfilled{dup_note}"


def _fill_lacking(run: _Run, *, own_transactions: bool = True) -> tuple[int, int]:
    """Every row lacking checksum or key, in keyset batches (each its own transaction): (rows, left keyless)."""
    lo, done, keyless = 0, 0, 0
    while True:
        batch = partial(_fill_batch, run, lo)
        hi, count, dups = run.transaction(batch) if own_transactions else batch()
        if hi is None:
            return done, keyless
        lo, done, keyless = hi, done + count, keyless + dups


def _fill_batch(run: _Run, lo: int) -> tuple[int | None, int, int]:
    """The next batch of rows lacking checksum or key after id `lo`, filled unique-aware: (last id, rows, keyless)."""
    found = run.sql(sql.LACKING_IDS_SQL, {"lo": lo, "n": run.policy.batch_size}, repeated=True)
    ids = list(found.scalars()) if found is not None else None
    if ids == []:
        return None, 0, 0
    filled = run.sql(sql.fill_keys_sql("ids"), {"ids": ids}, repeated=True)
    if filled is None or not ids:  # a dry run shows one batch
        return None, 0, 0
    count, keyless = tuple(filled.one())
    return max(ids), int(count), int(keyless)


def set_marker(run: _Run, out: Outcome) -> None:
    """Marker and alembic stamp in one short transaction, after the last rows under a brief SHARE lock.

    The SHARE lock makes "marker reads 7" imply "no row lacks its checksum": writers wait only for
    the handful of rows inserted since the catch-up pass (and never longer than lock_timeout to get it).
    """
    import alembic.command  # noqa: F401  (~0.3 s: paid before the lock, not while writers wait)

    head, marker, last = runner.head(), Outcome(), dict[str, Any]()

    def body() -> None:
        marker.detail, marker.skipped = "", False
        cat = run.fresh()
        if run.execute and not cat.v7_complete():
            raise MigrationError(f"v7 objects still missing before the marker: {', '.join(cat.missing_v7()[:3])}")
        run.note(f"alembic stamp {head}")
        if run.execute:
            runner.stamp(run.conn, head)
        t0 = time.perf_counter()
        run.sql(sql.FINAL_LOCK_SQL)
        rows, _keyless = _fill_lacking(run, own_transactions=False)
        work.set_marker(run, marker)
        last.update(rows=rows, ms=(time.perf_counter() - t0) * 1000, stamped=cat.alembic_revision)

    run.transaction(body)
    out.skipped = marker.skipped and last["rows"] == 0 and last["stamped"] == head
    lock = f"last {_n(last['rows'])} rows under a {last['ms']:.0f} ms" if run.execute else "the last rows under a brief"
    out.detail = f"{marker.detail}; alembic {'stamped' if run.execute else 'stamp'} {head}; {lock} SHARE lock"


def commit(run: _Run, out: Outcome) -> None:
    if not run.execute:
        out.skipped, out.detail = True, "dry run: nothing changed"
        return
    changed = [n for n, st in run.statuses.items() if st == "done" and n not in ("set_marker", "backfill_new_rows")]
    out.skipped = run.already and not changed
    if out.skipped:
        out.detail = "already at v7; no schema change"
    else:
        out.detail = f"migrated to v7 online in {time.perf_counter() - run.started_at:.1f} s"
    if run.lock_retries:
        out.detail += f" ({run.lock_retries} lock retries)"


# In the order they run. A new step: its function above and one line here (and its title in steps.py).
SEQUENCE: tuple[tuple[str, Body], ...] = (
    ("baseline", baseline),
    ("add_columns", add_columns),
    ("backfill", backfill),
    ("duplicate_keys", duplicate_keys),
    ("create_indexes", create_indexes),
    ("paging_indexes", paging_indexes),
    ("add_constraints", add_constraints),
    ("create_tables", in_one_transaction(work.create_tables)),
    ("create_view", in_one_transaction(work.create_view)),
    ("create_function", in_one_transaction(work.create_function)),
    ("create_triggers", in_one_transaction(work.create_triggers)),
    ("backfill_new_rows", backfill_new_rows),
    ("set_marker", set_marker),
    ("commit", commit),
)


def _sequence(run: _Run) -> None:
    for name, body in SEQUENCE:
        with run.step(name) as out:
            body(run, out)


# --- the run -----------------------------------------------------------------------------------------------
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
    policy = Policy(True, lock_timeout_ms, share_lock_timeout_ms, retries, batch_size, max_rate)
    if isinstance(engine_or_dsn, str):
        from dlq_tui.db.connect import make_engine

        engine = make_engine(engine_or_dsn)
        try:
            yield from _online(engine, policy, lock_wait_s, hooks)
        finally:
            engine.dispose()
        return
    yield from _online(engine_or_dsn, policy, lock_wait_s, hooks)


def _online(
    engine: Engine, policy: Policy, lock_wait_s: float, hooks: Mapping[str, Hook] | None
) -> Iterator[StepEvent]:
    if engine.dialect.name != "postgresql":  # nothing to do online: v7 only moves the marker there
        yield from runner.upgrade(engine, lock_wait_s=lock_wait_s, hooks=hooks)
        return
    for name in STEP_NAMES:
        yield StepEvent(step_number(name), name, "pending")
    started = time.perf_counter()
    lock = StepEvent(step_number("acquire_lock"), "acquire_lock", "running")
    yield lock
    try:
        lock_conn, waited = runner.take_advisory_lock(engine, lock_wait_s, unchanged="nothing changed by this run")
    except MigrationError as exc:
        yield replace(lock, status="failed", duration_s=time.perf_counter() - started, detail=str(exc))
        raise
    try:
        detail = f"waited {waited:.1f} s for another migration" if waited >= runner.LOCK_POLL_S else "free"
        yield replace(lock, status="done", duration_s=time.perf_counter() - started, detail=detail)
        with engine.connect() as conn, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ddl:
            ddl.exec_driver_sql(sql.lock_timeout_sql(policy.share_lock_timeout_ms, local=False))
            ddl.exec_driver_sql("SET maintenance_work_mem = '256MB'")
            run = _Run(conn, hooks=dict(hooks or {}), policy=policy, ddl=ddl, started_at=started)
            yield from stream(
                partial(_run_online, run),
                cancel=run.cancel,
                interrupt=run.interrupt,
                interrupted=run.interrupted,
                lockstep=True,  # as the generator it was: hooks and the caller never run at the same time
            )
    finally:
        runner.release_advisory_lock(lock_conn)


def _run_online(run: _Run, report: Report) -> None:
    """The sequence, in stream()'s worker thread; every failure ends in one "failed" event."""
    run.report = report
    try:
        _sequence(run)
    except BaseException as exc:
        error = run.fail(exc)
        if error is exc:
            raise
        raise error from exc


# --- dry run -------------------------------------------------------------------------------------------
def online_dry_run(engine: Engine) -> Iterator[StepEvent]:
    """The online SEQUENCE with execute=False: each step with the SQL it would run; read-only, changes nothing."""
    if engine.dialect.name != "postgresql":
        yield from runner.dry_run(engine)
        return
    collected: list[StepEvent] = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        run = _Run(conn, collected.append, execute=False, policy=Policy(True))
        try:
            run.emit("acquire_lock", "skipped", 0.0, "dry run: no lock taken (a run polls pg_try_advisory_lock)")
            _sequence(run)
        finally:
            conn.rollback()
    yield from (e for e in collected if e.status != "running")
