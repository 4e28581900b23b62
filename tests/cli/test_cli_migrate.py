"""`dlq-tui --migrate`, `--migrate --dry-run` and `dlq-tui check` as a user runs them: output and exit codes."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.commands.check import CURRENT_LINE
from tests.support import dbstates
from tests.support.console import console_script

DLQ_TUI = console_script()  # the installed console script, next to this interpreter


def test_migrate_prints_each_step_and_exits_0(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    dbstates.make_legacy_v6(empty_engine, 500)
    assert run(["--dsn", empty_dsn, "--migrate"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Migrating ")
    steps = [line for line in out[1:-1]]
    assert len(steps) == 15
    assert steps[2].split()[1:4] == ["3/15", "add_columns", "done"] and steps[2].endswith("12 added")
    assert "3000" not in steps[3] and "500 rows backfilled" in steps[3]
    assert steps[-1].split()[1:4] == ["15/15", "commit", "done"]
    assert out[-1].startswith("✓ migrated to v7 in ")

    assert run(["--dsn", empty_dsn, "--migrate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "✓ already at v7; no schema change"


def test_check_exit_codes_and_messages(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    assert run(["--dsn", empty_dsn, "check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✗ Database schema is not current (marker missing; catalog: no dlq tables)")

    dbstates.make_legacy_v6(empty_engine, 20)
    assert run(["check", "--dsn", empty_dsn]) == 1
    out = capsys.readouterr().out
    assert "  missing: column dead_letter_events.payload_checksum\n" in out
    assert "  drift: marker reads 6: not migrated to v7 (run dlq-tui --migrate)\n" in out

    assert run(["--dsn", empty_dsn, "--migrate"]) == 0
    capsys.readouterr()
    assert run(["--dsn", empty_dsn, "check"]) == 0
    assert capsys.readouterr().out == CURRENT_LINE + "\n"

    # Rows from writers that never set checksum/key: the schema is current, the rows are a warning.
    with empty_engine.begin() as conn:
        dbstates.insert_legacy_rows(conn, 3, first=5000)
    assert run(["--dsn", empty_dsn, "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == CURRENT_LINE and len(out) == 2
    assert out[1].startswith("  warning: 3 of 23 rows have no payload checksum and no idempotency key: ")
    assert out[1].endswith("dlq-tui --migrate backfills them")
    # --strict: the same lines, and the data note fails the check.
    assert run(["--dsn", empty_dsn, "check", "--strict"]) == 1
    strict = capsys.readouterr().out.splitlines()
    assert strict == [*out, "✗ --strict: the data note above fails the check"]

    # A dropped index is schema drift: not current, with the data note still listed under it.
    with empty_engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_dead_letter_events_retry_count"))
    assert run(["--dsn", empty_dsn, "check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✗ Database schema is not current (marker 7; catalog: pre-v7 or partial v7)")
    assert "  missing: index ix_dead_letter_events_retry_count" in out
    assert any(line.startswith("  warning: 3 of 23 rows have no payload checksum") for line in out)
    assert "  drift: marker reads 7 but the catalog lacks 1 v7 objects" in out
    assert not any(line.startswith("  drift: ") and "rows" in line for line in out)


def test_check_on_a_pipeline_v7_without_pgcrypto(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    """The pipeline's tool without pgcrypto leaves every checksum NULL: `check` says current, warns, and
    `--migrate` backfills; --strict fails until then."""
    dbstates.create_v7_from_metadata(empty_engine)
    with empty_engine.begin() as conn:
        dbstates.insert_legacy_rows(conn, 25)
    assert run(["check", "--dsn", empty_dsn]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == CURRENT_LINE
    assert out[1].startswith("  warning: 25 of 25 rows have no payload checksum and no idempotency key: ")
    assert "v7 migration run without pgcrypto" in out[1] and "legacy writer" not in out[1]
    assert run(["check", "--dsn", empty_dsn, "--strict"]) == 1
    capsys.readouterr()

    assert run(["--dsn", empty_dsn, "--migrate"]) == 0
    assert "25 rows without checksum or key backfilled" in capsys.readouterr().out
    assert run(["check", "--dsn", empty_dsn, "--strict"]) == 0
    assert capsys.readouterr().out == CURRENT_LINE + "\n"


def test_duplicate_sources_are_a_warning_and_fail_only_strict(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    dbstates.make_legacy_v6(empty_engine, 10)
    with empty_engine.begin() as conn:
        dbstates.add_duplicate_sources(conn, (3, 4))
    assert run(["--dsn", empty_dsn, "--migrate"]) == 0
    capsys.readouterr()
    assert run(["--dsn", empty_dsn, "check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        CURRENT_LINE,
        "  warning: duplicate idempotency sources: 2 events repeat an older event's source, offset and payload "
        "and have no idempotency key (the oldest keeps it: nothing to backfill)",
    ]
    assert run(["--dsn", empty_dsn, "check", "--strict"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "✗ --strict: the data note above fails the check"


def test_dry_run_prints_sql_and_changes_nothing(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    dbstates.make_legacy_v6(empty_engine, 50)
    assert run(["--dsn", empty_dsn, "--migrate", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ALTER TABLE dead_letter_events\n    ADD COLUMN payload_checksum VARCHAR(64)" in out
    assert out.index("-- step 4 backfill") < out.index("-- step 6 create_indexes")
    assert run(["--dsn", empty_dsn, "check"]) == 1
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM schema_state")).scalar() == "6"


def test_failed_migration_exits_1_with_the_reason(empty_engine: Engine, empty_dsn: str, capsys) -> None:
    dbstates.make_legacy_v6(empty_engine, 5)
    with empty_engine.begin() as conn:
        conn.execute(text("ALTER TABLE dead_letter_events ADD COLUMN retry_count TEXT"))
    assert run(["--dsn", empty_dsn, "--migrate"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "dlq-tui: migration failed: cannot migrate: column dead_letter_events.retry_count is text, expected "
        "integer; fix it by hand; nothing changed\n"
    )
    assert "failed" in captured.out


def test_online_migrates_an_empty_database(empty_dsn: str, capsys) -> None:
    # The online path's own tests are in tests/test_online_migration.py.
    assert run(["--dsn", empty_dsn, "--migrate", "--online"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("✓ migrated to v7 online in ")


BAD_DSNS = [
    "postgresql://alice:s3cr3t-pw@127.0.0.1:1/dlq",  # nothing listens on port 1
    "host=127.0.0.1 port=1 user=alice password=s3cr3t-pw dbname=dlq",
    # Over the 253-character DNS limit: the lookup fails locally, no name server is asked.
    "postgresql://alice:s3cr3t-pw@" + ".".join(["no-such-host-" + "x" * 47] * 5) + "/dlq",
    "host=127.0.0.1 port=1 password=s3cr3t-pw dbname=dlq = =",  # not even parseable
]


@pytest.mark.parametrize("dsn", BAD_DSNS)
@pytest.mark.parametrize("argv", [["--migrate"], ["--migrate", "--dry-run"], ["check"]])
def test_bad_dsn_gives_one_line_and_exit_2(dsn: str, argv: list[str], capsys) -> None:
    assert run(["--dsn", dsn, *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlq-tui: ")
    assert "s3cr3t-pw" not in captured.err + captured.out
    assert "Traceback" not in captured.err


def test_missing_database_and_wrong_password(pg_server, capsys) -> None:
    missing = pg_server.dsn_for("no_such_database_here")
    assert run(["--dsn", missing, "check"]) == 2
    assert 'database "no_such_database_here" does not exist' in capsys.readouterr().err
    # The embedded server trusts local connections, so a wrong password cannot be provoked there; an
    # unknown role fails the same way authentication does: one line, exit 2.
    assert run(["--dsn", missing.replace("dbname=", "user=nobody_here password=pw123 dbname="), "--migrate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pw123" not in err


def test_real_subprocess(empty_engine: Engine, empty_dsn: str) -> None:
    dbstates.make_legacy_v6(empty_engine, 10)
    migrate = subprocess.run([DLQ_TUI, "--dsn", empty_dsn, "--migrate"], capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stdout.strip().splitlines()[-1].startswith("✓ migrated to v7")
    check = subprocess.run([DLQ_TUI, "check", "--dsn", empty_dsn], capture_output=True, text=True, timeout=120)
    assert (check.returncode, check.stdout) == (0, CURRENT_LINE + "\n")
    bad = subprocess.run(
        [DLQ_TUI, "--dsn", "postgresql://u:hunter2@127.0.0.1:1/x", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "hunter2" not in bad.stderr and "Traceback" not in bad.stderr
