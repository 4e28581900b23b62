"""The events list's sort orders: keyset pages forward, backward and from an id give exactly the ORDER BY."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from dlq_tui.db import queries as q
from dlq_tui.db.models import SORT_ORDERS, EventFilter
from tests.support.factories import db_now, insert_events


@pytest.fixture
def tied_events(v7_engine: Engine) -> list[dict[str, Any]]:
    """500 events with few distinct times, retry counts and priorities: every order has long runs of ties."""
    with v7_engine.begin() as conn:
        now = db_now(conn)
        specs = [
            {
                "priority": (1, 5, 5, 9)[i % 4],
                "created_at": now - timedelta(minutes=i % 17),
                "retry_count": (0, 0, 3, 7, 12)[i % 5],
                "resolved": i % 9 == 0,
            }
            for i in range(500)
        ]
        for spec, event_id in zip(specs, insert_events(conn, specs, now=now), strict=True):
            spec["id"] = event_id
    return specs


def expected(specs: list[dict[str, Any]], flt: EventFilter) -> list[int]:
    keys = {
        "priority": (lambda s: (s["priority"], s["created_at"], s["id"]), False),
        "newest": (lambda s: (s["created_at"], s["id"]), True),
        "retries": (lambda s: (s["retry_count"], s["created_at"], s["id"]), True),
    }
    key, descending = keys[flt.order]
    kept = [s for s in specs if flt.include_resolved or not s["resolved"]]
    return [s["id"] for s in sorted(kept, key=key, reverse=descending)]


@pytest.mark.parametrize("include_resolved", [False, True], ids=["pending", "all"])
@pytest.mark.parametrize("order", SORT_ORDERS)
def test_every_order_pages_forward_backward_and_from_an_id(
    tied_events: list[dict[str, Any]], v7_engine: Engine, order: str, include_resolved: bool
) -> None:
    flt = EventFilter(include_resolved=include_resolved, order=order)  # type: ignore[arg-type]
    want = expected(tied_events, flt)
    with v7_engine.connect() as conn:
        seen: list[int] = []
        page = q.fetch_page(conn, flt, limit=37)
        pages = [page]
        seen += [r.id for r in page.rows]
        while page.next_cursor is not None:
            page = q.fetch_page(conn, flt, after=page.next_cursor, limit=37)
            pages.append(page)
            seen += [r.id for r in page.rows]
        assert seen == want  # every event once, in the order the ORDER BY promises

        # Backwards from the last page's first row: the pages before it, each in order.
        back: list[int] = []
        cursor = pages[-1].rows[0].cursor
        while True:
            before = q.fetch_page(conn, flt, before=cursor, limit=37)
            back = [r.id for r in before.rows] + back
            if len(before.rows) < 37:
                break
            cursor = before.rows[0].cursor
        assert back + [r.id for r in pages[-1].rows] == want

        for index in (0, 123, len(want) - 1):
            start = q.page_starting_at(conn, flt, want[index], limit=25)
            assert start is not None and [r.id for r in start.rows] == want[index : index + 25]


def test_order_is_not_a_filter() -> None:
    assert EventFilter(order="newest").same_events(EventFilter())
    assert not EventFilter(include_resolved=True).same_events(EventFilter())
