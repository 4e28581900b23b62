"""Every input field against one table of hostile input, the way a user enters it (a paste, then enter).

For each field and each value the app must stay alive and either refuse the value in the dialog with a line
naming the problem (the dialog stays open, nothing is written) or accept it and do exactly what was asked
(the database holds the note as typed, the file holds the events, the filter is the value).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from dlq_tui.ui.screens.confirm import ConfirmModal
from dlq_tui.ui.screens.events import EventsScreen
from dlq_tui.ui.screens.export import ExportModal
from dlq_tui.ui.screens.fields import FieldError, refused_character
from dlq_tui.ui.screens.filter import FilterModal
from dlq_tui.ui.screens.jump import JumpModal
from dlq_tui.ui.screens.resolve import ResolveModal
from tests.support.hostile_corpus import BELL, BIDI_OVERRIDE, C1_CSI, CLEAR_SCREEN, MARKUP_CLICK, MARKUP_MALFORMED
from tests.ui.conftest import SIZE, DemoDb, make_app, notes, open_events, screen_text, settle
from tests.ui.test_triage_ui import rows, table_hash

# name -> value. Paste inserts the first line only, so none of these holds a line break.
HOSTILE: dict[str, str] = {
    "lone surrogate D800": "ab\ud800c",
    "lone surrogate DC00": "\udc00",
    "NUL": "a\x00b",
    "ESC sequence": CLEAR_SCREEN[:4],  # "\x1b[2J": short enough for every field, the jump box too
    "C1 CSI": C1_CSI,
    "bell": BELL,
    "bidi override": BIDI_OVERRIDE,
    "markup [/]": MARKUP_MALFORMED,
    "markup click": MARKUP_CLICK,
    "2,000 characters": "n" * 2000,
    "2,001 characters": "n" * 2001,
    "100,000 characters": "n" * 100_000,
    "whitespace only": "   ",
    "empty": "",
    "emoji": "\U0001f980\U0001f44d\U0001f3fd",
    "4,301 digits": "9" * 4301,
    "20,000 digits": "7" * 20_000,
    "negative number": "-42",
    "SQL metacharacters": "'; DROP TABLE dead_letter_events; --",
    "LIKE wildcards": "%_\\",
}

ACCEPT = "accept"
SURROGATE = "cannot hold a lone surrogate"
NUL = "cannot hold a NUL character"
CONTROL = "cannot hold a control character"
CHARACTERS = {
    "lone surrogate D800": SURROGATE,
    "lone surrogate DC00": SURROGATE,
    "NUL": NUL,
    "ESC sequence": CONTROL,
    "C1 CSI": CONTROL,
    "bell": CONTROL,
}


def too_long(limit: str) -> dict[str, str]:
    refusal = f"is limited to {limit} characters"
    return {
        name: refusal for name in HOSTILE if len(HOSTILE[name]) > int(limit.replace(",", "")) and name not in CHARACTERS
    }


def expectations(**special: str) -> dict[str, str]:
    return {name: special.get(name, ACCEPT) for name in HOSTILE}


@dataclass
class Case:
    name: str
    value: str
    expected: str  # ACCEPT or a fragment of the refusal line


def cases(expected: dict[str, str], extra: dict[str, tuple[str, str]] | None = None) -> Iterator[Case]:
    for name, value in HOSTILE.items():
        yield Case(name, value, expected[name])
    for name, (value, outcome) in (extra or {}).items():
        yield Case(name, value, outcome)


async def paste(pilot: Pilot[object], value: str, *, clear: bool = True) -> None:
    """What a user does: empty the focused field (ctrl+u) and paste the value into it."""
    field = pilot.app.focused
    assert isinstance(field, Input)
    if clear:
        await pilot.press("end", "ctrl+u")
    field.post_message(events.Paste(value))
    await pilot.pause()


def refusal_line(app) -> str:  # type: ignore[no-untyped-def]
    error = app.screen.query_one(FieldError)
    return str(error.render()) if error.display else ""


class Mismatches(list[str]):
    def check(self, case: Case, ok: bool, got: str) -> None:
        if not ok:
            self.append(f"{case.name}: expected {case.expected!r}, got {got}")


async def refused_in_dialog(pilot: Pilot[object], case: Case, dialog: type, field_id: str) -> tuple[bool, str]:
    """The dialog is still open, names the problem, and the field does not hold the refused text."""
    app = pilot.app
    if not isinstance(app.screen, dialog):
        return False, f"the dialog closed (screen {type(app.screen).__name__})"
    line = refusal_line(app)
    held = app.screen.query_one(f"#{field_id}", Input).value
    # A refused character never gets into the field: the Input would draw it raw on the terminal.
    ok = case.expected in line and refused_character(held) is None
    await pilot.press("escape")
    await settle(pilot)
    return ok, f"refusal {line!r}, field holds {len(held)} characters"


# --- the resolve note ---------------------------------------------------------------------------------------

NOTE_EXPECTED = expectations(**CHARACTERS, **too_long("2,000"))


async def test_resolve_note_refuses_or_stores_exactly_what_was_typed(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    wrong = Mismatches()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        for case in cases(NOTE_EXPECTED):
            event_id = screen.table.highlighted.id
            await pilot.press("x", "1")
            await pilot.pause()
            assert isinstance(app.screen, ResolveModal)
            assert "max 2,000 characters" in screen_text(app)  # the limit is shown before anything is typed
            await paste(pilot, case.value)
            await pilot.press("enter")
            await settle(pilot)
            if case.expected != ACCEPT:
                ok, got = await refused_in_dialog(pilot, case, ResolveModal, "resolve-note")
                ok = ok and not rows(demo_db, [event_id])[event_id]["resolved"]
                wrong.check(case, ok, got)
                continue
            if not isinstance(app.screen, ConfirmModal):
                wrong.check(case, False, f"no confirmation ({refusal_line(app)!r})")
                await pilot.press("escape")
                await settle(pilot)
                continue
            await pilot.press("y")
            await settle(pilot)
            stored = rows(demo_db, [event_id])[event_id]
            entry = stored["processing_attempts"][-1]
            expected_note = case.value.strip() or None
            wrong.check(
                case,
                stored["resolved"] and entry["method"] == "operator:resolve" and entry["note"] == expected_note,
                f"resolved={stored['resolved']} note={str(entry.get('note'))[:40]!r}",
            )
        assert isinstance(app.screen, EventsScreen) and app.is_running
    assert not wrong, "\n".join(wrong)


async def test_a_long_note_is_cut_in_the_confirmation_so_its_buttons_stay_on_screen(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot)
        await pilot.press("x", "1")
        await paste(pilot, "n" * 2000)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        shown = screen_text(app)
        assert "more bytes" in shown and "Resolve" in shown.split("note:")[-1]


# --- the jump box -------------------------------------------------------------------------------------------

# The length is checked first, then the characters; anything else that is not 0-9 gets the same one line.
JUMP_EXPECTED = {
    name: "is limited to 10 characters" if len(value) > 10 else "digits 0-9 only" for name, value in HOSTILE.items()
}
JUMP_EXPECTED.update(CHARACTERS, empty="type an event id")


async def test_jump_box_refuses_anything_but_an_id_in_range(demo_db: DemoDb) -> None:
    app = make_app(demo_db.dsn)
    wrong = Mismatches()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        target = screen.table.window_rows[5].id
        extra = {
            "an id on the list": (str(target), ACCEPT),
            "the largest id": (str(2**31 - 1), ACCEPT),
            "one past the largest id": (str(2**31), "no event has that id: ids go from 1 to 2147483647"),
            "zero": ("0", "ids go from 1 to"),
        }
        for case in cases(JUMP_EXPECTED, extra):
            await pilot.press("g")
            await pilot.pause()
            assert isinstance(app.screen, JumpModal)
            await paste(pilot, case.value)
            await pilot.press("enter")
            await settle(pilot)
            if case.expected != ACCEPT:
                wrong.check(case, *await refused_in_dialog(pilot, case, JumpModal, "jump-id"))
                continue
            if not isinstance(app.screen, EventsScreen):
                wrong.check(case, False, f"dialog still open ({refusal_line(app)!r})")
                await pilot.press("escape")
                continue
            if case.value == str(target):
                wrong.check(case, screen.table.highlighted.id == target, f"highlighted {screen.table.highlighted.id}")
            else:
                said = f"there is no event {case.value}"  # accepted, looked up in every view, not found
                wrong.check(case, said in notes(app), f"notes {notes(app)[-1:]}")
        assert isinstance(app.screen, EventsScreen) and app.is_running
    assert not wrong, "\n".join(wrong)


# --- the export path ----------------------------------------------------------------------------------------

EXPORT_EXPECTED = expectations(
    **CHARACTERS,
    **{name: "bytes long; this filesystem allows at most 255" for name in HOSTILE if len(HOSTILE[name]) > 255},
    **{"whitespace only": "type a file path", "empty": "type a file path"},
)
# Accepted by the dialog, refused by the writer: "[" is not an existing directory.
WRITER_REFUSES = {"markup [/]", "markup click"}


async def test_export_path_refuses_or_writes_the_file(demo_db: DemoDb, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    (tmp_path / "a-directory").mkdir()
    extra = {
        "a 250-character name": ("e" * 244 + ".jsonl", ACCEPT),
        "a 256-character name": ("e" * 250 + ".jsonl", "the file name is 256 bytes long"),
        "a FIFO": (str(pipe), "is a named pipe (FIFO), not a regular file; it was left untouched"),
        "a directory": ("a-directory", "a-directory is a directory"),
        "a device": (os.devnull, "is a device, not a regular file"),
        "a missing home": ("~no-such-user-here/x.jsonl", "no home directory for ~no-such-user-here"),
    }
    app = make_app(demo_db.dsn)
    wrong = Mismatches()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        for case in cases(EXPORT_EXPECTED, extra):
            event_id = screen.table.highlighted.id
            before = set(tmp_path.iterdir())
            await pilot.press("E")
            await pilot.pause()
            assert isinstance(app.screen, ExportModal)
            await paste(pilot, case.value)
            await pilot.press("enter")
            await settle(pilot)
            if case.expected != ACCEPT:
                ok, got = await refused_in_dialog(pilot, case, ExportModal, "export-path")
                wrong.check(case, ok and set(tmp_path.iterdir()) == before, got)
                continue
            if not isinstance(app.screen, EventsScreen):
                wrong.check(case, False, f"dialog still open ({refusal_line(app)!r})")
                await pilot.press("escape")
                continue
            if case.name in WRITER_REFUSES:
                refused = any(n.startswith("not exported: cannot write in") for n in notes(app)[-1:])
                wrong.check(case, refused and set(tmp_path.iterdir()) == before, f"notes {notes(app)[-1:]}")
                continue
            written = tmp_path / case.value
            ok = written.is_file() and [json.loads(line)["id"] for line in written.read_text("ascii").splitlines()]
            wrong.check(case, ok == [event_id], f"file {written.exists()}, notes {notes(app)[-1:]}")
        assert stat.S_ISFIFO(pipe.stat().st_mode)  # the FIFO is still a FIFO
        assert isinstance(app.screen, EventsScreen) and app.is_running
    assert not wrong, "\n".join(wrong)


# --- the filter ---------------------------------------------------------------------------------------------

REASON_EXPECTED = expectations(**CHARACTERS, **too_long("128"))
TEXT_EXPECTED = expectations(**CHARACTERS, **too_long("512"))


@pytest.mark.parametrize(
    ("field_id", "keys", "expected"),
    [("f-reason", ("shift+tab",), REASON_EXPECTED), ("f-text", (), TEXT_EXPECTED)],
    ids=["reason", "text"],
)
async def test_filter_field_refuses_or_filters_by_the_value(
    demo_db: DemoDb, field_id: str, keys: tuple[str, ...], expected: dict[str, str]
) -> None:
    before = table_hash(demo_db)
    attribute = "reason" if field_id == "f-reason" else "text"
    app = make_app(demo_db.dsn)
    wrong = Mismatches()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot)
        extra = {"a reason on the list": (screen.table.window_rows[0].reason, ACCEPT)}
        for case in cases(expected, extra):
            current = screen.filter
            await pilot.press("backslash", *keys)
            await pilot.pause()
            assert isinstance(app.screen, FilterModal)
            assert app.focused is app.screen.query_one(f"#{field_id}")
            await paste(pilot, case.value)
            await pilot.press("enter")
            await settle(pilot)
            if case.expected != ACCEPT:
                ok, got = await refused_in_dialog(pilot, case, FilterModal, field_id)
                wrong.check(case, ok and screen.filter == current, got)
                continue
            if not isinstance(app.screen, EventsScreen):
                wrong.check(case, False, f"dialog still open ({refusal_line(app)!r})")
                await pilot.press("escape")
                continue
            value = case.value.strip() or None
            shown = screen.table.window_rows
            if attribute == "reason":
                matches = all(r.reason == value for r in shown) if value else True
            else:
                matches = all(value.lower() in f"{r.source} {r.reason}".lower() for r in shown) if value else True
            ok = getattr(screen.filter, attribute) == value and matches
            if case.name == "a reason on the list":
                ok = ok and bool(shown)
            wrong.check(case, ok, f"filter {str(getattr(screen.filter, attribute))[:30]!r}, {len(shown)} rows")
        assert isinstance(app.screen, EventsScreen) and app.is_running
    assert table_hash(demo_db) == before  # filtering never writes
    assert not wrong, "\n".join(wrong)


def test_the_database_is_never_asked_to_store_a_nul_or_a_lone_surrogate(demo_db: DemoDb) -> None:
    """Below the dialog as well: a caller passing such a note gets a ValueError and nothing is written."""
    from dlq_tui.db import triage

    with demo_db.engine.connect() as conn:
        event_id = conn.execute(text("SELECT min(id) FROM dead_letter_events WHERE NOT resolved")).scalar_one()
    before = table_hash(demo_db)
    op = triage.Operator("tester")
    for note, problem in (("a\x00b", "a NUL character (U+0000, character 2)"), ("\ud800", "a lone surrogate")):
        with pytest.raises(ValueError, match=re.escape(f"note cannot hold {problem}")):
            triage.resolve(demo_db.engine, op, [event_id], "operator_discarded", note)
    assert table_hash(demo_db) == before
