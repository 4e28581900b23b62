"""`dlq-tui purge`: retention of resolved events, on a real PostgreSQL, next to writers and operators at work."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.commands.purge import Progress
from dlq_tui.db import purge as purge_mod
from dlq_tui.db.purge import PurgeFailed, PurgeProgress, cutoff_for, plan, purge
from tests.db.test_read_only import select_only_dsn  # noqa: F401  (fixture: a role that may only SELECT)
from tests.support import pg
from tests.support.factories import db_now, insert_event, insert_events

DAY = timedelta(days=1)


def purge_cli(capsys: pytest.CaptureFixture[str], dsn: str, *flags: str) -> tuple[int, str, str]:
    code = run(["purge", "--dsn", dsn, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def ids_left(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id FROM dead_letter_events")).scalars())


def table_hash(engine: Engine) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM dead_letter_events t")
        )
        return found.scalar_one()


@pytest.fixture
def quick_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short lock waits, so that a test of "gives up after its lock_timeout" does not take long."""
    monkeypatch.setattr(purge_mod, "LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(purge_mod, "RETRY_PAUSE_S", 0.05)


# ------------------------------------------------------------------------------------ what is deleted


def test_only_rows_resolved_before_the_cutoff_are_deleted(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
    cutoff = now - 30 * DAY
    tick = timedelta(microseconds=1)
    with v7_engine.begin() as conn:
        old = insert_event(conn, resolved=True, resolved_at=cutoff - tick, age=60 * DAY)
        at_cutoff = insert_event(conn, resolved=True, resolved_at=cutoff, age=60 * DAY)
        after = insert_event(conn, resolved=True, resolved_at=cutoff + tick, age=60 * DAY)
        pending_with_date = insert_event(conn, resolved=False, resolved_at=cutoff - DAY, age=60 * DAY)  # reopened
        no_date = insert_event(conn, resolved=True, resolved_at=None, age=60 * DAY)
        old_pending = insert_event(conn, age=90 * DAY)
        recent = insert_event(conn, resolved=True, resolved_at=now)

    found = plan(v7_engine, cutoff)
    assert (found.count, found.oldest_resolved_at, found.newest_resolved_at) == (1, cutoff - tick, cutoff - tick)
    assert found.without_resolved_at == 1
    result = purge(v7_engine, cutoff, batch_size=2)
    assert (result.deleted, result.left) == (1, 0)
    assert ids_left(v7_engine) == {at_cutoff, after, pending_with_date, no_date, old_pending, recent}
    assert old not in ids_left(v7_engine)


def test_days_from_the_command_line_count_back_from_the_servers_clock(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        gone = insert_events(conn, [{"resolved": True, "resolved_at": now - 30 * DAY - timedelta(minutes=1)}] * 3)
        kept = insert_event(conn, resolved=True, resolved_at=now - 30 * DAY + timedelta(minutes=1))
        pending = insert_event(conn, age=400 * DAY)
    assert cutoff_for(v7_engine, 30) - (now - 30 * DAY) < timedelta(minutes=1)

    code, out, err = purge_cli(capsys, v7_dsn, "--resolved-older-than", "30")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("Purging 3 events resolved before ") and "(more than 30 days ago)" in lines[0]
    assert lines[-1].startswith("✓ Purged 3 events in 1 batch, ")
    assert ids_left(v7_engine) == {kept, pending}
    assert not set(gone) & ids_left(v7_engine)

    code, out, _ = purge_cli(capsys, v7_dsn, "--resolved-older-than", "30")
    assert code == 0 and out.startswith("Nothing to purge: no event was resolved before ")


def test_dry_run_counts_and_changes_nothing(v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - d * DAY} for d in (10, 11, 40)])
        insert_event(conn, resolved=True, resolved_at=now - 12 * DAY, lock="held")
        insert_event(conn, resolved=True, resolved_at=None)
    before = table_hash(v7_engine)
    code, out, err = purge_cli(capsys, v7_dsn, "--resolved-older-than", "7", "--dry-run", "--batch-size", "2")
    assert (code, err) == (0, "")
    assert "nothing is deleted" in out
    assert "Would purge 3 events resolved before " in out
    oldest, newest = (now - 40 * DAY).astimezone(UTC), (now - 10 * DAY).astimezone(UTC)
    assert f"resolved_at from {oldest:%Y-%m-%d %H:%M:%S} UTC to {newest:%Y-%m-%d %H:%M:%S} UTC" in out
    assert "in 2 batches of at most 2 rows, one transaction each" in out
    assert "  1 more event holds a live processing lock: left alone" in out
    assert "1 resolved event without resolved_at: never purged" in out
    assert table_hash(v7_engine) == before


def test_many_batches_report_progress_and_release_their_locks_between_batches(
    v7_dsn: str, v7_engine: Engine, pg_server: pg.TestServer
) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - 9 * DAY}] * 23)
        keep = insert_event(conn)
    seen: list[PurgeProgress] = []
    locks_between: list[int] = []
    watcher = psycopg.connect(v7_dsn, autocommit=True)

    def on_batch(progress: PurgeProgress) -> None:
        seen.append(progress)
        # Another session looks at the table's locks right after a batch: none may be left over.
        locks_between.append(
            watcher.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'dead_letter_events' AND l.pid <> pg_backend_pid()"
            ).fetchone()[0]  # type: ignore[index]
        )

    try:
        result = purge(v7_engine, now - 7 * DAY, batch_size=5, on_batch=on_batch)
    finally:
        watcher.close()
    assert (result.deleted, result.batches, result.left) == (23, 5, 0)
    assert [p.deleted for p in seen] == [5, 10, 15, 20, 23]
    assert locks_between == [0] * 5
    assert ids_left(v7_engine) == {keep}


def test_progress_lines_without_a_terminal(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dlq_tui.commands.purge as command

    monkeypatch.setattr(command, "PROGRESS_EVERY_S", 0.0)
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - 9 * DAY}] * 7)
    code, out, _ = purge_cli(capsys, v7_dsn, "--resolved-older-than", "1", "--batch-size", "3")
    assert code == 0
    progress = [line for line in out.splitlines() if line.startswith("  … ")]
    assert [line.split(" deleted")[0] for line in progress] == ["  … 3 / 7", "  … 6 / 7", "  … 7 / 7"]
    assert "rows/s" in progress[0] and "(43%)" in progress[0]
    assert "\r" not in out and "\x1b" not in out  # a log file gets plain lines
    assert out.splitlines()[-1].startswith("✓ Purged 7 events in 3 batches, ")


def test_progress_on_a_terminal_is_rewritten_in_place() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as out:
            progress = Progress(10, out)
            progress.show(10, 1234.0)
            progress.finish()
        chunks = []
        while True:  # a pty hands the output over in pieces; all of it is there once the writer side closed
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: nothing left and the other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        written = b"".join(chunks).decode()
    finally:
        os.close(master)
    assert written.startswith("\r  … 10 / 10 deleted (100%) · 1,234 rows/s")
    assert written.endswith("\r\x1b[K")


# ---------------------------------------------------------------------------- next to others at work


def test_writers_and_a_row_lock_are_not_blocked_and_locked_rows_are_skipped(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        old = insert_events(conn, [{"resolved": True, "resolved_at": now - 40 * DAY}] * 600)
        held = insert_event(conn, resolved=True, resolved_at=now - 40 * DAY, lock="held")
    row_locked = old[300]

    # An operator's transaction holds a row lock on one purgeable row for the whole purge.
    operator = psycopg.connect(v7_dsn)
    operator.execute("SELECT 1 FROM dead_letter_events WHERE id = %s FOR UPDATE", (row_locked,))
    # A writer keeps inserting new dead letters, each in its own transaction, as the processor does.
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(v7_dsn, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '5s'")
                while not stop.is_set():
                    started = time.monotonic()
                    conn.execute(
                        "INSERT INTO dead_letter_events (reason, payload, source, idempotency_key)"
                        " VALUES ('json_parsing_failed', '{}'::json, 'w', %s)",
                        (uuid.uuid4().hex,),
                    )
                    latencies.append(time.monotonic() - started)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = purge(v7_engine, now - 30 * DAY, batch_size=50)
        took = time.monotonic() - started
        # The purge did not wait for the row lock: it finished while the operator still holds it.
        assert operator.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        operator.execute("UPDATE dead_letter_events SET priority = 1 WHERE id = %s", (row_locked,))
        operator.commit()
    finally:
        stop.set()
        thread.join(10)
        operator.close()
    assert not errors
    assert result.deleted == 599 and result.left == 2  # the row-locked one and the one with a live lock
    assert ids_left(v7_engine) & {*old, held} == {row_locked, held}
    with v7_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT priority FROM dead_letter_events WHERE id = :i"), {"i": row_locked}).scalar() == 1
        )
        written = conn.execute(text("SELECT count(*) FROM dead_letter_events WHERE source = 'w'")).scalar_one()
    assert written == len(latencies) > 0  # every insert went in while the purge ran
    # No insert waited on the purge: far below the 5 s the writer would queue behind a long purge lock.
    assert max(latencies) < purge_mod.LOCK_TIMEOUT_MS / 1000, (max(latencies), took)


def test_a_table_lock_makes_it_give_up_after_its_lock_timeout(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str], quick_locks: None
) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - 40 * DAY}] * 4)
    before = table_hash(v7_engine)
    blocker = psycopg.connect(v7_dsn)
    blocker.execute("LOCK TABLE dead_letter_events IN SHARE MODE")  # e.g. a CREATE INDEX without CONCURRENTLY
    try:
        started = time.monotonic()
        code, _, err = purge_cli(capsys, v7_dsn, "--resolved-older-than", "30")
        took = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dlq-tui: purge stopped: another transaction holds a lock on dead_letter_events")
    assert "nothing was deleted; run the purge again later" in err
    # Each attempt waited its lock_timeout and no longer (3 x 0.2 s plus the pauses and the start).
    assert took < 10
    assert table_hash(v7_engine) == before


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", "", " ", "٣", "100001"])
def test_days_must_be_a_positive_whole_number(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, resolved=True, resolved_at=db_now(conn) - 400 * DAY)
    before = table_hash(v7_engine)
    code, out, err = purge_cli(capsys, v7_dsn, f"--resolved-older-than={days}")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dlq-tui: --resolved-older-than: ")
    assert table_hash(v7_engine) == before


def test_batch_size_must_be_positive(v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = purge_cli(capsys, v7_dsn, "--resolved-older-than", "3", "--batch-size", "0")
    assert code == 2 and err == "dlq-tui: --batch-size: expected a whole number from 1 to 1000000, got '0'\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_read_only_is_refused_with_one_line(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, resolved=True, resolved_at=db_now(conn) - 400 * DAY)
    before = table_hash(v7_engine)
    argv = ["purge", "--dsn", v7_dsn, "--resolved-older-than", "3"]
    argv = ["--read-only", *argv] if where == "before" else [*argv, "--read-only"]
    code = run(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == "dlq-tui: purge deletes events: it does not run with --read-only\n"
    assert table_hash(v7_engine) == before


def test_a_read_only_database_session_fails_cleanly(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, resolved=True, resolved_at=db_now(conn) - 400 * DAY)
    before = table_hash(v7_engine)
    read_only = make_conninfo(v7_dsn, options="-c default_transaction_read_only=on")
    code, _, err = purge_cli(capsys, read_only, "--resolved-older-than", "3")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("dlq-tui: purge stopped: the database session is read-only")
    assert err.rstrip().endswith("nothing was deleted")
    assert table_hash(v7_engine) == before


def test_a_role_that_may_not_delete_gets_one_clear_line(
    select_only_dsn: str,  # noqa: F811
    v7_engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, resolved=True, resolved_at=db_now(conn) - 400 * DAY)
    before = table_hash(v7_engine)
    code, out, err = purge_cli(capsys, select_only_dsn, "--resolved-older-than", "3")
    assert code == 1
    assert err == (
        "dlq-tui: purge stopped: your database role may not delete events: permission denied on "
        "dead_letter_events (purge needs SELECT, UPDATE and DELETE on it); nothing was deleted\n"
    )
    assert "hunter2" not in out + err
    assert table_hash(v7_engine) == before


def test_an_unreachable_database_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = purge_cli(capsys, "postgresql://nobody@127.0.0.1:1/dlq", "--resolved-older-than", "3")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "connection refused" in err


def test_a_connection_lost_mid_purge_is_exit_2_and_says_what_stays_deleted(
    v7_dsn: str, v7_engine: Engine, pg_server: pg.TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - 40 * DAY}] * 3)
        # Each delete takes a while, so that the link can be cut while a batch runs.
        conn.execute(
            text(
                "CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_sleep(1); RETURN OLD; END $$;"
                " CREATE TRIGGER slow_delete BEFORE DELETE ON dead_letter_events"
                " FOR EACH ROW EXECUTE FUNCTION slow_delete()"
            )
        )

    def cut_the_link_in_the_second_batch() -> None:
        with pg_server.admin() as admin:
            for _ in range(200):
                time.sleep(0.05)
                rows = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'DELETE FROM dead_letter_events%%'"
                    " AND state = 'active' AND backend_type = 'client backend'"
                ).fetchall()
                if rows and len(ids_left(v7_engine)) == 2:  # the second batch: the first one's row is gone
                    for (pid,) in rows:
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    return

    killer = threading.Thread(target=cut_the_link_in_the_second_batch, daemon=True)
    killer.start()
    code, _, err = purge_cli(capsys, v7_dsn, "--resolved-older-than", "30", "--batch-size", "1")
    killer.join(15)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dlq-tui: lost the connection to ")
    assert err.rstrip().endswith("; 1 row deleted before stays deleted")
    assert len(ids_left(v7_engine)) == 2


def test_a_purge_failure_keeps_what_earlier_batches_deleted(v7_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(conn, [{"resolved": True, "resolved_at": now - 40 * DAY}] * 6)
    calls: list[int] = []

    def revoke_after_first(progress: PurgeProgress) -> None:
        calls.append(progress.deleted)
        if len(calls) == 1:  # the next batch meets a trigger that refuses deletes
            with v7_engine.begin() as conn:
                conn.execute(
                    text(
                        "CREATE FUNCTION no_delete() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'deletes are frozen'; END $$;"
                        " CREATE TRIGGER no_delete BEFORE DELETE ON dead_letter_events"
                        " FOR EACH ROW EXECUTE FUNCTION no_delete()"
                    )
                )

    with pytest.raises(PurgeFailed) as failed:
        purge(v7_engine, now - 30 * DAY, batch_size=2, on_batch=revoke_after_first)
    assert failed.value.deleted == 2
    assert str(failed.value) == (
        "the database refused the delete (deletes are frozen); 2 rows deleted by earlier batches stay deleted"
    )
    assert len(ids_left(v7_engine)) == 4
