"""JSON nested arbitrarily deep in any JSON column: shown with the depth cut marked, exported, never a crash.

The shape is the one that killed the events screen: `{"w": [[[…]]]}`. At 970 levels json.loads still
succeeds, and json.dumps of the result then overflowed on the UI thread as soon as the event was highlighted.

PostgreSQL itself parses json and jsonb input recursively: with its default max_stack_depth (2 MB) it accepts
10,000 levels and refuses 50,000, and at 100,000 it refuses even at 7 MB (all this machine's stack allows). A
jsonb value that deep can only exist on a server with a far larger stack; the db layer hands it over as text
either way, so the 100,000-level audit case is tested where that text is drawn (timeline). A json column keeps
its text, so 100,000 levels are stored through a binary-coercible cast that skips the input check, as a
server with enough stack would have accepted them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Group
from rich.text import Text
from sqlalchemy import Engine, text

from dlq_tui.cli import run
from dlq_tui.db.models import JsonText
from dlq_tui.db.triage import export_jsonl
from dlq_tui.text import json_nesting_exceeds, safe_json
from dlq_tui.ui.widgets.event_detail import PAYLOAD_PAGE_CHARS, timeline
from tests.support.factories import insert_event
from tests.ui.conftest import make_app, settle
from tests.ui.test_hostile_render import open_events_on

DEPTHS = (100, 970, 1_000, 100_000)
JSON_COLUMNS = ("payload", "metadata_json")  # json: the stored text is kept
JSONB_COLUMNS = ("error_history", "processing_attempts")
JSONB_MAX_STORED = 10_000  # what the test server's jsonb input accepts (see the module docstring)
SHOWN_LEVELS = 32  # safe_json's default max_depth


def nested(depth: int) -> str:
    """`{"w": [[[…]]]}` with `depth` lists: depth + 1 levels in all."""
    return '{"w": ' + "[" * depth + "]" * depth + "}"


def levels_marker(depth: int) -> str:
    return f"… {depth + 1 - SHOWN_LEVELS:,} more levels"


CASES = [
    (column, depth)
    for column in JSON_COLUMNS + JSONB_COLUMNS
    for depth in DEPTHS
    if column in JSON_COLUMNS or depth <= JSONB_MAX_STORED
]


def store(engine: Engine) -> dict[tuple[str, int], int]:
    """One event per (column, depth); every other column ordinary."""
    ids: dict[tuple[str, int], int] = {}
    with engine.begin() as conn:
        # Binary-coercible: a json value is text, so this stores the text without PostgreSQL's recursive check.
        conn.execute(text("CREATE CAST (text AS json) WITHOUT FUNCTION"))
        for column, depth in CASES:
            event_id = insert_event(conn, reason=f"deep-{column}-{depth}")
            cast = "json" if column in JSON_COLUMNS else "jsonb"
            conn.execute(
                text(f"UPDATE dead_letter_events SET {column} = CAST(CAST(:v AS text) AS {cast}) WHERE id = :id"),
                {"v": nested(depth), "id": event_id},
            )
            ids[(column, depth)] = event_id
    return ids


@pytest.fixture
def deep_ids(v7_engine: Engine) -> Iterator[dict[tuple[str, int], int]]:
    yield store(v7_engine)


def rendered(renderable: Any) -> str:
    """The plain text of a Text or a Group of Texts, as built (no wrapping to a width)."""
    if isinstance(renderable, Text):
        return renderable.plain
    assert isinstance(renderable, Group)
    return "\n".join(rendered(part) for part in renderable.renderables)


# ---------------------------------------------------------------------------------------------- printer


@pytest.mark.parametrize("depth", DEPTHS)
def test_printer_marks_the_levels_it_does_not_draw(depth: int) -> None:
    value = nested(depth)
    for shown in (safe_json(value), safe_json(value, multiline=False)):
        assert levels_marker(depth) in shown.plain
        assert shown.plain.endswith("}")  # the cut subtree is skipped, the rest still drawn
        assert len(shown.plain) < 5_000


def test_printer_counts_levels_of_a_parsed_value_without_recursion() -> None:
    root: list[Any] = []
    node = root
    for _ in range(100_000):  # built iteratively: json.loads could not make it
        node.append([])
        node = node[0]
    # Encoded as far as the output budget goes: the rest is not known, so "at least" and the bytes cut.
    shown = safe_json(root).plain
    assert "… at least " in shown and " more levels … more not shown" in shown


def test_a_cut_prefix_says_at_least_and_counts_the_bytes() -> None:
    value = nested(100_000)
    prefix = value[:PAYLOAD_PAGE_CHARS]
    shown = safe_json(prefix, total_bytes=len(value)).plain
    assert shown.endswith(
        f"… at least {len(prefix) - 6 + 1 - SHOWN_LEVELS:,} more levels … +{len(value) - len(prefix)} more bytes"
    )


def test_nesting_is_measured_without_counting_brackets_in_strings() -> None:
    assert not json_nesting_exceeds('{"a": "[[[[[[[[[[", "b": [1]}', 2)
    assert json_nesting_exceeds('{"a": [[1]]}', 2)
    assert not json_nesting_exceeds('{"a": [[1]]}', 3)
    assert json_nesting_exceeds(nested(100_000), 64)
    assert not json_nesting_exceeds(json.dumps([{"a": [1, {"b": 2}]}] * 10_000), 4)


# ---------------------------------------------------------------------------------------- detail pane


@pytest.mark.parametrize("column", JSONB_COLUMNS)
def test_timeline_draws_an_audit_column_at_100000_levels(column: str) -> None:
    value = nested(100_000)
    shown = rendered(timeline(column, JsonText(value, len(value))))
    assert "too big or too deep to list" in shown
    assert levels_marker(100_000) in shown


async def test_detail_pane_shows_every_deep_column_with_its_depth_cut(
    v7_dsn: str, deep_ids: dict[tuple[str, int], int]
) -> None:
    app = make_app(v7_dsn, refresh_seconds=600)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        for (column, depth), event_id in deep_ids.items():
            screen = await open_events_on(pilot, event_id)
            pane = {
                name: rendered(screen.pane.query_one(f"#detail-{name}").content)
                for name in ("timelines", "payload", "metadata")
            }
            where = f"{column} at {depth} levels"
            value = nested(depth)
            if column in JSONB_COLUMNS:
                assert "too big or too deep to list" in pane["timelines"], where
                assert levels_marker(depth) in pane["timelines"], where
            elif column == "metadata_json" and len(value) > PAYLOAD_PAGE_CHARS:
                # Fetched as one page of text: the printer shows the part it has, and says what it lacks.
                assert f" more levels … +{len(value) - PAYLOAD_PAGE_CHARS} more bytes" in pane["metadata"], where
            elif column == "metadata_json":
                assert levels_marker(depth) in pane["metadata"], where
            elif len(value) > PAYLOAD_PAGE_CHARS:
                assert "page 1/" in pane["payload"] and "press ] for the next page" in pane["payload"], where
            else:
                assert levels_marker(depth) in pane["payload"], where
        assert app.is_running and app.return_code is None


# --------------------------------------------------------------------------------------------- export


def test_export_writes_every_deep_column_exactly(
    v7_engine: Engine, deep_ids: dict[tuple[str, int], int], tmp_path: Path
) -> None:
    path = tmp_path / "deep.jsonl"
    ordered = list(deep_ids.items())
    assert export_jsonl(v7_engine, [event_id for _, event_id in ordered], path) == len(ordered)
    lines = path.read_text(encoding="ascii").splitlines()
    for ((column, depth), event_id), line in zip(ordered, lines, strict=True):
        value = nested(depth)
        assert line.startswith(f'{{"id": {event_id}, ')
        if column in JSONB_COLUMNS:
            assert f'"{column}": {value}, ' in line  # the stored JSON itself, not a string holding it
        else:
            name = "payload_text" if column == "payload" else "metadata_json_text"
            assert f'"{name}": {json.dumps(value)}, ' in line
        if depth <= 100:
            record = json.loads(line)
            stored = record[column] if column in JSONB_COLUMNS else json.loads(record[name])
            assert stored == json.loads(value)


# ------------------------------------------------------------------------------------ analyze, health


def test_analyze_and_health_read_a_table_of_deep_values(
    v7_dsn: str, deep_ids: dict[tuple[str, int], int], capsys: pytest.CaptureFixture[str]
) -> None:
    # They never read the JSON columns: this keeps it so (a query that did would fetch them parsed).
    for argv, code in ((["analyze"], 0), (["analyze", "--json"], 0), (["health"], 0), (["health", "--json"], 0)):
        assert run([*argv, "--dsn", v7_dsn]) == code, argv
        out, err = capsys.readouterr()
        assert err == "" and "Traceback" not in out
        if "--json" in argv:
            document = json.loads(out)
            pending = document["pending_events"] if argv[0] == "analyze" else document["figures"]["pending_events"]
            assert pending == len(deep_ids)
        else:
            assert f"{len(deep_ids):,} pending" in out


# ------------------------------------------------------------------------------ every cut shows its marker


async def test_metadata_longer_than_a_page_ends_with_the_bytes_not_shown(v7_dsn: str, v7_engine: Engine) -> None:
    metadata = json.dumps({"note": "A" * 9_000, "after": "é" * 10})
    with v7_engine.begin() as conn:
        event_id = insert_event(conn, metadata_json=metadata)
    app = make_app(v7_dsn, refresh_seconds=600)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        screen = await open_events_on(pilot, event_id)
        shown = rendered(screen.pane.query_one("#detail-metadata").content).rstrip()
    # The page holds the first 8,000 characters; the rest of the note and the 2-byte é's are not shown.
    not_shown = len(metadata.encode()) - len(metadata[:PAYLOAD_PAGE_CHARS].encode())
    assert shown.endswith(f"… +{not_shown} more bytes")


def test_an_audit_timestamp_is_only_shortened_when_it_is_one() -> None:
    from dlq_tui.ui.widgets.event_detail import audit_line

    entry = {"method": "operator:claim", "operator": "alice", "success": True, "changes": {}}
    real = rendered(audit_line({**entry, "timestamp": "2024-03-12T09:30:00.123456+00:00"}))
    assert "2024-03-12T09:30:00 " in real and ".123456" not in real
    odd = rendered(audit_line({**entry, "timestamp": "not a time but a long note " * 3}))
    assert "not a time but a long note not " in odd and " more bytes" in odd
