"""Jump to any event id: the narrowest view that lists it, in the current order."""

from __future__ import annotations

from sqlalchemy import Engine

from dlq_tui.db import queries as q
from dlq_tui.db.models import EventFilter
from tests.support.factories import insert_event


def test_view_showing_widens_only_as_far_as_needed(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        pending = insert_event(conn, reason="json_parsing_failed", priority=2)
        other = insert_event(conn, reason="payload_not_dict", priority=2)
        resolved = insert_event(conn, reason="json_parsing_failed", resolved=True)
        resolved_other = insert_event(conn, reason="unknown", resolved=True)
    flt = EventFilter(reason="json_parsing_failed", order="newest")
    with v7_engine.connect() as conn:
        assert q.view_showing(conn, flt, pending) == flt
        assert q.view_showing(conn, flt, resolved) == EventFilter(
            reason="json_parsing_failed", include_resolved=True, order="newest"
        )
        assert q.view_showing(conn, flt, other) == EventFilter(order="newest")
        assert q.view_showing(conn, flt, resolved_other) == EventFilter(include_resolved=True, order="newest")
        assert q.view_showing(conn, flt, 10_000_000) is None
        found = q.locate_event(conn, flt, resolved_other)
        assert found is not None and found[1].rows[0].id == resolved_other
        assert q.locate_event(conn, flt, 10_000_000) is None
