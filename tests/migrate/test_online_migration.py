"""The online v7 migration (`dlq-tui --migrate --online`) against a real PostgreSQL.

What an operator relies on: the same end state as the atomic path, writers never stalled, nothing
lost, every row filled, and a run interrupted anywhere (killed, connection lost, lock busy) finished
by the next run.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.db import schema
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner, sql
from dlq_tui.migrate.online import online_dry_run, online_upgrade
from dlq_tui.migrate.steps import MigrationError, StepEvent
from tests.support import dbstates
from tests.support.migration_helpers import (
    assert_same_as_atomic,
    assert_v7_end_state,
    expected_checksum,
    expected_key,
    finished,
    run_upgrade,
    snapshot,
)

ROWS = 6000

# The online migration on every supported major, with and without pgcrypto in the database (tests/conftest.py).
pytestmark = pytest.mark.pg_versions(pgcrypto=True)


def run_online(engine: Engine, **kwargs: Any) -> list[StepEvent]:
    return [e for e in online_upgrade(engine, **kwargs) if e.status not in ("pending", "running")]


@pytest.fixture
def reference(pg_server) -> Iterator[Any]:
    """Builds a second database in the same state and migrates it with the atomic runner."""
    made: list[tuple[str, Engine]] = []

    def build(state: str, rows: int = ROWS) -> Engine:
        name = pg_server.create_database()
        engine = make_engine(pg_server.dsn_for(name))
        made.append((name, engine))
        _make(engine, state, rows)
        for _event in runner.upgrade(engine):
            pass
        return engine

    yield build
    for name, engine in made:
        engine.dispose()
        pg_server.drop_database(name)


def _make(engine: Engine, state: str, rows: int = ROWS) -> None:
    if state == "legacy":
        dbstates.make_legacy_v6(engine, rows)
        with engine.begin() as conn:  # copies of 4 and 8 written later, of 12 *earlier* (the copy keeps the key)
            dbstates.add_duplicate_sources(conn, (4, 8, 12), earlier_id=12)
    elif state == "half_applied":
        dbstates.make_half_applied_v7(engine, rows)


@pytest.mark.parametrize("state", ["empty", "legacy", "half_applied"])
def test_online_reaches_the_atomic_end_state(empty_engine: Engine, reference, state: str) -> None:
    _make(empty_engine, state)
    events = run_online(empty_engine, batch_size=1000)
    assert_same_as_atomic(empty_engine, reference(state))
    done = finished(events)
    assert done["commit"].detail.startswith("migrated to v7 online in ")
    if state == "legacy":
        assert done["add_columns"].detail == "12 added; 2 checks NOT VALID"
        assert done["backfill"].detail == f"{ROWS + 3:,} rows backfilled in 7 batches of 1,000"
        assert done["duplicate_keys"].detail.startswith("3 later duplicate sources left without key")
        assert done["create_indexes"].detail == "8 built concurrently"
        names = [e.name for e in events]
        assert names.index("backfill") < names.index("create_indexes") < names.index("add_constraints")
        assert names.index("backfill_new_rows") < names.index("set_marker") < names.index("commit")
    if state == "half_applied":
        assert done["add_constraints"].detail == "1 check validated; fixed retry_count NOT NULL"
    # check, the atomic runner and a second online run all agree it is done.
    assert runner.check(empty_engine).current
    before = snapshot(empty_engine)
    assert finished(list(runner.upgrade(empty_engine)))["commit"].detail == "already at v7; no schema change"
    again = finished(run_online(empty_engine))
    assert again["commit"].detail == "already at v7; no schema change"
    assert again["add_columns"].detail == "all 12 present (already done)"
    assert snapshot(empty_engine) == before


def _statements(sql: str | None) -> list[str]:
    """The statements of a step's SQL, without the comment lines between them."""
    chunks = re.split(r";\n|;$", sql or "")
    return [s for s in ("\n".join(x for x in c.split("\n") if not x.startswith("-- ")).strip() for c in chunks) if s]


def _in_order(ran: list[str], shown: list[str]) -> bool:
    rest = iter(shown)
    return all(any(s == r for s in rest) for r in ran)


@pytest.mark.parametrize("state", ["empty", "legacy", "half_applied"])
def test_online_dry_run_shows_the_sql_the_online_run_then_executes(empty_engine: Engine, state: str) -> None:
    """The plan is the online sequence itself run with execute=False: each step lists what the run executes."""
    _make(empty_engine, state)
    before = snapshot(empty_engine)
    plan = finished(list(online_dry_run(empty_engine)))
    assert snapshot(empty_engine) == before
    events = run_online(empty_engine, batch_size=1000)
    assert [e.name for e in events] == list(plan)
    for event in events[1:-1]:  # between taking the lock and the commit
        ran, shown = _statements(event.sql), _statements(plan[event.name].sql)
        assert _in_order(ran, shown) and (ran or event.status == "skipped"), (event.name, ran, shown)
        if event.name != "backfill_new_rows":  # the plan cannot know which rows writers add meanwhile
            planned = plan[event.name].status  # a dry run's step with work to do is "planned"; the run's is "done"
            assert {"planned": "done"}.get(planned, planned) == event.status, event.name
    if state != "half_applied":  # there the marker already reads 7
        marker = _statements(plan["set_marker"].sql)[-1]  # with its bound values, as it runs
        assert marker.startswith(("UPDATE schema_state", "INSERT INTO schema_state")) and "'schema_version'" in marker


def test_backfill_reports_progress_and_honours_max_rate(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 3000)
    started = time.perf_counter()
    events = list(online_upgrade(empty_engine, batch_size=250, max_rate=2500))
    assert time.perf_counter() - started >= 1.1  # 3,000 rows at 2,500 rows/s
    progress = [e.detail for e in events if e.name == "backfill" and e.status == "running" and e.detail]
    assert progress and all(" / 3,000 rows (" in p and "rows/s, ETA" in p for p in progress)
    rates = [float(p.split("), ")[1].split(" rows/s")[0].replace(",", "")) for p in progress]
    assert max(rates) < 3500


def test_writer_is_never_blocked_and_loses_no_row(empty_engine: Engine, empty_dsn: str) -> None:
    """A pipeline writer inserting a legacy-shaped row every 20 ms during an online migration of 200k rows."""
    dbstates.make_legacy_v6(empty_engine, 200_000)
    latencies: list[float] = []
    inserted: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(empty_dsn, autocommit=True) as conn:
                n = 0
                while not stop.is_set():
                    n += 1
                    t0 = time.perf_counter()
                    row = conn.execute(
                        "INSERT INTO dead_letter_events (ingest_id, source, source_offset, reason, payload) "
                        "VALUES ('live', '/var/log/cowrie/live.json', %s, 'json_parsing_failed', "
                        "%s::json) RETURNING id",
                        (n, f'{{"malformed_content": "live {n}"}}'),
                    ).fetchone()
                    latencies.append(time.perf_counter() - t0)
                    inserted.append(row[0])
                    time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(0.3)
    events = run_online(empty_engine)
    stop.set()
    thread.join(10)
    assert not errors
    assert finished(events)["commit"].detail.startswith("migrated to v7 online")
    assert len(latencies) > 50, "the writer barely ran during the migration"
    assert max(latencies) < 1.0, f"a writer INSERT waited {max(latencies):.2f} s"
    with empty_engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT id, source, source_offset, payload::text, payload_checksum, idempotency_key "
                "FROM dead_letter_events WHERE ingest_id = 'live' ORDER BY id"
            )
        ).all()
        marker_at = conn.execute(
            text("SELECT count(*) FROM dead_letter_events WHERE payload_checksum IS NULL")
        ).scalar()
    assert [r[0] for r in live] == inserted  # no row lost
    # Every row written while the migration ran has its checksum and key: at the moment the marker
    # moved to 7 no row lacked them (rows the writer added after it returned are the only exception).
    filled = [r for r in live if r[4] is not None]
    assert len(live) - len(filled) <= 2 and marker_at == len(live) - len(filled)
    for _id, source, offset, payload, checksum, key in filled:
        assert checksum == expected_checksum(payload) and key == expected_key(source, offset, checksum)
    assert_v7_end_state(empty_engine)


def test_lost_connection_mid_index_leaves_an_invalid_index_that_is_rebuilt(
    empty_engine: Engine, empty_dsn: str, reference
) -> None:
    _make(empty_engine, "legacy")
    blocker = psycopg.connect(empty_dsn)
    watcher_done = threading.Event()

    def hold_a_snapshot(step: str) -> None:
        if step == "duplicate_keys":  # an old snapshot makes the next concurrent build wait, index half made
            blocker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            blocker.execute("SELECT count(*) FROM schema_state")
            threading.Thread(target=terminate_the_index_build, daemon=True).start()

    def terminate_the_index_build() -> None:
        with psycopg.connect(empty_dsn, autocommit=True) as admin:
            for _ in range(200):
                pid = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchone()
                if pid:
                    admin.execute("SELECT pg_terminate_backend(%s)", pid)
                    break
                time.sleep(0.05)
        watcher_done.set()

    seen: list[StepEvent] = []
    with pytest.raises(Exception) as info:
        for event in online_upgrade(empty_engine, lock_timeout_ms=20_000, hooks={"after_step": hold_a_snapshot}):
            seen.append(event)
    assert watcher_done.wait(10)
    blocker.rollback()
    blocker.close()
    assert not isinstance(info.value, MigrationError)  # a lost connection: the CLI says so and exits 2
    failed = [e for e in seen if e.status == "failed"]
    assert failed[-1].name == "create_indexes" and "lost the connection" in failed[-1].detail
    with empty_engine.connect() as conn:
        invalid = conn.execute(text("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")).scalars()
        assert list(invalid) == ["ix_dead_letter_events_payload_checksum"]

    events = finished(run_online(empty_engine))
    assert "dropped INVALID ix_dead_letter_events_payload_checksum" in events["baseline"].detail
    assert (
        events["create_indexes"].detail
        == "8 built concurrently; rebuilt INVALID ix_dead_letter_events_payload_checksum"
    )
    assert_same_as_atomic(empty_engine, reference("legacy"))


def test_busy_lock_is_retried_with_backoff_then_given_up_clearly(empty_engine: Engine, empty_dsn: str) -> None:
    dbstates.make_legacy_v6(empty_engine, 500)
    holder = psycopg.connect(empty_dsn)
    holder.execute("SELECT count(*) FROM dead_letter_events")  # an open transaction: ALTER TABLE must wait
    seen: list[StepEvent] = []
    started = time.perf_counter()
    with pytest.raises(MigrationError, match=r"another transaction kept a lock .*step 3 add_columns.*resume"):
        for event in online_upgrade(empty_engine, lock_timeout_ms=100, retries=2):
            seen.append(event)
    assert time.perf_counter() - started < 5
    assert [e.detail.split(";")[1].strip()[:11] for e in seen if "lock busy" in e.detail] == [
        "retry 1/2 i",
        "retry 2/2 i",
    ]
    assert runner.check(empty_engine).marker == 6

    threading.Timer(1.0, holder.rollback).start()  # the long reader ends while we retry
    events = finished(run_online(empty_engine, lock_timeout_ms=100, retries=8))
    holder.close()
    assert "lock retries" in events["commit"].detail
    assert_v7_end_state(empty_engine)


def test_two_concurrent_online_runs(empty_engine: Engine, empty_dsn: str) -> None:
    _make(empty_engine, "legacy")
    engines = [make_engine(empty_dsn) for _ in range(2)]
    first_running = threading.Event()
    results: dict[str, Any] = {}

    def migrate(label: str, engine: Engine, **kwargs: Any) -> None:
        try:
            results[label] = finished(run_online(engine, **kwargs))
        except Exception as exc:
            results[label] = exc

    def started(_rows: int) -> None:
        first_running.set()

    a = threading.Thread(
        target=migrate,
        args=("a", empty_engine),
        kwargs={"batch_size": 500, "max_rate": 8000, "hooks": {"after_batch": started}},
    )
    a.start()
    assert first_running.wait(30)
    b = threading.Thread(target=migrate, args=("b", engines[0]), kwargs={"lock_wait_s": 0.4})
    c = threading.Thread(target=migrate, args=("c", engines[1]), kwargs={"lock_wait_s": 60})
    b.start()
    c.start()
    for t in (a, b, c):
        t.join(90)
    for e in engines:
        e.dispose()
    assert results["a"]["commit"].detail.startswith("migrated to v7 online")
    assert isinstance(results["b"], MigrationError)
    assert str(results["b"]).startswith("another migration is running (waited 0.4 s for its lock); nothing changed")
    assert results["c"]["acquire_lock"].detail.startswith("waited")
    assert results["c"]["commit"].detail == "already at v7; no schema change"
    assert_v7_end_state(empty_engine)


def test_cli_online_streams_progress_and_exit_codes(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    dbstates.make_half_applied_v7(empty_engine, 2000)
    with empty_engine.begin() as conn:
        # The last row violates ck_priority_range: even NOT VALID, the check refuses the backfill's UPDATE of it.
        conn.execute(text("UPDATE dead_letter_events SET priority = 0 WHERE id = 2000"))
    before = snapshot(empty_engine)
    assert run(["--dsn", empty_dsn, "--migrate", "--online", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "CREATE INDEX CONCURRENTLY ix_dead_letter_events_payload_checksum" in out
    assert "ADD CONSTRAINT uq_idempotency_key UNIQUE USING INDEX uq_idempotency_key" in out
    assert snapshot(empty_engine) == before

    assert run(["--dsn", empty_dsn, "--migrate", "--online", "--batch-size", "300"]) == 1
    captured = capsys.readouterr()
    assert "  …  4/15 backfill" in captured.out and "rows/s, ETA" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "step 4 backfill" in err[0] and "ck_priority_range" in err[0]
    assert "again to resume" in err[0] and "Traceback" not in captured.err

    with empty_engine.begin() as conn:
        conn.execute(text("UPDATE dead_letter_events SET priority = 5 WHERE id = 2000"))
    assert run(["--dsn", empty_dsn, "--migrate", "--online"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("add_columns" in line and "already done" in line for line in out)
    assert any("backfill" in line and "1,800 rows were already done" in line for line in out)
    assert out[-1].startswith("✓ migrated to v7 online in ")
    assert_v7_end_state(empty_engine)
    assert run(["--dsn", "postgresql://nobody:secret@127.0.0.1:1/x", "--migrate", "--online"]) == 2
    assert "secret" not in capsys.readouterr().err


@pytest.mark.parametrize("state", ["legacy", "newer_release"])
def test_unknown_alembic_revision_is_refused_by_both_paths(
    empty_engine: Engine, empty_dsn: str, capsys, state: str
) -> None:
    """A revision this release does not know is a newer release's: neither path may stamp over it."""
    if state == "legacy":
        dbstates.make_legacy_v6(empty_engine, 500)
    else:
        dbstates.make_v8(empty_engine, 500)
        with psycopg.connect(empty_dsn, autocommit=True) as conn:  # and an interrupted build it left INVALID
            conn.execute("DROP INDEX ix_dead_letter_events_retry_count")
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_dead_letter_events_retry_count "
                    "ON dead_letter_events (retry_count)"
                )
    with empty_engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('v9_tenants')"))
    before = snapshot(empty_engine)
    refused = "dlq-tui: migration failed: alembic_version holds an unknown revision 'v9_tenants'; nothing changed"
    for mode in ([], ["--dry-run"], ["--online"], ["--online", "--dry-run"]):
        assert run(["--dsn", empty_dsn, "--migrate", *mode]) == 1, mode
        assert capsys.readouterr().err.strip().splitlines() == [refused], mode
        assert snapshot(empty_engine) == before, mode


class _Stop(Exception):
    """Raised from a hook: the online run stops there, as an operator's Ctrl-C or a lost session leaves it."""


def _stop_at(point: str, target: str) -> dict[str, Callable[[object], None]]:
    def hook(value: object) -> None:
        if str(value) == target:
            raise _Stop(f"stopped at {point} {target}")

    return {point: hook}


def _failed_concurrent_build(dsn: str, name: str, columns: str) -> None:
    """An INVALID index called `name`, as a CREATE INDEX CONCURRENTLY that failed half way leaves it."""
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON dead_letter_events ({columns})")


@pytest.mark.parametrize(
    ("point", "target", "leftover"),
    [
        ("after_step", "add_columns", "none"),  # CHECKs NOT VALID, NOT NULL checks of the online path
        ("after_step", "backfill", "none"),
        ("before_index", "unique", "valid unique index"),  # the server finished the build of a killed client
        ("before_index", "unique", "invalid unique index"),
        ("after_step", "duplicate_keys", "invalid event index"),
    ],
    ids=["after add_columns", "after backfill", "valid unique index", "invalid unique index", "invalid event index"],
)
def test_the_atomic_migration_finishes_an_interrupted_online_run(
    empty_engine: Engine, empty_dsn: str, reference, point: str, target: str, leftover: str
) -> None:
    """An operator whose online run stopped part way may run the plain `dlq-tui --migrate` instead: it must
    reach the same end state, whatever objects the online run left (NOT VALID checks, an unattached unique
    index, INVALID indexes of interrupted concurrent builds)."""
    unique = schema.V7_UNIQUE_CONSTRAINT
    target = unique if target == "unique" else target
    _make(empty_engine, "legacy")
    with pytest.raises(_Stop):
        run_online(empty_engine, batch_size=1000, hooks=_stop_at(point, target))
    if leftover == "valid unique index":
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            conn.execute(sql.CLEAR_DUPLICATES_SQL)  # what the online run's catch-up had done before its build
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {unique} ON dead_letter_events (idempotency_key)")
    elif leftover == "invalid unique index":
        _failed_concurrent_build(empty_dsn, unique, "reason")
    elif leftover == "invalid event index":
        _failed_concurrent_build(empty_dsn, next(iter(schema.V7_EVENT_INDEXES)), "reason")
    assert not runner.check(empty_engine).current

    events = finished(run_upgrade(empty_engine))
    assert events["commit"].status == "done", {n: (e.status, e.detail) for n, e in events.items()}
    assert_same_as_atomic(empty_engine, reference("legacy"))
    assert runner.check(empty_engine).current
