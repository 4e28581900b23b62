"""Forensic search against a real PostgreSQL: what matches, in key order, page by page, hostile values bound."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from dlq_tui.db import search as s
from dlq_tui.db.models import EventFilter
from dlq_tui.search.query import QueryError, parse_query
from tests.support.factories import db_now, insert_events

MIN = timedelta(minutes=1)


def _run(engine: Engine, query: str, **kwargs: Any) -> list[int]:
    with engine.connect() as conn:
        return [m.row.id for m in s.scan(conn, parse_query(query), **kwargs).matches]


@pytest.fixture
def cowrie(v7_engine: Engine) -> dict[str, int]:
    """A few Cowrie-shaped dead letters: plain objects, nested ones, malformed content that parses or repairs."""
    events = {
        "download": {
            "payload": {
                "eventid": "cowrie.session.file_download",
                "src_ip": "198.51.100.7",
                "session": "abcd1234",
                "url": "http://203.0.113.9/x.sh",
            },
            "priority": 2,
        },
        "command": {
            "payload": {"eventid": "cowrie.command.input", "src_ip": "198.51.100.7", "input": "WGET http://a/b"},
            "priority": 5,
            "classification": "malicious",
        },
        "nested": {"payload": [1, {"nested": {"eventid": "cowrie.login.failed", "src_ip": "192.0.2.1"}}]},
        "malformed_parses": {
            "payload": {"malformed_content": json.dumps({"eventid": "cowrie.session.connect", "src_ip": "10.9.8.7"})}
        },
        "malformed_repairs": {
            # a truncated line: the repair closes it
            "payload": {
                "malformed_content": '{"eventid": "cowrie.session.connect", "src_ip": "10.1.1.1", '
                '"session": "deadbeef01", "timestamp": "2024-03-01T12:00:00.000000Z", "sensor": "s1"'
            }
        },
        "resolved": {"payload": {"src_ip": "198.51.100.7"}, "resolved": True},
        "meta": {"payload_text": '{"note": "100% sure_thing \\\\ \'quoted\' x"}', "reason": "file_type_mismatch"},
    }
    with v7_engine.begin() as conn:
        now = db_now(conn)
        rows = [{**spec, "age": (len(events) - i) * MIN} for i, spec in enumerate(events.values())]
        ids = insert_events(conn, rows, now=now)
    return dict(zip(events, ids, strict=True))


def test_free_text_is_a_case_insensitive_substring_of_the_payload(v7_engine: Engine, cowrie: dict[str, int]) -> None:
    assert set(_run(v7_engine, "wget")) == {cowrie["command"]}
    assert set(_run(v7_engine, "198.51.100.7")) == {cowrie["download"], cowrie["command"]}  # not the resolved one
    assert set(_run(v7_engine, "198.51.100.7 resolved")) == {cowrie["download"], cowrie["command"], cowrie["resolved"]}
    assert set(_run(v7_engine, "198.51.100.7 session")) == {cowrie["download"]}  # terms AND


def test_field_terms_match_keys_at_any_depth_and_inside_malformed_content(
    v7_engine: Engine, cowrie: dict[str, int]
) -> None:
    assert set(_run(v7_engine, "src_ip:192.0.2.1")) == {cowrie["nested"]}
    assert set(_run(v7_engine, "src_ip:10.9.8.7")) == {cowrie["malformed_parses"]}
    assert set(_run(v7_engine, "src_ip:10.1.1.1")) == {cowrie["malformed_repairs"]}
    assert set(_run(v7_engine, "session:deadbeef01")) == {cowrie["malformed_repairs"]}
    assert set(_run(v7_engine, "input:wget")) == {cowrie["command"]}
    assert set(_run(v7_engine, "eventid:cowrie.session.file_download")) == {cowrie["download"]}
    assert set(_run(v7_engine, "nested.eventid:login")) == {cowrie["nested"]}
    # The value is the key's own: src_ip holding "wget" matches nothing although both words are in the payload.
    assert _run(v7_engine, "src_ip:wget") == []
    assert set(_run(v7_engine, "session:")) == {cowrie["download"], cowrie["malformed_repairs"]}


def test_filters_combine_with_the_search(v7_engine: Engine, cowrie: dict[str, int]) -> None:
    assert _run(v7_engine, "198.51.100.7 priority<=2") == [cowrie["download"]]
    assert _run(v7_engine, "src_ip:198.51.100.7 class:malicious") == [cowrie["command"]]
    assert _run(v7_engine, "reason:file_type_mismatch") == [cowrie["meta"]]
    assert _run(v7_engine, "198.51.100.7 locked") == []


@pytest.mark.parametrize(
    "value",
    [
        "%",
        "_",
        "\\",
        "'",
        '"',
        "'; DROP TABLE dead_letter_events; --",
        "%' OR '1'='1",
        "$1",
        ":id",
        "%(x)s",
        "x" * 10_000,
    ],
)
def test_hostile_values_are_bound_literally(v7_engine: Engine, cowrie: dict[str, int], value: str) -> None:
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    with v7_engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT id, payload::text FROM dead_letter_events WHERE NOT resolved").all()
    # Exactly the payloads that hold the characters literally: % and _ are no wildcards, quotes end nothing.
    holding = {event_id for event_id, payload in stored if value.lower() in payload.lower()}
    assert set(_run(v7_engine, quoted)) == holding
    in_note = [cowrie["meta"]] if value in "100% sure_thing \\ 'quoted' x" else []
    assert _run(v7_engine, f"note:{quoted}") == in_note
    with v7_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM dead_letter_events").scalar() == len(cowrie)


def test_a_nul_is_refused_before_any_sql() -> None:
    with pytest.raises(QueryError, match="NUL"):
        parse_query("abc\x00")


def test_pages_follow_the_key_order_and_continue_from_the_cursor(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        now = db_now(conn)
        rows = [
            {"payload": {"input": f"needle {i}" if i % 3 == 0 else f"hay {i}"}, "priority": 1 + i % 4, "age": i * MIN}
            for i in range(60)
        ]
        insert_events(conn, rows, now=now)
    query = parse_query("needle")
    with v7_engine.connect() as conn:
        everything = [m.row for m in s.scan(conn, query, limit=1000).matches]
        assert len(everything) == 20
        assert [r.cursor for r in everything] == sorted(
            (r.cursor for r in everything), key=lambda c: (c.priority, c.created_at, c.id)
        )
        first = s.scan(conn, query, limit=7)
        second = s.scan(conn, query, after=first.next_cursor, limit=7)
        back = s.scan(conn, query, before=second.matches[0].row.cursor, limit=7)
    assert [m.row.id for m in first.matches] == [r.id for r in everything[:7]]
    assert [m.row.id for m in second.matches] == [r.id for r in everything[7:14]]
    assert [m.row.id for m in back.matches] == [r.id for r in everything[:7]]
    assert "needle" in first.matches[0].snippet


def test_a_scan_walks_in_chunks_reporting_progress_and_stops_when_asked(
    v7_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s, "CHUNK_START_ROWS", 10)
    monkeypatch.setattr(s, "CHUNK_MIN_ROWS", 10)
    monkeypatch.setattr(s, "CHUNK_MAX_ROWS", 10)
    with v7_engine.begin() as conn:
        insert_events(conn, [{"payload": {"n": i, "x": "rare" if i == 95 else "no"}} for i in range(100)])
        conn.exec_driver_sql("ANALYZE dead_letter_events")
    seen: list[s.ScanProgress] = []
    with v7_engine.connect() as conn:
        page = s.scan(conn, parse_query("rare"), on_progress=seen.append)
        assert len(page.matches) == 1 and page.next_cursor is None
        assert [p.scanned for p in seen[:3]] == [10, 20, 30]
        assert seen[-1].done and seen[-1].percent == 100 and seen[-1].matches == 1
        assert all(p.percent < 100 for p in seen[:-1])
        counted = s.count_matches(conn, parse_query("x:no"))
        assert counted.matches == 99 and counted.done
        blocks: list[s.ScanProgress] = []
        in_table_order = s.count_in_table_order(conn, parse_query("x:no"), blocks=1, on_progress=blocks.append)
        assert in_table_order.matches == 99 and in_table_order.done and in_table_order.percent == 100
        assert len(blocks) > 1 and all(p.percent < 100 for p in blocks[:-1])
        assert s.count_in_table_order(conn, parse_query('"rare"')).matches == 1
        calls: list[int] = []
        with pytest.raises(s.SearchCancelled):
            s.scan(conn, parse_query("rare"), stop=lambda: len(calls) > 2 or bool(calls.append(1)))


def test_field_narrowing_never_loses_a_value_json_escaped(v7_engine: Engine) -> None:
    """The server narrows on verbatim runs only: a value stored with escapes (\\/, \\u00e9, \\") is still found."""
    with v7_engine.begin() as conn:
        (event_id,) = insert_events(conn, [{"payload_text": '{"url": "http:\\/\\/x.example\\/caf\\u00e9 \\"q\\""}'}])
    assert _run(v7_engine, 'url:"http://x.example/café \\"q\\""') == [event_id]


def test_filter_only_queries_list_the_filtered_view(v7_engine: Engine, cowrie: dict[str, int]) -> None:
    with v7_engine.connect() as conn:
        page = s.scan(conn, parse_query("class:malicious"))
    assert [m.row.id for m in page.matches] == [cowrie["command"]]
    assert EventFilter(classification="malicious") == parse_query("class:malicious").filter
