"""`dlq-tui redrive` as cron and scripts see it: output, exit codes, nothing written when it must not be."""

from __future__ import annotations

import functools
import json
import os
import pty
import re
import select
import subprocess
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from dlq_tui.cli import run
from dlq_tui.commands import redrive as command
from dlq_tui.db import redrive as R
from dlq_tui.db.connect import make_engine
from dlq_tui.demo import create_raw_events
from tests.db.test_redrive import AMBIGUOUS, REFUSED, REPAIRED, VALID, dead_letter, everything, raw_rows
from tests.support import repair_corpus as C
from tests.support.console import console_script
from tests.support.factories import insert_event

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
PASSWORD = "hunter2-Secret"


def redrive(capsys: pytest.CaptureFixture[str], dsn: str, *flags: str) -> tuple[int, str, str]:
    code = run(["redrive", "--dsn", dsn, "--operator", "cron", *flags])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def target(v7_engine: Engine) -> Engine:
    with v7_engine.begin() as conn:
        create_raw_events(conn)
    return v7_engine


def mixed(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        return {
            "valid": dead_letter(conn, VALID, 1),
            "repaired": dead_letter(conn, REPAIRED, 2),
            "refused": dead_letter(conn, REFUSED, 3),
            "ambiguous": dead_letter(conn, AMBIGUOUS, 4),
            "held": dead_letter(conn, VALID, 5, lock="held"),
        }


def test_a_run_redrives_what_it_can_and_says_why_not_for_the_rest(
    target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = mixed(target)
    code, out, err = redrive(capsys, v7_dsn)
    assert code == 0, err  # every event was redriven or skipped for a stated reason
    lines = out.splitlines()
    assert (
        f"not redriven {ids['refused']}: not repairable: session: '3f9a0c' was cut short by the end of the text"
        in lines
    )
    assert any(
        line.startswith(f"not redriven {ids['ambiguous']}: ambiguous: needs an operator's decision in the preview")
        for line in lines
    )
    assert any(line.startswith(f"not redriven {ids['held']}: held by another session until ") for line in lines)
    assert re.fullmatch(
        r"redrive: 2 redriven, 3 not redriven of 5 selected \(1 not repairable, 1 ambiguous: needs an operator's"
        r" decision in the preview, 1 held by another session\) in \d+\.\d s",
        lines[-1],
    )
    assert err == ""
    assert len(raw_rows(target)) == 2
    again = redrive(capsys, v7_dsn)
    assert again[0] == 0 and "0 redriven" in again[1] and len(raw_rows(target)) == 2
    health = run(["health", "--dsn", v7_dsn])
    shown = capsys.readouterr().out
    assert health in (0, 1, 2) and "dlq_tui_redrive" in shown  # beside the processor's runs


def test_dry_run_prints_where_each_would_go_and_writes_nothing(
    target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = mixed(target)
    before = everything(target)
    code, out, _ = redrive(capsys, v7_dsn, "--dry-run")
    assert code == 0
    assert everything(target) == before
    lines = out.splitlines()
    assert (
        f"would redrive {ids['valid']} (valid) → new raw_events row: source=/var/log/cowrie/cowrie.json.2024-03-01"
        f" offset=1 inode=— session={C.SESSION} cowrie.login.failed at 2024-03-01T02:11:12.004211+00:00"
    ) in lines
    assert any(line.startswith(f"would not redrive {ids['refused']}: not repairable") for line in lines)
    assert lines[-1].startswith("redrive (dry run): 2 would be redriven, 3 would not of 5 selected")


def test_json_names_every_event(target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = mixed(target)
    code, out, _ = redrive(capsys, v7_dsn, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] is False and doc["selected"] == 5 and doc["metrics_recorded"] is True
    rows = {r["id"]: r["raw_events_id"] for r in raw_rows_by_dlq(target)}
    assert {e["id"]: e["raw_events_id"] for e in doc["redriven"]} == rows
    assert {e["id"]: e["reason"] for e in doc["not_redriven"]}[ids["refused"]] == "not repairable"
    assert doc["failed"] == [] and doc["refusal"] is None


def raw_rows_by_dlq(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT id, CAST(processing_attempts -> -1 ->> 'raw_events_id' AS integer) AS raw_events_id"
                    " FROM dead_letter_events WHERE resolution_method = 'operator_redriven'"
                )
            ).mappings()
        ]


def test_selection_by_id_reason_and_limit(target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with target.begin() as conn:
        a = dead_letter(conn, VALID, 1)
        b = dead_letter(conn, C.line(C.CONNECT), 2)
        c = dead_letter(conn, C.line(C.KEX), 3, reason="unknown")
    code, out, _ = redrive(capsys, v7_dsn, "--id", str(b), "--dry-run", "--json")
    assert code == 0 and [e["id"] for e in json.loads(out)["would_redrive"]] == [b]
    code, out, _ = redrive(capsys, v7_dsn, "--reason", "unknown", "--json")
    assert [e["id"] for e in json.loads(out)["redriven"]] == [c]
    code, out, _ = redrive(capsys, v7_dsn, "--limit", "1", "--json")
    assert [e["id"] for e in json.loads(out)["redriven"]] == [a]
    with pytest.raises(SystemExit) as bad:
        run(["redrive", "--dsn", v7_dsn, "--id", "1", "--reason", "x"])
    assert bad.value.code == 2
    assert "--id and --reason cannot be combined" in capsys.readouterr().err


def test_a_failed_event_makes_the_exit_code_1(target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with target.begin() as conn:
        conn.execute(text("ALTER TABLE raw_events ALTER COLUMN payload TYPE jsonb USING CAST(payload AS jsonb)"))
        good = dead_letter(conn, VALID, 1)
        bad = dead_letter(conn, C.line(dict(C.LOGIN_FAILED, password="a\x00b")), 2)
    code, out, _ = redrive(capsys, v7_dsn)
    assert code == 1
    assert f"failed {bad}: the database refused it: unsupported Unicode escape sequence" in out
    assert "redrive: 1 redriven, 1 failed of 2 selected" in out
    assert [r["id"] for r in raw_rows_by_dlq(target)] == [good]


def test_no_target_is_one_line_and_exit_1(v7_engine: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with v7_engine.begin() as conn:
        dead_letter(conn, VALID, 1)
    before = everything_without_raw(v7_engine)
    code, out, err = redrive(capsys, v7_dsn)
    assert code == 1
    assert err == (
        "dlq-tui: redrive unavailable: there is no raw_events table (the pipeline's event table) in this database\n"
    )
    assert "Traceback" not in out + err
    assert everything_without_raw(v7_engine) == before


def everything_without_raw(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(
            [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY id"))]
            for name in ("dead_letter_events", "dlq_processing_metrics")
        )


@pytest.mark.parametrize("where", ["before", "after"])
def test_read_only_refuses_clearly_and_writes_nothing(
    target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    mixed(target)
    before = everything(target)
    argv = (
        ["--read-only", "redrive", "--dsn", v7_dsn]
        if where == "before"
        else ["redrive", "--dsn", v7_dsn, "--read-only"]
    )
    code = run(argv)
    _, err = capsys.readouterr()
    assert code == 1
    assert err == "dlq-tui: not redriven: the database session is read-only: nothing is written\n"
    assert run([*argv, "--dry-run"]) == 0  # a dry run only reads
    assert everything(target) == before


def test_unreachable_server_is_exit_2_without_the_password(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"host={tmp_path} port=1 dbname=dlq user=ops password={PASSWORD} connect_timeout=2"
    code = run(["redrive", "--dsn", dsn])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("dlq-tui: cannot connect to ") and err.count("\n") == 1 and PASSWORD not in err


def test_sqlite_is_told_that_redrive_needs_postgresql(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["redrive", "--dsn", f"sqlite:///{tmp_path}/dlq.db"])
    assert code == 1
    assert capsys.readouterr().err == "dlq-tui: redrive unavailable: v7 is PostgreSQL-only\n"


def test_a_connection_lost_mid_run_is_exit_2(
    target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with target.begin() as conn:
        ids = [dead_letter(conn, C.line(dict(C.CONNECT, message=f"{n}")), n) for n in range(3)]
    killer = make_engine(v7_dsn)

    def kill(phase: str, conn: Connection) -> None:
        if phase == "inserted":
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    # The real redrive, with a real fault injected at its hook point: the server kills our session mid-batch.
    monkeypatch.setattr(command, "redrive", functools.partial(R.redrive, checkpoint=kill))
    try:
        code, out, err = redrive(capsys, v7_dsn)
    finally:
        killer.dispose()
    assert code == 2
    assert err.startswith("dlq-tui: not done: connection to the database was lost") and err.count("\n") == 1
    assert "redrive: 0 redriven of 3 selected" in out
    assert raw_rows(target) == [] and raw_rows_by_dlq(target) == [] and len(ids) == 3


def test_hostile_text_is_printed_escaped(target: Engine, v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with target.begin() as conn:
        dead_letter(conn, VALID, 1, source="/var/log/\x1b]0;pwned\x07cowrie\u202e.json")
        insert_event(conn, payload={"malformed_content": '{"eventid": "\x1b[2J\u202e", "session": "x'}, source_offset=2)
    code, dry, err = redrive(capsys, v7_dsn, "--dry-run")
    assert code == 0 and RAW_CONTROL.search(dry + err) is None
    assert "source=/var/log/\\x1b]0;pwned\\x07cowrie\\u202e.json" in dry
    code, out, err = redrive(capsys, v7_dsn)
    assert code == 0 and RAW_CONTROL.search(out + err) is None
    assert "not repairable" in out


def test_progress_is_shown_on_a_terminal(target: Engine, v7_dsn: str) -> None:
    with target.begin() as conn:
        for n in range(R.BATCH_SIZE + 100):
            dead_letter(conn, C.line(dict(C.CONNECT, message=f"{n}")), n)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [console_script(), "redrive", "--dsn", v7_dsn, "--dry-run"],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        out, _ = proc.communicate(timeout=120)
        seen = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"redrive: 500/600 events (83%)" in seen and b"redrive: 600/600 events (100%)" in seen
    assert "600 would be redriven" in out.splitlines()[-1]
