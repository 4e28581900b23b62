"""The v7 migration against a real PostgreSQL: every database state a user can have, and every failure mode."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from dlq_tui.db import schema
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner
from dlq_tui.migrate.steps import STEP_NAMES, MigrationError
from tests.support import dbstates
from tests.support.migration_helpers import (
    assert_v7_end_state,
    expected_checksum,
    expected_key,
    finished,
    run_upgrade,
    snapshot,
)

LEGACY_ROWS = 3000

# The migration, atomic, on every supported major, with and without pgcrypto in the database (tests/conftest.py).
pytestmark = pytest.mark.pg_versions(pgcrypto=True)


def _rows(engine: Engine, *, legacy: bool = False) -> list[tuple]:
    v7 = "NULL, NULL" if legacy else "payload_checksum, idempotency_key"
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    f"SELECT id, source, source_offset, payload::text, {v7}, created_at "
                    "FROM dead_letter_events ORDER BY id"
                )
            )
        )


def test_migrations_dir_is_found_from_the_package() -> None:
    path = runner.migrations_dir()
    assert (path / "env.py").is_file()
    assert {p.name for p in (path / "versions").glob("*.py")} >= {"v6_baseline.py", "v7.py"}


def test_fresh_empty_database_to_v7(empty_engine: Engine) -> None:
    events = run_upgrade(empty_engine)
    assert_v7_end_state(empty_engine)
    done = finished(events)
    assert done["baseline"].status == "done" and "dead_letter_events" in done["baseline"].detail
    assert done["commit"].detail.startswith("migrated to v7")
    assert runner.check(empty_engine).current


def test_runner_end_state_matches_the_schema_module(empty_engine: Engine, pg_server) -> None:
    """Cross-check: the migration's catalog equals the one dlq_tui.db.schema creates directly."""
    run_upgrade(empty_engine)
    name = pg_server.create_database()
    try:
        other = make_engine(pg_server.dsn_for(name))
        dbstates.create_v7_from_metadata(other)
        a, b = snapshot(empty_engine, with_data=False), snapshot(other, with_data=False)
        other.dispose()
    finally:
        pg_server.drop_database(name)
    for key in ("columns", "indexes", "constraints", "triggers", "functions"):
        strip = [r for r in a[key] if "alembic_version" not in r[0]]
        assert strip == b[key], key
    assert [r for r in a["relations"] if "alembic_version" not in r[0]] == b["relations"]


def test_legacy_v6_with_rows_to_v7(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, LEGACY_ROWS)
    with empty_engine.begin() as conn:
        # Copies of rows 4 and 8 written an hour later, and of row 12 an hour *earlier* (so the copy is oldest).
        dup_ids = dbstates.add_duplicate_sources(conn, (4, 8, 12), earlier_id=12)
    before = _rows(empty_engine, legacy=True)

    events = run_upgrade(empty_engine)

    assert_v7_end_state(empty_engine)
    # The step log reports the steps in the order they ran, fast order: backfill before indexes/constraints.
    names = [e.name for e in events]
    assert names.index("backfill") < names.index("create_indexes") < names.index("add_constraints")
    assert names.index("add_constraints") < names.index("create_triggers") < names.index("set_marker")
    assert names[-1] == "commit" and sorted(names, key=STEP_NAMES.index) == names
    done = finished(events)
    assert done["backfill"].detail.startswith(f"{LEGACY_ROWS + 3:,} rows backfilled")
    assert done["duplicate_keys"].detail.startswith("3 later duplicate sources")
    assert all(e.duration_s is not None for e in events)

    after = _rows(empty_engine)
    assert [r[:4] for r in after] == [r[:4] for r in before]  # legacy data untouched, payload text identical
    keyed = 0
    for _id, source, offset, payload_text, checksum, key, _created in after:
        assert checksum == expected_checksum(payload_text)
        if key is not None:
            assert key == expected_key(source, offset, checksum)
            keyed += 1
    assert keyed == len(after) - 3
    by_id = {r[0]: r for r in after}
    # Rows 4 and 8 are older than their copies: they keep the key. Row 12's copy is older: it wins.
    assert by_id[4][5] is not None and by_id[dup_ids[0]][5] is None
    assert by_id[8][5] is not None and by_id[dup_ids[1]][5] is None
    assert by_id[12][5] is None and by_id[dup_ids[2]][5] == expected_key(by_id[12][1], by_id[12][2], by_id[12][4])

    with empty_engine.begin() as conn:
        old = conn.execute(text("SELECT updated_at, retry_count, priority FROM dead_letter_events WHERE id = 5")).one()
        assert (old.retry_count, old.priority) == (0, 5)
        conn.execute(text("UPDATE dead_letter_events SET classification = 'malicious' WHERE id = 5"))
    with empty_engine.connect() as conn:
        new = conn.execute(text("SELECT updated_at FROM dead_letter_events WHERE id = 5")).scalar()
        health = conn.execute(text("SELECT * FROM dlq_health")).mappings().one()
    assert new > old.updated_at  # the trigger fired on UPDATE
    assert health["malicious_events"] == 1
    assert health["pending_events"] + health["processed_events"] == LEGACY_ROWS + 3
    status = runner.check(empty_engine)
    assert status.current and status.duplicate_idempotency_sources == 3


def test_second_run_is_a_no_op_but_backfills_rows_from_legacy_writers(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 200)
    run_upgrade(empty_engine)
    before = snapshot(empty_engine)

    events = run_upgrade(empty_engine)
    assert snapshot(empty_engine) == before
    done = finished(events)
    assert done["commit"].detail == "already at v7; no schema change"
    assert all(done[n].status == "skipped" for n in STEP_NAMES[1:13])

    # A legacy writer (legacy columns only) adds rows after v7, one of them repeating row 7's source.
    with empty_engine.begin() as conn:
        dbstates.insert_legacy_rows(conn, 5, first=1001)
        dbstates.add_duplicate_sources(conn, (7,))
    status = runner.check(empty_engine)
    # Rows without checksum are a data note, not a schema verdict: the schema is still current.
    assert status.current and not status.problems and status.rows_without_checksum == 6
    assert status.notes == [
        "6 of 206 rows have no payload checksum and no idempotency key: from writers that do not set them, or a "
        "v7 migration run without pgcrypto (it leaves every row NULL); dlq-tui --migrate backfills them"
    ]
    events = run_upgrade(empty_engine)
    done = finished(events)
    assert done["backfill_new_rows"].detail == (
        "6 rows without checksum or key backfilled, 1 of them duplicate sources left without key"
    )
    assert done["commit"].detail.startswith("already at v7; 6 rows without checksum or key backfilled")
    for _id, source, offset, payload_text, checksum, key, _c in _rows(empty_engine)[-6:]:
        assert checksum == expected_checksum(payload_text)
        assert key in (None, expected_key(source, offset, checksum))
    status = runner.check(empty_engine)
    assert status.current and status.duplicate_idempotency_sources == 1
    assert status.notes == [
        "duplicate idempotency sources: 1 event repeats an older event's source, offset and payload and has no "
        "idempotency key (the oldest keeps it: nothing to backfill)"
    ]


def test_pipeline_v7_without_pgcrypto_is_current_with_a_note_and_migrate_backfills(empty_engine: Engine) -> None:
    # What the pipeline's own tool leaves when pgcrypto is missing: every v7 object and marker 7, no
    # alembic_version, and every checksum and key NULL.
    dbstates.create_v7_from_metadata(empty_engine)
    with empty_engine.begin() as conn:
        dbstates.insert_legacy_rows(conn, 40)
    status = runner.check(empty_engine)
    assert status.current and status.problems == [] and status.missing == []
    assert (status.rows_without_checksum, status.rows_without_key) == (40, 40)
    assert len(status.notes) == 1 and status.notes[0].startswith(
        "40 of 40 rows have no payload checksum and no idempotency key: "
    )
    assert "v7 migration run without pgcrypto" in status.notes[0] and "written after v7" not in status.notes[0]

    done = finished(run_upgrade(empty_engine))
    assert done["backfill_new_rows"].detail == "40 rows without checksum or key backfilled"
    for _id, source, offset, payload_text, checksum, key, _c in _rows(empty_engine):
        assert checksum == expected_checksum(payload_text) and key == expected_key(source, offset, checksum)
    status = runner.check(empty_engine)
    assert status.current and status.notes == []


def test_half_applied_v7_is_completed(empty_engine: Engine) -> None:
    dbstates.make_half_applied_v7(empty_engine, 900)
    status = runner.check(empty_engine)
    assert not status.current
    assert "constraint uq_idempotency_key" in status.missing and "view dlq_health" in status.missing
    assert any("marker reads 7 but the catalog lacks" in p for p in status.problems)
    with empty_engine.connect() as conn:
        kept = dict(conn.execute(text("SELECT id, payload_checksum FROM dead_letter_events WHERE id % 3 = 0")).all())

    events = run_upgrade(empty_engine)
    assert_v7_end_state(empty_engine)
    done = finished(events)
    assert done["add_columns"].detail == "7 added (5 present); fixed retry_count NOT NULL"
    assert done["create_indexes"].detail == "5 created (3 present)"
    assert done["create_function"].status == "skipped"
    rows = _rows(empty_engine)
    assert all(r[4] == expected_checksum(r[3]) and r[5] == expected_key(r[1], r[2], r[4]) for r in rows)
    assert all(kept[r[0]] == r[4] for r in rows if r[0] in kept)
    assert runner.check(empty_engine).current


def test_alembic_at_v7_with_objects_dropped_is_completed(empty_engine: Engine) -> None:
    run_upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text("DROP VIEW dlq_health"))
        conn.execute(text("DROP INDEX ix_dead_letter_events_lock_expires"))
    assert runner.check(empty_engine).missing == ["index ix_dead_letter_events_lock_expires", "view dlq_health"]
    run_upgrade(empty_engine)
    assert_v7_end_state(empty_engine)


@pytest.mark.parametrize("online", [False, True], ids=["atomic", "online"])
def test_database_stamped_v7_1_gets_the_health_indexes_of_v7_2(empty_engine: Engine, online: bool) -> None:
    """A database a previous release left at v7_1 lacks the health indexes: either path adds them and stamps v7_2."""
    from dlq_tui.migrate.online import online_upgrade

    run_upgrade(empty_engine)
    with empty_engine.begin() as conn:
        for name in schema.HEALTH_INDEXES:
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("UPDATE alembic_version SET version_num = 'v7_1'"))
    assert runner.check(empty_engine).alembic_revision == "v7_1"
    events = [e for e in online_upgrade(empty_engine) if e.status != "running"] if online else run_upgrade(empty_engine)
    assert finished(events)["paging_indexes"].status == "done"
    assert_v7_end_state(empty_engine)


def test_v8_database_keeps_its_marker(empty_engine: Engine) -> None:
    dbstates.make_v8(empty_engine, 50)
    events = run_upgrade(empty_engine)
    done = finished(events)
    assert "every v7 object already present (marker 8)" in done["baseline"].detail
    assert done["set_marker"].detail == "marker reads 8; left as is"
    assert done["backfill_new_rows"].detail == "50 rows without checksum or key backfilled"
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM schema_state")).scalar() == "8"
        assert conn.execute(text("SELECT count(*) FROM dead_letter_events WHERE v8_tenant IS NULL")).scalar() == 50
    status = runner.check(empty_engine)
    assert status.current and status.marker == 8


@pytest.mark.parametrize("state", ["empty", "legacy"])
def test_dry_run_changes_nothing_and_shows_the_sql_in_order(empty_engine: Engine, state: str) -> None:
    if state == "legacy":
        dbstates.make_legacy_v6(empty_engine, 300)
    before = snapshot(empty_engine)
    events = list(runner.dry_run(empty_engine))
    assert snapshot(empty_engine) == before
    sql = "\n".join(e.sql for e in events if e.sql)
    assert (
        sql.index("ADD COLUMN payload_checksum") < sql.index("USING coalesce(payload_checksum")
        if (state == "legacy")
        else "ADD COLUMN payload_checksum" in sql
    )
    # The unique constraint comes right after the backfill (its index build is the duplicate check).
    assert sql.index("uq_idempotency_key UNIQUE") < sql.index("CREATE INDEX ix_dead_letter_events_payload_checksum")
    assert sql.index("CREATE INDEX ix_dead_letter_events_classification") < sql.index("ck_priority_range CHECK")
    assert sql.index("CREATE OR REPLACE VIEW dlq_health") < sql.index("CREATE TRIGGER update_dead_letter_events")
    assert runner.plan(empty_engine)[:2] == (
        ["baseline", "add_columns"] if state == "empty" else ["add_columns", "backfill"]
    )
    # The plan it printed is what an upgrade then does.
    assert [e.name for e in run_upgrade(empty_engine)] == [e.name for e in events]


def test_failure_mid_migration_leaves_the_database_unchanged(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 500)
    before = snapshot(empty_engine)

    def fail_after(step: str) -> None:
        if step == "create_tables":
            raise RuntimeError("injected failure")

    seen = []
    with pytest.raises(MigrationError, match="step 8 create_tables: injected failure; rolled back, nothing changed"):
        for event in runner.upgrade(empty_engine, hooks={"after_step": fail_after}):
            seen.append(event)
    assert next(e for e in seen if e.status == "failed").name == "create_tables"
    assert snapshot(empty_engine) == before
    assert runner.check(empty_engine).marker == 6


def test_data_that_violates_a_constraint_rolls_everything_back(empty_engine: Engine) -> None:
    dbstates.make_half_applied_v7(empty_engine, 100)
    with empty_engine.begin() as conn:
        conn.execute(text("UPDATE dead_letter_events SET priority = 0 WHERE id = 3"))
    before = snapshot(empty_engine)
    with pytest.raises(MigrationError, match=r"step 7 add_constraints: .*ck_priority_range"):
        run_upgrade(empty_engine)
    assert snapshot(empty_engine) == before


def test_wrong_column_type_is_refused_before_any_change(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 10)
    with empty_engine.begin() as conn:
        conn.execute(text("ALTER TABLE dead_letter_events ADD COLUMN priority TEXT"))
    before = snapshot(empty_engine)
    with pytest.raises(MigrationError, match=r"column dead_letter_events\.priority is text, expected integer"):
        run_upgrade(empty_engine)
    assert snapshot(empty_engine) == before
    assert any("priority is text" in p for p in runner.check(empty_engine).problems)


def test_two_migrators_at_once(empty_engine: Engine, empty_dsn: str) -> None:
    dbstates.make_legacy_v6(empty_engine, 1000)
    second_engine = make_engine(empty_dsn)
    first_started = threading.Event()
    results: dict[str, object] = {}

    def slow(step: str) -> None:
        if step == "add_columns":
            first_started.set()
            time.sleep(1.5)  # hold the lock while the other migrator starts

    def migrate(label: str, engine: Engine, hooks: dict) -> None:
        try:
            results[label] = run_upgrade(engine, hooks=hooks)
        except Exception as exc:
            results[label] = exc

    a = threading.Thread(target=migrate, args=("a", empty_engine, {"after_step": slow}))
    a.start()
    assert first_started.wait(30)
    b = threading.Thread(target=migrate, args=("b", second_engine, {}))
    b.start()
    a.join(60)
    b.join(60)
    second_engine.dispose()
    first, second = finished(results["a"]), finished(results["b"])  # type: ignore[arg-type]
    assert first["commit"].detail.startswith("migrated to v7")
    assert second["acquire_lock"].detail.startswith("waited")
    assert second["commit"].detail == "already at v7; no schema change"
    assert_v7_end_state(empty_engine)


def test_another_migration_holding_the_lock_gives_a_clear_message(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 10)
    before = snapshot(empty_engine)
    with empty_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": runner.ADVISORY_LOCK_KEY})
        started = time.perf_counter()
        with pytest.raises(MigrationError, match="another migration is running"):
            run_upgrade(empty_engine, lock_wait_s=0.6)
        assert time.perf_counter() - started < 10
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
        holder.commit()
    assert snapshot(empty_engine) == before


def test_lock_timeout_behind_a_long_transaction(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 10)
    before = snapshot(empty_engine)
    with empty_engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM dead_letter_events"))  # open transaction holds ACCESS SHARE
        started = time.perf_counter()
        with pytest.raises(MigrationError, match=r"another transaction holds a lock .*waited 300 ms.*nothing changed"):
            run_upgrade(empty_engine, lock_timeout_ms=300)
        assert time.perf_counter() - started < 10
        reader.rollback()
    assert snapshot(empty_engine) == before
    # Once the reader is gone the migration goes through.
    run_upgrade(empty_engine)
    assert_v7_end_state(empty_engine)


def test_sqlite_changes_nothing_but_the_marker(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'dlq.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE schema_state (key VARCHAR(128) PRIMARY KEY, value VARCHAR(256) NOT NULL)"))
        conn.execute(text("INSERT INTO schema_state VALUES ('schema_version', '6')"))
        conn.execute(text("CREATE TABLE dead_letter_events (id INTEGER PRIMARY KEY, reason TEXT, payload TEXT)"))
        conn.execute(text("CREATE INDEX ix_dead_letter_events_created ON dead_letter_events (reason)"))
        conn.execute(text("CREATE INDEX ix_dead_letter_events_source ON dead_letter_events (payload)"))
    events = run_upgrade(engine)
    done = finished(events)
    assert done["add_columns"].detail == "PostgreSQL only: v7 changes nothing on SQLite"
    assert done["set_marker"].detail == "'6' -> '7'"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM schema_state")).scalar() == "7"
        cols = [r[1] for r in conn.execute(text("PRAGMA table_info(dead_letter_events)"))]
    assert cols == ["id", "reason", "payload"]
    assert runner.check(engine).current
    engine.dispose()


def test_sqlite_without_schema_state_gets_the_marker(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    run_upgrade(engine)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT value FROM schema_state WHERE key = :k"), {"k": schema.SCHEMA_VERSION_KEY}
            ).scalar()
            == "7"
        )
    engine.dispose()


def test_check_reports_a_legacy_database(empty_engine: Engine) -> None:
    dbstates.make_legacy_v6(empty_engine, 20)
    status = runner.check(empty_engine)
    assert not status.current
    assert status.catalog_version == 6 and status.marker == 6 and status.alembic_revision is None
    assert "column dead_letter_events.payload_checksum" in status.missing
    assert "marker reads 6: not migrated to v7 (run dlq-tui --migrate)" in status.problems


def test_each_version_run_is_on_the_server_its_id_names(request: pytest.FixtureRequest, empty_engine: Engine) -> None:
    """The version matrix is real: pg16 runs on a 16, pg15-pgcrypto on a 15 whose databases have pgcrypto."""
    label = request.node.callspec.params["pg_server"]
    major, _, variant = label.partition("-")
    with empty_engine.connect() as conn:
        version_num = conn.execute(text("SHOW server_version_num")).scalar_one()
        extensions = set(conn.execute(text("SELECT extname FROM pg_extension")).scalars())
    assert int(version_num) // 10000 == int(major)
    assert ("pgcrypto" in extensions) == (variant == "pgcrypto")
