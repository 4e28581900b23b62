"""`dlq-tui health` and `dlq-tui analyze` as a script or a monitoring system sees them: output and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.db.connect import make_engine
from dlq_tui.demo import HOSTILE_REASONS, fill_demo
from tests.support import pg
from tests.support.factories import db_now, insert_breaker, insert_event, insert_events

PASSWORD = "hunter2-Secret"
# Anything that could drive a terminal or hide text: C0 (but newline), DEL, C1, bidi, zero-width.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def health(capsys: pytest.CaptureFixture[str], dsn: str, *flags: str) -> tuple[int, str, str]:
    code = run(["--dsn", dsn, "health", *flags])
    out, err = capsys.readouterr()
    return code, out, err


def analyze(capsys: pytest.CaptureFixture[str], dsn: str, *flags: str) -> tuple[int, str, str]:
    code = run(["analyze", "--dsn", dsn, *flags])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------- statuses


def test_empty_queue_is_ok(v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = health(capsys, v7_dsn)
    assert code == 0
    assert out.startswith("DLQ OK - 0 pending events | pending=0;1000;10000;0;")
    assert "Circuit breakers\n  (none recorded)" in out
    assert err == ""


def test_pending_over_thresholds_warns_then_goes_critical(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"age": 60}] * 12)
    assert health(capsys, v7_dsn)[0] == 0  # 12 is below the default 1,000
    code, out, _ = health(capsys, v7_dsn, "--warn-pending", "10")
    assert code == 1
    assert out.startswith("DLQ WARNING - 12 pending events (warn 10, crit 10000)")
    assert re.search(r"pending events\s+12  WARNING", out)
    code, out, _ = health(capsys, v7_dsn, "--warn-pending", "5", "--crit-pending", "12")
    assert code == 2 and out.startswith("DLQ CRITICAL - 12 pending events (warn 5, crit 12)")


def test_old_pending_event_and_threshold_off(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        insert_event(conn, age=timedelta(days=2, hours=3))
        insert_event(conn, age=timedelta(days=30), resolved=True)  # resolved: not "oldest pending"
    code, out, _ = health(capsys, v7_dsn)
    assert code == 1
    assert "oldest pending event is 2d 03h old (warn 24h, crit 168h)" in out
    assert health(capsys, v7_dsn, "--crit-oldest-hours", "48")[0] == 2
    assert health(capsys, v7_dsn, "--warn-oldest-hours", "off")[0] == 0


def test_locks_count_only_while_held(v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"lock": "held"}] * 3 + [{"lock": "expired"}] * 4)
    code, out, _ = health(capsys, v7_dsn, "--warn-locked", "3", "--crit-locked", "4")
    assert code == 1
    assert "3 events locked by a processor (warn 3, crit 4)" in out


def test_open_breaker_is_critical_and_json_says_so(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_breaker(conn, "dlq_main", "open", failure_count=6, next_attempt_time=now + timedelta(minutes=4))
        insert_breaker(conn, "dlq_repair", "half_open", failure_count=2)
        insert_event(conn, classification="malicious")
    code, out, _ = health(capsys, v7_dsn)
    assert code == 2
    assert out.startswith("DLQ CRITICAL - breaker dlq_main is open (6/5 failures, next attempt in ")
    assert re.search(r"dlq_main\s+open\s+6/5 failures", out)

    code, out, _ = health(capsys, v7_dsn, "--json")
    assert code == 2
    doc = json.loads(out)
    assert doc["status"] == "CRITICAL" and doc["exit_code"] == 2
    assert doc["figures"]["pending_events"] == 1 and doc["figures"]["malicious_events"] == 1
    assert [b["name"] for b in doc["breakers"]] == ["dlq_main", "dlq_repair"]
    levels = {f["field"]: f["level"] for f in doc["findings"]}
    assert levels["breaker:dlq_main"] == "critical"
    assert levels["breaker:dlq_repair"] == "warning"
    assert levels["malicious_events"] == "warning"
    assert levels["pending_events"] == "ok"
    assert doc["thresholds"]["pending_warn"] == 1000


def test_json_is_one_object_with_everything(v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"age": 3600, "retry_count": 7}] * 2)
        conn.execute(
            text(
                "INSERT INTO dlq_processing_metrics (processing_session_id, processing_method, batch_size, "
                "processed_count, repaired_count, failed_count, skipped_count, processing_duration_ms, "
                "started_at, completed_at) VALUES ('s1', 'stored_proc_enhanced', 10, 10, 9, 1, 0, 50, now(), now())"
            )
        )
    code, out, _ = health(capsys, v7_dsn, "--json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc) >= {"status", "figures", "breakers", "recent_runs", "findings", "db_now"}
    assert doc["figures"]["high_retry_events"] == 2
    assert 3590 < doc["figures"]["oldest_pending_age_seconds"] < 3700
    assert doc["recent_runs"][0]["session_id"] == "s1"


def test_json_carries_the_dlq_health_row_under_the_views_own_names(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """Monitoring configured against the view reads `oldest_unresolved_event` (the view's MAX(created_at)):
    the JSON keeps the honest name in `figures` and the row itself, column for column, in `dlq_health`."""
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(
            conn,
            [
                {"age": 7200, "retry_count": 9, "classification": "malicious", "priority": 2},
                {"age": 60},
                {"age": 300, "resolved": True, "resolved_at": now - timedelta(seconds=100)},
            ],
        )
    with v7_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM dlq_health")).mappings().one()
    assert row["avg_resolution_time_seconds"] is not None and row["pending_events"] == 2
    _code, out, _ = health(capsys, v7_dsn, "--json")
    doc = json.loads(out)
    view = doc["dlq_health"]
    assert list(view) == list(row.keys())  # every column, in the view's order, under its own name
    for column, value in row.items():
        if column == "oldest_unresolved_event":
            assert view[column] == value.isoformat()
        elif column == "avg_resolution_time_seconds":
            assert view[column] == pytest.approx(float(value))
        else:
            assert view[column] == value, column
    assert view["oldest_unresolved_event"] == doc["figures"]["newest_unresolved_event"]


def test_bad_threshold_is_an_argument_error(v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["--dsn", v7_dsn, "health", "--warn-pending", "lots"])
    assert exit_info.value.code == 2
    assert "expected a number or 'off'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ unknown


def _assert_unknown(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 3
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dlq-tui: DLQ UNKNOWN - ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in err and PASSWORD not in err


def test_unreachable_server_is_unknown(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = f"host={tmp_path} port=1 dbname=dlq user=ops password={PASSWORD} connect_timeout=2"
    _assert_unknown(*health(capsys, dsn), "no server socket at", "is the server running?")


def test_missing_database_is_unknown_and_password_masked(
    pg_server: pg.TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_conninfo(pg_server.dsn_for("no_such_db_here"), password=PASSWORD)
    _assert_unknown(*health(capsys, dsn), 'database "no_such_db_here" does not exist')


def test_database_without_the_dlq_is_unknown(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    _assert_unknown(*health(capsys, empty_dsn), "no dead_letter_events table")


LEGACY_V6 = (
    "CREATE TABLE schema_state (key VARCHAR(128) PRIMARY KEY, value VARCHAR(256) NOT NULL)",
    "INSERT INTO schema_state VALUES ('schema_version', '6')",
    "CREATE TABLE dead_letter_events (id SERIAL PRIMARY KEY, ingest_id VARCHAR(64), source VARCHAR(512), "
    "source_offset INTEGER, reason VARCHAR(128) NOT NULL, payload JSON NOT NULL, metadata_json JSON, "
    "created_at TIMESTAMPTZ NOT NULL DEFAULT now(), resolved BOOLEAN NOT NULL DEFAULT false, resolved_at TIMESTAMPTZ)",
)


def _legacy_v6(dsn: str) -> None:
    engine = make_engine(dsn)
    with engine.begin() as conn:
        for ddl in LEGACY_V6:
            conn.execute(text(ddl))
    engine.dispose()


def test_schema_below_v7_is_unknown_and_says_migrate(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    _legacy_v6(empty_dsn)
    _assert_unknown(*health(capsys, empty_dsn), "schema is v6, below v7: run dlq-tui --migrate")
    code, out, err = analyze(capsys, empty_dsn)
    assert code == 2 and out == "" and "schema is v6, below v7: run dlq-tui --migrate" in err


def test_missing_view_is_unknown(v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        conn.execute(text("DROP VIEW dlq_health"))
    _assert_unknown(*health(capsys, v7_dsn), "schema v7 is incomplete (dlq_health missing)", "dlq-tui check")


@pytest.fixture
def role_without_grants(v7_dsn: str, pg_server: pg.TestServer) -> Iterator[str]:
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    yield make_conninfo(v7_dsn, user=role, password=PASSWORD)
    with pg_server.admin() as admin:
        admin.execute(f"DROP ROLE {role}")


def test_no_permission_is_unknown_and_names_the_grant(
    role_without_grants: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = conninfo_to_dict(role_without_grants)["user"]
    _assert_unknown(*health(capsys, role_without_grants), "no permission", f"to {role}")


def test_real_command_reports_unknown_without_traceback(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DLQ_TUI", "DATABASE_URL"))}
    dsn = f"postgresql://ops:{PASSWORD}@/dlq?host={tmp_path}&port=1&connect_timeout=2"
    proc = subprocess.run(
        [sys.executable, "-m", "dlq_tui", "health", "--dsn", dsn], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "DLQ UNKNOWN" in proc.stderr
    assert PASSWORD not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("state", ["unreachable", "empty", "legacy_v6"])
def test_unknown_with_json_prints_the_usual_shape_on_stdout(
    state: str, as_json: bool, empty_dsn: str, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A monitoring system that parses stdout must see UNKNOWN and why, not an empty document."""
    if state == "unreachable":
        dsn = f"host={tmp_path} port=1 dbname=dlq user=ops password={PASSWORD} connect_timeout=2"
        needle = "is the server running?"
    elif state == "empty":
        dsn, needle = make_conninfo(empty_dsn, password=PASSWORD), "no dead_letter_events table"
    else:
        _legacy_v6(empty_dsn)
        dsn, needle = make_conninfo(empty_dsn, password=PASSWORD), "schema is v6, below v7: run dlq-tui --migrate"
    code, out, err = health(capsys, dsn, *(["--json"] if as_json else []), "--warn-pending", "7")
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlq-tui: DLQ UNKNOWN - ") and needle in lines[0]
    assert PASSWORD not in out + err and "Traceback" not in out + err
    if not as_json:
        assert out == ""
        return
    doc = json.loads(out)
    assert doc["status"] == "UNKNOWN" and doc["exit_code"] == 3
    assert needle in doc["reason"] and "\n" not in doc["reason"] and doc["reason"] in lines[0]
    assert doc["figures"] is None and doc["breakers"] is None and doc["findings"] is None and doc["db_now"] is None
    assert doc["thresholds"]["pending_warn"] == 7  # what would have been checked


def test_unknown_json_has_the_keys_of_a_normal_report(
    v7_dsn: str, empty_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, normal, _ = health(capsys, v7_dsn, "--json")
    assert code == 0 and json.loads(normal)["reason"] is None
    code, unknown, _ = health(capsys, empty_dsn, "--json")
    assert code == 3
    assert set(json.loads(unknown)) == set(json.loads(normal))


def test_real_command_unknown_json_on_stdout(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DLQ_TUI", "DATABASE_URL"))}
    dsn = f"postgresql://ops:{PASSWORD}@/dlq?host={tmp_path}&port=1&connect_timeout=2"
    proc = subprocess.run(
        [sys.executable, "-m", "dlq_tui", "health", "--json", "--dsn", dsn],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["status"] == "UNKNOWN" and "is the server running?" in doc["reason"]
    assert PASSWORD not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_bad_dsn_is_unknown_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = health(capsys, f"postgresql://ops:{PASSWORD}@host:notaport/db", "--json")
    assert code == 3
    assert json.loads(out)["status"] == "UNKNOWN" and err.count("\n") == 1
    assert PASSWORD not in out + err


# ------------------------------------------------------------------------------------------ analyze


def test_analyze_text_and_json(v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        insert_events(
            conn,
            [{"reason": "json_parsing_failed", "retry_count": 3}] * 3
            + [{"reason": "file_type_mismatch", "priority": 1, "classification": "malicious"}]
            + [{"reason": "resolved_one", "resolved": True}],
        )
    code, out, err = analyze(capsys, v7_dsn)
    assert code == 0 and err == ""
    assert out.startswith("Failure patterns among 4 pending events")
    assert re.search(r"\n +3 +75\.0% +3\.00  json_parsing_failed\n", out)
    assert re.search(r"\n +1 +25\.0%   1 Critical\n", out)
    assert re.search(r"\n +3 +75\.0%  \(unclassified\)\n", out)
    assert "resolved_one" not in out

    code, out, _ = analyze(capsys, v7_dsn, "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["pending_events"] == 4
    assert doc["top_reasons"][0] == {"reason": "json_parsing_failed", "count": 3, "avg_retries": 3.0}
    assert {"priority": 1, "label": "Critical", "count": 1} in doc["pending_by_priority"]
    assert {"classification": None, "count": 3} in doc["pending_by_classification"]


# --------------------------------------------------------------------------------------- hostile text


def test_hostile_demo_rows_reach_no_terminal_raw(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_demo(v7_engine, events=400)
    with v7_engine.begin() as conn:  # hostile text in the breaker and run names too
        insert_breaker(conn, "evil\x1b]0;title\x07\x1b[2J[bold]x[/]", "open")
        conn.execute(text("UPDATE dlq_processing_metrics SET processing_method = 'm\x1b[2J\u202e'"))
    for command in (health, analyze):
        code, out, err = command(capsys, v7_dsn)
        assert code in (0, 1, 2), err
        assert not RAW_CONTROL.search(out), RAW_CONTROL.search(out)
        assert "\\x1b" in out  # the escapes are shown, not dropped
    # Rich markup stays literal text (the demo's classification "[/]", a breaker named with markup).
    assert re.search(r"\n +1 +0\.\d%  \[/\]\n", out)
    out = health(capsys, v7_dsn)[1]
    assert "evil\\x1b]0;title\\x07\\x1b[2J[bold]x[/]" in out
    # JSON output keeps the exact database text, as \u escapes that a terminal does not act on.
    code, out, _ = analyze(capsys, v7_dsn, "--json")
    assert not RAW_CONTROL.search(out)
    reasons = {r["reason"] for r in json.loads(out)["top_reasons"]}
    assert reasons & set(HOSTILE_REASONS.values())
    code, out, _ = health(capsys, v7_dsn, "--json")
    assert not RAW_CONTROL.search(out)
    assert "evil\x1b]0;title\x07\x1b[2J[bold]x[/]" in [b["name"] for b in json.loads(out)["breakers"]]


# ------------------------------------------------------------------------------------------ the rules


def test_rules_give_one_finding_per_checked_field_and_per_breaker(v7_engine: Engine) -> None:
    from dlq_tui.db.queries import fetch_health
    from dlq_tui.health_rules import Thresholds, evaluate, overall

    with v7_engine.begin() as conn:
        insert_breaker(conn, "b_half", "half_open")
        insert_breaker(conn, "b_odd", "melting")
        insert_event(conn, priority=1)
    with v7_engine.connect() as conn:
        snap = fetch_health(conn)
    findings = evaluate(snap)
    assert [f.field for f in findings] == [
        "pending_events",
        "high_retry_events",
        "locked_events",
        "oldest_pending_at",
        "malicious_events",
        "breaker:b_half",
        "breaker:b_odd",
    ]  # high priority is shown but not checked unless asked for
    assert overall(findings) == "warning"
    assert "unknown state 'melting'" in findings[-1].message
    strict = evaluate(snap, Thresholds(high_priority_crit=1, pending_warn=None, pending_crit=None))
    assert "pending_events" not in {f.field for f in strict}
    assert overall(strict) == "critical"


def test_sqlite_path_without_a_database_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # SQLite health works (tests/cli/test_sqlite_cli.py); a path that names no file is UNKNOWN and stays absent.
    _assert_unknown(*health(capsys, f"sqlite:///{tmp_path}/x.db"), "no SQLite database at")
    assert not (tmp_path / "x.db").exists()


# -------------------------------------------------------------------------------------------- trends


def test_health_and_analyze_carry_the_trends(
    v7_dsn: str, v7_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """The health screen's bars as numbers: arrived and resolved per hour (24) and per day (30), oldest first."""
    with v7_engine.begin() as conn:
        now = db_now(conn)
        # Created now: in the current hour and day whatever the time of day.
        insert_events(conn, [{"age": 0}] * 3 + [{"age": 2 * 86400, "resolved": True, "resolved_at": now}], now=now)
    code, out, _ = health(capsys, v7_dsn, "--json")
    trends = json.loads(out)["trends"]
    hourly, daily = trends["hourly"], trends["daily"]
    assert len(hourly["arrived"]) == len(hourly["starts"]) == 24 and len(daily["arrived"]) == 30
    assert hourly["arrived"][-1] == 3 and sum(hourly["arrived"]) == 3 and hourly["arrived_max"] == 3
    assert hourly["resolved"][-1] == 1 and daily["resolved"][-1] == 1
    assert daily["arrived"][-1] == 3 and daily["arrived"][-3] == 1 and sum(daily["arrived"]) == 4
    code, out, _ = health(capsys, v7_dsn)
    assert code == 0
    assert re.search(r"per hour, last 24 h .*\n +arrived +3 in all, max 3/h\n +resolved +1 in all, max 1/h", out)
    code, out, _ = analyze(capsys, v7_dsn, "--json")
    assert code == 0 and json.loads(out)["trends"] == trends
    code, out, _ = analyze(capsys, v7_dsn)
    assert code == 0 and "Events arriving and resolved" in out and "max 3/h" in out
