"""The per-source view's data: pending events grouped by source file, and resolving one file for re-ingest."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dlq_tui.db.connect import make_engine
from dlq_tui.db.sources import (
    REINGEST_METHOD,
    fetch_sources,
    resolve_for_reingest,
    source_selection,
)
from dlq_tui.db.triage import RESOLUTION_METHODS, ActionRefused, Operator
from tests.support.factories import db_now, insert_event, insert_events

A = "/var/log/cowrie/cowrie.json.2024-03-01"
B = "/var/log/cowrie/cowrie.json.2024-03-02"


def overview(engine: Engine, **kwargs: Any) -> Any:
    with engine.connect() as conn:
        return fetch_sources(conn, **kwargs)


def selection(engine: Engine, source: str | None, mine: uuid.UUID | None = None) -> Any:
    with engine.connect() as conn:
        return source_selection(conn, source, mine=mine)


def row(engine: Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM dead_letter_events WHERE id = :i"), {"i": event_id})
        return dict(found.mappings().one())


def test_pending_grouped_by_source_biggest_first(v7_engine: Engine) -> None:
    op = Operator("tester")
    with v7_engine.begin() as conn:
        now = db_now(conn)
        insert_events(
            conn,
            [
                *({"source": A, "age": timedelta(hours=h)} for h in (1, 2, 30)),
                *({"source": A, "reason": "file_type_mismatch", "age": timedelta(hours=h)} for h in (3, 4)),
                {"source": A, "lock": "held"},  # another session's live lock
                {"source": A, "lock": "expired"},  # free again: not counted as held
                {"source": A, "processing_lock": op.lock_token, "lock_expires_at": now + timedelta(hours=1)},  # mine
                {"source": A, "resolved": True, "age": timedelta(days=9)},  # resolved: not in the view
                {"source": B, "reason": "payload_not_dict", "age": timedelta(minutes=5)},
                {"source": B, "reason": "payload_not_dict", "age": timedelta(minutes=6)},
                {"source": None, "reason": "unknown"},
            ],
            now=now,
        )
    got = overview(v7_engine, mine=op.lock_token)
    assert [s.source for s in got.sources] == [A, B, None]
    a, b, none = got.sources
    assert (a.pending, a.held_by_others, a.reason_count) == (8, 1, 2)
    assert a.top_reasons == [("json_parsing_failed", 6), ("file_type_mismatch", 2)]
    assert a.oldest == now - timedelta(hours=30) and a.newest == now
    assert (b.pending, b.top_reasons, b.newest) == (2, [("payload_not_dict", 2)], now - timedelta(minutes=5))
    assert (none.pending, none.top_reasons) == (1, [("unknown", 1)])
    assert (got.total_sources, got.total_pending, got.cut) == (3, 11, False)
    # Without a token of our own, our lock is someone else's as well.
    assert overview(v7_engine).sources[0].held_by_others == 2


def test_top_reasons_and_sources_are_bounded(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        reasons = ["r1"] * 5 + ["r2"] * 4 + ["r3"] * 3 + ["r4"] * 2 + ["r5"]
        insert_events(conn, [{"source": A, "reason": r} for r in reasons])
        insert_events(conn, [{"source": f"/logs/{i}", "reason": "x"} for i in range(4)])
    got = overview(v7_engine, limit=2)
    assert len(got.sources) == 2 and got.cut
    assert (got.total_sources, got.total_pending) == (5, 19)
    first = got.sources[0]
    assert first.reason_count == 5
    assert first.top_reasons == [("r1", 5), ("r2", 4), ("r3", 3)]
    assert got.sources[1].source == "/logs/0"  # equal counts: by source


def test_empty_queue_has_no_sources(v7_engine: Engine) -> None:
    got = overview(v7_engine)
    assert (got.sources, got.total_sources, got.total_pending, got.cut) == ([], 0, 0, False)
    assert got.db_now is not None


def test_resolve_for_reingest_resolves_exactly_the_set_shown(v7_engine: Engine) -> None:
    op = Operator("tester")
    with v7_engine.begin() as conn:
        mine = insert_event(conn, source=A)
        free = insert_events(conn, [{"source": A}] * 3)
        held = insert_event(conn, source=A, lock="held")
        done_already = insert_event(conn, source=A, resolved=True)
        other = insert_event(conn, source=B)
    picked = selection(v7_engine, A, op.lock_token)
    assert picked.ids == sorted([mine, *free, held]) and picked.held_by_others == 1
    with v7_engine.begin() as conn:
        late = insert_event(conn, source=A)  # arrives after the operator was asked: not in the set

    result = resolve_for_reingest(v7_engine, op, picked)
    assert sorted(result.done) == sorted([mine, *free])
    assert set(result.skipped) == {held} and result.skipped[held].startswith("held by another session until")
    for event_id in (mine, *free):
        r = row(v7_engine, event_id)
        assert r["resolved"] and r["resolved_at"] is not None and r["resolution_method"] == REINGEST_METHOD
        entries = r["processing_attempts"]
        assert len(entries) == 1  # one audit entry per event
        assert entries[0]["method"] == "operator:resolve" and entries[0]["operator"] == "tester"
        assert entries[0]["changes"]["resolution_method"] == {"old": None, "new": REINGEST_METHOD}
    for event_id in (held, late, other):
        assert not row(v7_engine, event_id)["resolved"]
    assert row(v7_engine, done_already)["processing_attempts"] is None  # not in the set: untouched
    assert REINGEST_METHOD in RESOLUTION_METHODS


def test_source_is_matched_exactly_and_no_source_is_its_own_group(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        like = insert_event(conn, source="/logs/a%_")
        plain_a = insert_event(conn, source="/logs/abc")
        empty = insert_event(conn, source="")
        nulls = insert_events(conn, [{"source": None}] * 2)
    assert selection(v7_engine, "/logs/a%_").ids == [like]  # no LIKE: % and _ are just characters
    assert selection(v7_engine, "/logs/abc").ids == [plain_a]
    assert selection(v7_engine, None).ids == nulls
    assert selection(v7_engine, "").ids == [empty]
    assert {s.source: s.pending for s in overview(v7_engine).sources} == {
        None: 2,
        "/logs/a%_": 1,
        "/logs/abc": 1,
        "": 1,
    }


def test_a_row_locked_by_another_transaction_is_skipped_without_waiting(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        ids = insert_events(conn, [{"source": A}] * 3)
    picked = selection(v7_engine, A)
    holder = v7_engine.connect()
    try:
        holder.begin()
        holder.execute(text("SELECT 1 FROM dead_letter_events WHERE id = :i FOR UPDATE"), {"i": ids[1]})
        finished = threading.Event()
        outcome: dict[str, Any] = {}

        def act() -> None:
            outcome["result"] = resolve_for_reingest(v7_engine, Operator("tester"), picked)
            finished.set()

        threading.Thread(target=act, daemon=True).start()
        assert finished.wait(10), "the resolve waited on a row lock"
        assert outcome["result"].done == [ids[0], ids[2]]
        assert outcome["result"].skipped == {ids[1]: "busy, try again"}
    finally:
        holder.rollback()
        holder.close()


def test_read_only_session_changes_nothing(v7_dsn: str, v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        insert_events(conn, [{"source": A}] * 2)
    read_only = make_engine(v7_dsn, read_only=True)
    try:
        picked = selection(read_only, A)
        assert len(picked.ids) == 2
        with pytest.raises(ActionRefused, match="read-only"):
            resolve_for_reingest(read_only, Operator("tester"), picked)
    finally:
        read_only.dispose()
    assert overview(v7_engine).sources[0].pending == 2
