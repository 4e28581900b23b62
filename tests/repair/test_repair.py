"""dlq_tui.repair over a corpus of broken Cowrie dead letters: each gets the verdict an operator would give it."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import json_repair
import pytest

from dlq_tui.repair import (
    EVENT_IDS,
    MAX_TEXT_BYTES,
    RepairResult,
    check_event,
    raw_event_fields,
    repair_fragments,
    repair_payload,
    repair_text,
)
from tests.support import hostile_corpus as H
from tests.support import repair_corpus as C

STATUSES = ("valid", "repaired", "ambiguous", "refused")


def _all_results(result: RepairResult) -> list[RepairResult]:
    return [result, *result.parts]


@pytest.mark.parametrize("case", C.CASES, ids=[c.name for c in C.CASES])
def test_corpus_verdict(case: C.Case) -> None:
    result = repair_payload(case.payload)
    assert result.status == case.status, (result.reason, result.steps, result.warnings)
    if case.status == "refused":
        assert result.event is None
        assert result.reason
    for key, value in case.fields.items():
        assert result.event is not None
        assert result.event.get(key, "<absent>") == value, key
    for key in case.absent:
        assert result.event is not None and key not in result.event
    for step in case.steps:
        assert any(step in s for s in result.steps), (step, result.steps)
    for warning in case.warnings:
        assert any(warning in w for w in result.warnings), (warning, result.warnings)
    if case.reason is not None:
        assert result.reason is not None and case.reason in result.reason
    assert tuple(p.status for p in result.parts) == case.parts


def test_corpus_is_big_and_covers_every_verdict() -> None:
    assert len(C.CASES) >= 60
    assert len({c.name for c in C.CASES}) == len(C.CASES)
    counts = {s: sum(c.status == s for c in C.CASES) for s in STATUSES}
    assert all(counts.values()), counts


@pytest.mark.parametrize("case", C.CASES, ids=[c.name for c in C.CASES])
def test_never_invents_a_field_or_value(case: C.Case) -> None:
    """Every key and every text value of a candidate event is in the dead letter's text (the pipeline's own repair
    writes "unknown", "0.0.0.0" and "unknown-session" into events; nothing here may)."""
    for result in _all_results(repair_payload(case.payload)):
        if result.event is None:
            continue
        text = result.original_text
        for key, value in result.event.items():
            assert json.dumps(key) in text or f"'{key}'" in text, key
            if isinstance(value, str):
                encoded = json.dumps(value, ensure_ascii=False)[1:-1]
                assert value in text or encoded in text or json.dumps(value)[1:-1] in text, (key, value)


@pytest.mark.parametrize("case", C.CASES, ids=[c.name for c in C.CASES])
def test_usable_results_pass_every_check(case: C.Case) -> None:
    for result in _all_results(repair_payload(case.payload)):
        if result.status == "refused":
            assert result.event is None
            continue
        if result.parts:
            assert result.event is None  # several objects: the caller must pick, nothing is chosen for them
            continue
        assert result.event is not None
        assert [c.name for c in result.checks] == ["object", "eventid", "timestamp", "session", "src_ip"]
        assert all(c.ok for c in result.checks), result.checks
        if result.status == "valid":
            assert not result.steps and not result.warnings
        if result.status == "repaired":
            assert result.steps


def test_same_input_same_result() -> None:
    for case in C.CASES:
        assert repair_payload(case.payload) == repair_payload(case.payload), case.name


def test_refusal_lists_each_failed_check() -> None:
    result = repair_payload(dict(C.LOGIN_FAILED, eventid="cowrie.nope", session="xyz", src_ip="999.1.1.1"))
    assert result.status == "refused"
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert set(failed) == {"eventid", "session", "src_ip"}
    assert result.reason is not None
    assert all(detail in result.reason for detail in failed.values())
    assert next(c for c in result.checks if c.name == "timestamp").ok


def test_glued_events_both_kept_where_json_repair_alone_drops_one() -> None:
    text = C.line(C.LOGIN_FAILED) + C.line(C.LOGIN_SUCCESS)
    alone = json_repair.loads(text)
    assert alone == C.LOGIN_SUCCESS  # what a plain json_repair call makes of it: the failed login is gone
    result = repair_text(text)
    assert [p.event for p in result.parts] == [C.LOGIN_FAILED, C.LOGIN_SUCCESS]
    assert result.status == "ambiguous" and result.event is None


def test_cut_value_is_flagged_not_passed_as_whole() -> None:
    text = C.cut_after(C.line(C.COMMAND_SESSION_FIRST), '"sensor": "hp')
    silent = json_repair.loads(text)
    assert (
        isinstance(silent, dict) and silent["sensor"] == "hp"
    )  # json_repair alone: a shortened value, not a word about it
    result = repair_text(text)
    assert result.status == "ambiguous"
    assert "last value truncated: sensor" in result.warnings


def test_cut_after_key_never_gets_an_empty_value() -> None:
    text = C.cut_after(C.line(C.COMMAND_SESSION_FIRST), '"sensor":')
    alone = json_repair.loads(text)
    assert isinstance(alone, dict) and alone["sensor"] == ""  # json_repair alone invents the empty value
    result = repair_text(text)
    assert result.event is not None and "sensor" not in result.event
    assert "last value truncated: sensor (field dropped)" in result.warnings


# --- fragments: the loader splits a pretty-printed event over several dead letters ---------------------------------


def _rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    """One dead letter per line, as the line-by-line loader writes a pretty-printed event."""
    return [C.payload(part) for part in C.pretty(event).splitlines()]


def test_fragments_one_line_each_join_into_the_event() -> None:
    rows = _rows(C.LOGIN_FAILED)
    assert all(repair_payload(row).status == "refused" for row in rows)  # no single line is an event
    result = repair_fragments(rows)
    assert result.status == "repaired"
    assert result.event == C.LOGIN_FAILED
    assert result.steps[0] == f"joined {len(rows)} fragments of one pretty-printed event"


def test_fragments_with_a_lost_line_are_ambiguous() -> None:
    # A lone list item such as "aes256-ctr" is valid JSON on its own line, so the loader took it as a record
    # and it never reached the dead letters: joining the rest leaves a trailing comma where it was.
    rows = [row for row in _rows(C.KEX) if row["malformed_content"] != '"aes256-ctr"']
    result = repair_fragments(rows)
    assert result.status == "ambiguous"
    assert result.event is not None and result.event["encCS"] == ["aes128-ctr"]
    assert any("a line may be missing" in w for w in result.warnings)


def test_fragments_with_a_non_text_payload_are_refused() -> None:
    result = repair_fragments([C.payload("{"), ["cowrie.command.input"]])
    assert result.status == "refused"
    assert result.reason == "fragment 2 has no text to join (an array)"


def test_fragments_of_several_events_stay_apart() -> None:
    result = repair_fragments([C.payload(C.line(C.CONNECT)), C.payload(C.line(C.LOGIN_FAILED))])
    assert result.status == "ambiguous"
    assert [p.event for p in result.parts] == [C.CONNECT, C.LOGIN_FAILED]


# --- raw_events values --------------------------------------------------------------------------------------------


def test_raw_event_fields_match_the_pipeline_contract() -> None:
    event = dict(C.LOGIN_FAILED, timestamp="2024-03-01T03:11:12.004211+01:00")
    fields = raw_event_fields(event)
    compact = json.dumps(event, sort_keys=True, separators=(",", ":"))
    assert fields["payload_hash"] == hashlib.blake2b(compact.encode(), digest_size=32).hexdigest()
    assert fields["payload"] == event
    assert fields["session_id"] == C.SESSION
    assert fields["event_type"] == "cowrie.login.failed"
    assert fields["event_timestamp"] == datetime(2024, 3, 1, 2, 11, 12, 4211, tzinfo=UTC)
    assert fields["event_timestamp"].utcoffset() == timedelta(0)
    assert fields["event_timestamp_text"] == "2024-03-01T02:11:12.004211Z"


def test_payload_hash_ignores_key_order_and_sees_every_value() -> None:
    reordered = dict(reversed(list(C.LOGIN_FAILED.items())))
    assert raw_event_fields(reordered)["payload_hash"] == raw_event_fields(C.LOGIN_FAILED)["payload_hash"]
    changed = dict(C.LOGIN_FAILED, password="P@ssw0rd!")
    assert raw_event_fields(changed)["payload_hash"] != raw_event_fields(C.LOGIN_FAILED)["payload_hash"]


def test_raw_event_fields_of_hostile_values_encode() -> None:
    event = dict(C.LOGIN_FAILED, password="a\x00b\udcff\x1b[2J")
    fields = raw_event_fields(event)
    assert len(fields["payload_hash"]) == 64  # lone surrogates and NUL do not break the hash text


def test_raw_event_fields_without_the_fields() -> None:
    fields = raw_event_fields({"eventid": 5, "timestamp": "soon"})
    assert fields["session_id"] is None and fields["event_type"] is None
    assert fields["event_timestamp"] is None and fields["event_timestamp_text"] is None


def test_check_event_accepts_every_known_event_id() -> None:
    for eventid in sorted(EVENT_IDS):
        checks = check_event(dict(C.LOGIN_FAILED, eventid=eventid))
        assert all(c.ok for c in checks), eventid


def test_timestamp_offsets_are_read_as_the_same_instant() -> None:
    east = dict(C.LOGIN_FAILED, timestamp="2024-03-01T07:41:12+05:30")
    stamp = raw_event_fields(east)["event_timestamp"]
    assert stamp == datetime(2024, 3, 1, 2, 11, 12, tzinfo=timezone(timedelta(hours=0)))


# --- hostile input ------------------------------------------------------------------------------------------------

HOSTILE_TEXTS = {
    "huge line": H.HUGE_LINE,
    "deep array": H.DEEP_JSON,
    "deep object": H.DEEP_JSON_OBJECT,
    "huge array": H.HUGE_ARRAY,
    "clear screen": H.CLEAR_SCREEN,
    "osc 52": H.OSC52_CLIPBOARD,
    "markup": H.MARKUP_MALFORMED,
    "lone surrogate": H.LONE_SURROGATE,
    "nul and del": H.NUL_AND_DEL,
    "bidi": H.BIDI_OVERRIDE,
    "malformed payload text": H.MALFORMED_PAYLOAD,
    "100000 brackets": "[" * 100_000,
    "64 KB of open objects": '{"a":' * (MAX_TEXT_BYTES // 5),
    "lone surrogates around an event": "\ud800" + C.line(C.LOGIN_FAILED) + "\udfff",
}


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
def test_hostile_text_gets_a_verdict_not_an_exception(text: str) -> None:
    result = repair_text(text)
    assert result.status in STATUSES
    if result.status != "refused":
        assert all(c.ok for c in result.checks)


def test_hostile_text_is_refused() -> None:
    for name, text in HOSTILE_TEXTS.items():
        if name != "lone surrogates around an event":
            assert repair_text(text).status == "refused", name
    assert repair_text(HOSTILE_TEXTS["lone surrogates around an event"]).status == "repaired"


def _is_prefix(value: object, original: object) -> bool:
    """value is what a cut can leave of original: a shorter string, fewer list items (the last maybe cut), a number
    cut after some digits."""
    if isinstance(original, str):
        return isinstance(value, str) and original.startswith(value)
    if isinstance(original, list):
        if not isinstance(value, list) or len(value) > len(original) or not value:
            return isinstance(value, list) and not value
        return value[:-1] == original[: len(value) - 1] and _is_prefix(value[-1], original[len(value) - 1])
    if isinstance(original, int | float) and not isinstance(original, bool):
        return isinstance(value, int | float) and str(original).startswith(str(value))
    return value == original


@pytest.mark.parametrize(
    "event", [C.COMMAND_SESSION_FIRST, C.KEX, C.CLOSED, C.CONNECT, C.ERROR_FLAG_FIRST], ids=lambda e: e["eventid"]
)
def test_every_cut_of_a_line_gets_a_consistent_verdict(event: dict[str, Any]) -> None:
    """Cut a real line at every position: never an exception; a usable verdict only with every kept value whole;
    an ambiguous one only with values the cut shortened; nothing the line did not have."""
    text = C.line(event)
    for end in range(1, len(text) + 1):
        result = repair_text(text[:end])
        assert result.status in STATUSES
        if result.event is None:
            continue
        assert set(result.event) <= set(event), end
        for key, value in result.event.items():
            if result.status == "ambiguous":
                assert _is_prefix(value, event[key]), (end, key, value)
            else:
                assert value == event[key], (end, key, value)


def test_random_damage_never_raises() -> None:
    rng = random.Random(12)
    lines = [C.line(e) for e in (C.CONNECT, C.LOGIN_FAILED, C.COMMAND, C.KEX, C.CLOSED, C.DOWNLOAD)]
    junk = ['"', "'", "{", "}", "[", "]", ",", ":", "\\", "\n", "\x00", "\ufeff", "\udcff", "NaN", '""', "\x1b"]
    for _ in range(600):
        text = rng.choice(lines)
        for _ in range(rng.randrange(1, 5)):
            at = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:at] + rng.choice(junk) + text[at:]
            else:
                text = text[:at] + text[at + rng.randrange(1, 8) :]
        result = repair_text(text)
        assert result.status in STATUSES
        if result.event is not None:
            assert all(c.ok for c in result.checks)
            json.dumps(result.event, allow_nan=False)


def test_size_cap_is_in_utf8_bytes() -> None:
    event = dict(C.COMMAND, input="é" * 33_000)  # 33,000 characters, 66,000 bytes
    text = json.dumps(event, ensure_ascii=False)
    assert len(text) < MAX_TEXT_BYTES < len(text.encode())
    result = repair_text(text)
    assert result.status == "refused" and "larger than the 64 KB" in (result.reason or "")


def test_package_imports_no_database_or_ui_code() -> None:
    probe = (
        "import sys, dlq_tui.repair; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'sqlalchemy', 'psycopg', 'alembic')]; "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
