"""`dlq-tui search` as a script sees it: lines or JSON Lines, hostile text neutralised, exit 0 / 1 / 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dlq_tui.cli import run
from tests.support.factories import insert_events

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def search(capsys: pytest.CaptureFixture[str], dsn: str, *args: str) -> tuple[int, str, str]:
    code = run(["search", "--dsn", dsn, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def events(v7_engine: Engine) -> list[int]:
    with v7_engine.begin() as conn:
        return insert_events(
            conn,
            [
                {"payload": {"src_ip": "198.51.100.7", "input": "wget http://x/\x1b]0;owned\x07 \u202e"}, "age": 30},
                {"payload": {"src_ip": "198.51.100.8", "input": "ls"}, "priority": 1, "age": 20},
                {"payload": {"src_ip": "198.51.100.7"}, "resolved": True, "age": 10},
            ],
        )


def test_matches_print_id_priority_reason_source_and_a_safe_snippet(
    v7_dsn: str, events: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = search(capsys, v7_dsn, "wget")
    assert code == 0
    (line,) = out.splitlines()
    assert line.split()[:3] == [str(events[0]), "5", "json_parsing_failed"]
    assert "/var/log/cowrie/cowrie.json.2024-03-01" in line and "wget http" in line
    assert not RAW_CONTROL.search(out)  # the ESC, BEL and bidi override arrive as visible escapes
    assert err == "1 match\n"


def test_json_lines_include_resolved_and_limit(
    v7_dsn: str, events: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = search(capsys, v7_dsn, "src_ip:198.51.100.7", "--json", "--include-resolved")
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["id"] for d in docs] == [events[0], events[2]]
    assert docs[1]["resolved"] is True and docs[0]["snippet"] == "src_ip: 198.51.100.7"
    code, out, err = search(capsys, v7_dsn, "198.51.100", "--limit", "1")
    assert code == 0 and out.split()[0] == str(events[1])  # priority 1 comes first
    assert "more follow" in err


def test_no_match_exits_1(v7_dsn: str, events: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = search(capsys, v7_dsn, "'; DROP TABLE dead_letter_events; --")
    assert (code, out, err) == (1, "", "0 matches\n")
    assert search(capsys, v7_dsn, "src_ip:198.51.100.7")[0] == 0  # the table is still there


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ('"unclosed', "is not closed"),
        ("priority<=99", "priority goes from 1"),
        ("class:evil", "is not a classification"),
        ("x\x00y", "NUL character"),
        ("   ", "type something to search for"),
        ("x" * 30_000, "limited to 20,000 characters"),
    ],
)
def test_a_bad_query_is_one_line_and_exit_2(
    v7_dsn: str, capsys: pytest.CaptureFixture[str], query: str, says: str
) -> None:
    code, out, err = search(capsys, v7_dsn, query)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and says in err and "Traceback" not in err and "SELECT" not in err


def test_a_connection_fault_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = search(capsys, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", "wget")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("dlq-tui: ")


def test_a_bad_limit_is_refused(v7_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["search", "--dsn", v7_dsn, "wget", "--limit", "0"])
    assert exit_info.value.code == 2
    assert "expected a whole number" in capsys.readouterr().err


def test_a_saved_search_of_the_config_file_runs_by_its_name(
    v7_dsn: str, events: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[searches]\nattacker = "src_ip:198.51.100.7"\n')
    code, out, err = search(capsys, v7_dsn, "--config", str(config), "--include-resolved", "@attacker")
    assert code == 0
    assert [int(line.split()[0]) for line in out.splitlines()] == [events[0], events[2]]
    # An unknown name: one line, exit 2, naming what is saved.
    code, out, err = search(capsys, v7_dsn, "--config", str(config), "@nope")
    assert (code, out) == (2, "")
    assert err == "dlq-tui: no saved search '@nope' (saved: @attacker)\n"
