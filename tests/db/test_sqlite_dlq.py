"""The SQLite DLQ (dlq_tui.db.lite) on real files shaped as the Cowrie processor creates them."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dlq_tui.db import lite
from dlq_tui.db.models import EventFilter, PageCursor
from dlq_tui.db.triage import ActionRefused, Operator
from dlq_tui.text import plain
from tests.support import hostile_corpus as hostile
from tests.support.sqlite_dlq import create_dlq, dsn_of, event, insert, insert_raw_payload, read_row

OP = Operator("alice")
NOW = datetime.now(UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return create_dlq(tmp_path / "cowrieprocessor.sqlite")


@pytest.fixture
def engine(db: Path) -> Iterator[Engine]:
    engine = lite.lite_engine(dsn_of(db), busy_timeout_s=0.2)
    yield engine
    engine.dispose()


def _all_pages(engine: Engine, flt: EventFilter, limit: int) -> list[int]:
    seen: list[int] = []
    cursor: PageCursor | None = None
    with engine.connect() as conn:
        while True:
            page = lite.fetch_page(conn, flt, after=cursor, limit=limit)
            seen += [r.id for r in page.rows]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor


# ------------------------------------------------------------------------------------------------ health


def test_health_figures_match_the_rows_counted_by_hand(db: Path, engine: Engine) -> None:
    times = [NOW - timedelta(hours=1), NOW - timedelta(hours=2), NOW - timedelta(hours=2, minutes=5)]
    insert(db, [event(created_at=t) for t in times])
    insert(db, [event(reason="file_type_mismatch", created_at=NOW - timedelta(hours=30))])
    insert(db, [event(reason="unknown", created_at="not a date"), event(reason="unknown", created_at=12345)])
    day3 = NOW - timedelta(days=3)
    insert(
        db,
        [
            event(created_at=day3, resolved=True, resolved_at=day3 + timedelta(seconds=60)),
            event(created_at=day3, resolved=True, resolved_at=day3 + timedelta(seconds=180)),
        ],
    )
    with engine.connect() as conn:
        h = lite.fetch_lite_health(conn)
    assert (h.pending_events, h.processed_events, h.undated_pending) == (6, 2, 2)
    assert h.avg_resolution_time_seconds == pytest.approx(120, abs=0.01)
    assert h.oldest_pending_at is not None and h.newest_pending_at is not None
    assert abs(h.oldest_pending_at - (NOW - timedelta(hours=30))) < timedelta(milliseconds=5)
    assert abs(h.newest_pending_at - (NOW - timedelta(hours=1))) < timedelta(milliseconds=5)
    assert h.pending_by_reason == [("json_parsing_failed", 3), ("unknown", 2), ("file_type_mismatch", 1)]
    # Trends: every event created (resolved ones too) and every resolve, by hour and by UTC day.
    created = [*times, NOW - timedelta(hours=30), day3, day3]
    resolved = [day3 + timedelta(seconds=60), day3 + timedelta(seconds=180)]

    def hour_of(t: datetime) -> datetime:
        return t.replace(minute=0, second=0, microsecond=0)

    def day_of(t: datetime) -> datetime:
        return t.replace(hour=0, minute=0, second=0, microsecond=0)

    assert (h.hourly.bucket, len(h.hourly.starts), h.daily.bucket, len(h.daily.starts)) == ("hour", 24, "day", 30)
    assert h.hourly.starts[-1] == hour_of(h.db_now) and h.daily.starts[-1] == day_of(h.db_now)
    assert h.hourly.arrived == [sum(1 for t in created if hour_of(t) == s) for s in h.hourly.starts]
    assert sum(h.hourly.arrived) == 3 and sum(h.hourly.resolved) == 0
    assert h.daily.arrived == [sum(1 for t in created if day_of(t) == s) for s in h.daily.starts]
    assert h.daily.resolved == [sum(1 for t in resolved if day_of(t) == s) for s in h.daily.starts]
    assert (sum(h.daily.arrived), sum(h.daily.resolved)) == (len(created), 2)


def test_health_of_an_empty_dlq(engine: Engine) -> None:
    with engine.connect() as conn:
        h = lite.fetch_lite_health(conn)
    assert (h.pending_events, h.processed_events, h.oldest_pending_at, h.avg_resolution_time_seconds) == (
        0,
        0,
        None,
        None,
    )
    assert sum(h.hourly.arrived) == sum(h.daily.resolved) == 0


# ------------------------------------------------------------------------------------------------- pages


def _paging_rows(db: Path, n: int) -> None:
    """n rows, five per timestamp (equal created_at), inserted in random order so ids do not follow time."""
    rows = [event(created_at=NOW - timedelta(minutes=i // 5), source_offset=i) for i in range(n)]
    random.Random(7).shuffle(rows)
    insert(db, rows)
    insert(db, [event(created_at="garbage"), event(created_at=99), event(created_at="")])


def _expected_order(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, created_at FROM dead_letter_events WHERE resolved = 0").fetchall()
    finally:
        conn.close()

    # SQLite's order of stored values: numbers before text; ties by id.
    def key(r: tuple[int, object]) -> tuple[int, object, int]:
        return (0, r[1], r[0]) if isinstance(r[1], int | float) else (1, r[1], r[0])

    return [r[0] for r in sorted(rows, key=key)]


def test_keyset_pages_never_skip_or_repeat_an_event(db: Path, engine: Engine) -> None:
    _paging_rows(db, 1_050)
    expected = _expected_order(db)
    assert len(expected) == 1_053
    for limit in (100, 7):
        seen = _all_pages(engine, EventFilter(), limit)
        assert seen == expected
    assert _all_pages(engine, EventFilter(order="newest"), 100) == list(reversed(expected))


def test_pages_backwards_and_from_an_id(db: Path, engine: Engine) -> None:
    _paging_rows(db, 1_050)
    expected = _expected_order(db)
    with engine.connect() as conn:
        first = lite.fetch_page(conn, EventFilter(), limit=100)
        second = lite.fetch_page(conn, EventFilter(), after=first.next_cursor, limit=100)
        back = lite.fetch_page(conn, EventFilter(), before=second.rows[0].cursor, limit=100)
        assert [r.id for r in back.rows] == [r.id for r in first.rows]
        at = lite.page_starting_at(conn, EventFilter(), expected[500], limit=10)
        assert at is not None and [r.id for r in at.rows] == expected[500:510]
        assert lite.matching_ids(conn, EventFilter()) == expected


def test_garbage_timestamps_read_as_undated_without_failing(db: Path, engine: Engine) -> None:
    (bad,) = insert(db, [event(created_at="yesterday-ish")])
    (naive,) = insert(db, [event(created_at="2024-03-01T10:00:00")])
    with engine.connect() as conn:
        rows = {r.id: r for r in lite.fetch_page(conn, EventFilter()).rows}
        detail = lite.fetch_event(conn, bad)
    assert rows[bad].created_at == lite.UNDATED
    assert rows[naive].created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert detail is not None and detail.row.created_at == lite.UNDATED


# ----------------------------------------------------------------------------------------------- filters


def test_text_filter_takes_percent_and_underscore_literally(db: Path, engine: Engine) -> None:
    literal, lookalike, payload_hit = insert(
        db,
        [
            event(source="/var/log/100%_done.json", created_at=NOW),
            event(source="/var/log/100xxdone.json", created_at=NOW),
            event(source="/elsewhere", payload='{"cmd": "wget 100%_DONE"}', created_at=NOW),
        ],
    )
    insert(db, [event(source="/a\\b", created_at=NOW)])
    with engine.connect() as conn:
        hits = lite.matching_ids(conn, EventFilter(text="100%_done"))
        assert hits == [literal, payload_hit]  # the payload match is case-insensitive (LIKE)
        assert len(lite.matching_ids(conn, EventFilter(text="a\\b"))) == 1  # the escape character itself
        assert lite.matching_ids(conn, EventFilter(text="%")) == [literal, payload_hit]
        assert lookalike in lite.matching_ids(conn, EventFilter())


def test_reason_filter_and_known_reasons(db: Path, engine: Engine) -> None:
    insert(db, [event(reason="payload_not_dict", created_at=NOW), *(event(created_at=NOW) for _ in range(2))])
    with engine.connect() as conn:
        assert lite.known_reasons(conn) == ["json_parsing_failed", "payload_not_dict"]
        assert len(lite.matching_ids(conn, EventFilter(reason="payload_not_dict"))) == 1


@pytest.mark.parametrize(
    "flt",
    [EventFilter(max_priority=3), EventFilter(classification="malicious"), EventFilter(lock="locked"),
     EventFilter(order="retries")],
)  # fmt: skip
def test_v7_only_filters_are_unavailable_with_the_reason(engine: Engine, flt: EventFilter) -> None:
    with engine.connect() as conn, pytest.raises(lite.Unavailable) as caught:
        lite.fetch_page(conn, flt)
    assert str(caught.value).endswith(": v7 is PostgreSQL-only")


# ------------------------------------------------------------------------------------------------ detail


def test_detail_keeps_hostile_payloads_as_data(db: Path, engine: Engine) -> None:
    payload = json.dumps({"malformed_content": hostile.OSC52_CLIPBOARD + hostile.MARKUP_CLICK + hostile.CLEAR_SCREEN})
    (eid,) = insert(db, [event(payload=payload, metadata_json=None, created_at=NOW)])
    raw = insert_raw_payload(db, "7b2278223a2022ff fe22".replace(" ", "") + "7d", NOW)
    with engine.connect() as conn:
        detail = lite.fetch_event(conn, eid, payload_chars=10)
        whole = lite.fetch_event(conn, eid)
        broken = lite.fetch_event(conn, raw)
        piece = lite.fetch_payload_slice(conn, eid, 2, 5)
    assert detail is not None and whole is not None and broken is not None
    assert detail.payload_text == payload[:10] and detail.payload_total_chars == len(payload)
    assert whole.payload_text == payload and whole.metadata_text is None
    assert piece == payload[2:7]
    assert broken.payload_text == b'{"x": "\xff\xfe"}'.decode("utf-8", "surrogateescape")
    assert "\x1b" not in plain(whole.payload_text) and "\\xff" in plain(broken.payload_text)
    assert detail.checksum_status == "none" and detail.error_history is None


# ------------------------------------------------------------------------------------------ resolve/reopen


def test_resolve_then_reopen_sets_the_legacy_columns_and_audits_in_metadata(db: Path, engine: Engine) -> None:
    null_meta, object_meta, garbage_meta, already = insert(
        db,
        [
            event(metadata_json=None, created_at=NOW),
            event(metadata_json='{"requires_investigation": true}', created_at=NOW),
            event(metadata_json="{not json", created_at=NOW),
            event(created_at=NOW, resolved=True, resolved_at=NOW),
        ],
    )
    result = lite.resolve(
        engine, OP, [null_meta, object_meta, garbage_meta, already, 999], "operator_discarded", "looked at it"
    )
    assert result.done == [null_meta, object_meta, garbage_meta]
    assert result.skipped == {already: "already resolved", 999: "no such event"}
    row = read_row(db, object_meta)
    assert row["resolved"] == 1 and lite.parse_time(row["resolved_at"]) is not None
    meta = json.loads(row["metadata_json"])
    assert meta["requires_investigation"] is True
    (entry,) = meta[lite.AUDIT_KEY]
    assert (entry["method"], entry["operator"], entry["resolution_method"], entry["note"]) == (
        "operator:resolve",
        "alice",
        "operator_discarded",
        "looked at it",
    )
    assert json.loads(read_row(db, null_meta)["metadata_json"])[lite.AUDIT_KEY][0]["method"] == "operator:resolve"
    assert read_row(db, garbage_meta)["metadata_json"] == "{not json"  # kept as it was: nothing lost

    reopened = lite.reopen(engine, OP, [object_meta, null_meta + 100])
    assert reopened.done == [object_meta]
    row = read_row(db, object_meta)
    assert (row["resolved"], row["resolved_at"]) == (0, None)
    assert [e["method"] for e in json.loads(row["metadata_json"])[lite.AUDIT_KEY]] == [
        "operator:resolve",
        "operator:reopen",
    ]
    with engine.connect() as conn:
        h = lite.fetch_lite_health(conn)
        assert (h.pending_events, h.processed_events) == (1, 3)


def test_resolve_rejects_an_unknown_method(db: Path, engine: Engine) -> None:
    (eid,) = insert(db, [event(created_at=NOW)])
    with pytest.raises(ValueError, match="resolution method"):
        lite.resolve(engine, OP, [eid], "made-up")
    assert read_row(db, eid)["resolved"] == 0


# ------------------------------------------------------------------------------------------------- busy


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_resolve_waits_for_a_write_lock_then_refuses_in_one_line(db: Path, engine: Engine) -> None:
    (eid,) = insert(db, [event(created_at=NOW)])
    other = _hold_write_lock(db)
    heard: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(ActionRefused) as caught:
            lite.resolve(engine, OP, [eid], "operator_discarded", on_busy=heard.append)
        waited = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
    assert (
        str(caught.value) == "busy, try again: the SQLite database is locked by another connection; nothing was changed"
    )
    assert heard == [lite.LOCKED_RETRYING] * (lite.BUSY_ATTEMPTS - 1)
    assert waited >= 0.2 * lite.BUSY_ATTEMPTS * 0.9  # it waited the busy timeout on every attempt
    assert read_row(db, eid)["resolved"] == 0


def test_resolve_goes_through_once_the_lock_is_released(db: Path, engine: Engine) -> None:
    (eid,) = insert(db, [event(created_at=NOW)])
    other = _hold_write_lock(db)
    releaser = threading.Timer(0.3, lambda: (other.rollback(), other.close()))
    releaser.start()
    heard: list[str] = []
    try:
        result = lite.resolve(engine, OP, [eid], "operator_discarded", on_busy=heard.append)
    finally:
        releaser.join()
    assert result.done == [eid] and heard  # it said it was retrying, then it was done
    assert read_row(db, eid)["resolved"] == 1


def test_reads_go_on_while_another_connection_holds_the_write_lock(db: Path, engine: Engine) -> None:
    insert(db, [event(created_at=NOW)])
    other = _hold_write_lock(db)
    try:
        with engine.connect() as conn:
            assert lite.fetch_lite_health(conn).pending_events == 1
    finally:
        other.rollback()
        other.close()


# ------------------------------------------------------------------------------------------------ export


def test_export_writes_the_legacy_columns_as_ascii_json_lines(db: Path, engine: Engine, tmp_path: Path) -> None:
    payload = json.dumps({"malformed_content": hostile.CURSOR_MOVE + hostile.C1_CSI})
    first, second = insert(db, [event(payload=payload, created_at=NOW), event(created_at="garbage")])
    target = tmp_path / "out.jsonl"
    assert lite.export_jsonl(engine, [second, first, 12345], target) == 2
    raw = target.read_bytes()
    assert raw.isascii()
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert [line["id"] for line in lines] == [second, first]
    assert lines[1]["payload_text"] == payload and lines[0]["created_at"] == "garbage"
    assert lines[1]["resolved"] is False
    with pytest.raises(ActionRefused, match="already exists"):
        lite.export_jsonl(engine, [first], target)
