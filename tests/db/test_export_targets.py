"""Export: numbers no Python int can print, and targets that are not files (refused, left untouched)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dlq_tui.db import triage
from dlq_tui.db.triage import ActionRefused
from tests.support.factories import add_bare_events

BIG = "1" + "2" * 19_999  # 20,000 digits: past Python's 4,300-digit int-to-str limit
HISTORY = f'[{{"error": "ünï \U0001f980", "code": {BIG}, "ratio": -1.5e-300}}]'


def stored_text(engine: Engine, event_id: int, column: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            text(f"SELECT CAST({column} AS text) FROM dead_letter_events WHERE id = :i"), {"i": event_id}
        )
        return found.scalar_one()


def test_export_keeps_a_20000_digit_integer_digit_for_digit(v7_engine: Engine, tmp_path: Path) -> None:
    payload = f'{{"n": {BIG}, "neg": -{BIG}}}'
    [event_id] = add_bare_events(v7_engine, 1, payload=payload)
    with v7_engine.begin() as conn:
        both = "error_history = CAST(:h AS jsonb), processing_attempts = CAST(:h AS jsonb)"
        conn.execute(text(f"UPDATE dead_letter_events SET {both}"), {"h": HISTORY})
    out = tmp_path / "big.jsonl"

    assert triage.export_jsonl(v7_engine, [event_id], out) == 1

    raw = out.read_bytes()
    assert raw.isascii()
    line = json.loads(raw, parse_int=str)  # the reader's side: keep the digits as text
    assert line["payload_text"] == payload
    for column in ("error_history", "processing_attempts"):
        assert line[column] == json.loads(stored_text(v7_engine, event_id, column), parse_int=str)
        assert line[column][0]["code"] == BIG and line[column][0]["error"] == "ünï \U0001f980"
    assert line["id"] == str(event_id) and line["retry_count"] == "0"  # the other columns as before


def test_export_refuses_a_fifo_a_device_and_a_directory_and_leaves_them(v7_engine: Engine, tmp_path: Path) -> None:
    ids = add_bare_events(v7_engine, 1)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    (tmp_path / "dir").mkdir()
    for target, said in (
        (pipe, f"not exported: {pipe} is a named pipe (FIFO), not a regular file; it was left untouched"),
        (Path(os.devnull), f"not exported: {os.devnull} is a device, not a regular file; it was left untouched"),
        (tmp_path / "dir", f"not exported: {tmp_path / 'dir'} is a directory"),
    ):
        for overwrite in (False, True):  # even after "yes, overwrite"
            with pytest.raises(ActionRefused) as refused:
                triage.export_jsonl(v7_engine, ids, target, overwrite=overwrite)
            assert str(refused.value) == said
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "pipe"]  # no temp file left either


def test_export_takes_a_250_character_name_and_refuses_one_over_the_limit(v7_engine: Engine, tmp_path: Path) -> None:
    ids = add_bare_events(v7_engine, 2)
    long_name = tmp_path / ("x" * 244 + ".jsonl")
    assert len(long_name.name) == 250
    assert triage.export_jsonl(v7_engine, ids, long_name) == 2
    assert len(long_name.read_text().splitlines()) == 2
    assert triage.export_jsonl(v7_engine, ids, long_name, overwrite=True) == 2

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    too_long = tmp_path / ("é" * 128 + ".jsonl")  # 262 bytes in UTF-8 though only 134 characters
    with pytest.raises(ActionRefused) as refused:
        triage.export_jsonl(v7_engine, ids, too_long)
    assert (
        str(refused.value) == f"not exported: the file name is 262 bytes long; this filesystem allows at most {limit}"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [long_name.name]


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("out\x00.jsonl", "not exported: a file path cannot hold a NUL character"),
        ("out\ud800.jsonl", "not exported: the path holds a lone surrogate, which no file name can hold"),
        ("\ud800/out.jsonl", "not exported: the path holds a lone surrogate, which no file name can hold"),
    ],
    ids=["NUL", "surrogate in the name", "surrogate in the directory"],
)
def test_export_refuses_a_path_no_filesystem_can_hold(v7_engine: Engine, tmp_path: Path, path: str, said: str) -> None:
    ids = add_bare_events(v7_engine, 1)
    with pytest.raises(ActionRefused) as refused:
        triage.export_jsonl(v7_engine, ids, tmp_path / path)
    assert str(refused.value) == said
    assert list(tmp_path.iterdir()) == []
