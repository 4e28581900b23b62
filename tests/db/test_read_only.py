"""Read-only mode and roles without UPDATE: the database itself refuses, and the operator gets one clear line."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Engine, text

from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
from dlq_tui.db.triage import ActionRefused, Operator
from tests.support import pg
from tests.support.factories import add_bare_events

PASSWORD = "s3cret-Pa55"


def snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM dead_letter_events ORDER BY id"))]


WRITES = {
    "claim": lambda e, op, ids: triage.claim(e, op, ids),
    "release": lambda e, op, ids: triage.release(e, op, ids),
    "classify": lambda e, op, ids: triage.classify(e, op, ids, "malicious"),
    "prioritize": lambda e, op, ids: triage.set_priority(e, op, ids, 1),
    "resolve": lambda e, op, ids: triage.resolve(e, op, ids, "operator_discarded", "n"),
    "reopen": lambda e, op, ids: triage.reopen(e, op, ids),
    "requeue": lambda e, op, ids: triage.requeue(e, op, ids),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_read_only_session_refuses_every_write_at_the_database(v7_dsn: str, v7_engine: Engine, name: str) -> None:
    ids = add_bare_events(v7_engine, 3)
    with v7_engine.begin() as conn:  # make every action applicable, so only read-only mode can stop it
        conn.execute(text("UPDATE dead_letter_events SET resolved = (id = :i) WHERE true"), {"i": ids[0]})
    before = snapshot(v7_engine)
    read_only = make_engine(v7_dsn, read_only=True)
    try:
        with read_only.connect() as conn:  # the session itself is read-only, not just our code path
            assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        with pytest.raises(ActionRefused) as refused:
            WRITES[name](read_only, Operator("alice"), ids)
    finally:
        read_only.dispose()
    assert str(refused.value) == (
        "not done: the database session is read-only (cannot execute UPDATE in a read-only transaction);"
        " nothing was changed"
    )
    assert snapshot(v7_engine) == before


def test_read_only_session_can_still_export(v7_dsn: str, v7_engine: Engine, tmp_path: Path) -> None:
    ids = add_bare_events(v7_engine, 2)
    read_only = make_engine(v7_dsn, read_only=True)
    try:
        assert triage.export_jsonl(read_only, ids, tmp_path / "e.jsonl") == 2
    finally:
        read_only.dispose()


@pytest.fixture
def select_only_dsn(pg_server: pg.TestServer, v7_dsn: str) -> Iterator[str]:
    """A login role that may read the events but not change them (with a password, to prove it never leaks)."""
    role = f"viewer_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    owner = make_engine(v7_dsn)
    with owner.begin() as conn:
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    yield make_conninfo(v7_dsn, user=role, password=PASSWORD)
    with owner.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
    owner.dispose()
    with pg_server.admin() as admin:
        admin.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("name", ["claim", "classify", "resolve"])
def test_role_without_update_gets_a_clear_message(
    select_only_dsn: str, v7_engine: Engine, name: str, tmp_path: Path
) -> None:
    ids = add_bare_events(v7_engine, 2)
    before = snapshot(v7_engine)
    viewer = make_engine(select_only_dsn)
    try:
        with pytest.raises(ActionRefused) as refused:
            WRITES[name](viewer, Operator("carol"), ids)
        assert triage.export_jsonl(viewer, ids, tmp_path / "ok.jsonl") == 2  # reading is still allowed
    finally:
        viewer.dispose()
    message = str(refused.value)
    assert message == "your database role may not change events: permission denied on dead_letter_events"
    assert PASSWORD not in message
    assert snapshot(v7_engine) == before


def test_role_without_select_cannot_export_and_is_told_so(
    select_only_dsn: str, v7_engine: Engine, tmp_path: Path
) -> None:
    ids = add_bare_events(v7_engine, 1)
    role = conninfo_to_dict(select_only_dsn)["user"]
    with v7_engine.begin() as conn:
        conn.execute(text(f"REVOKE SELECT ON dead_letter_events FROM {role}"))
    viewer = make_engine(select_only_dsn)
    try:
        with pytest.raises(ActionRefused) as refused:
            triage.export_jsonl(viewer, ids, tmp_path / "no.jsonl")
    finally:
        viewer.dispose()
    assert str(refused.value) == (
        "not exported: your database role may not read events: permission denied on dead_letter_events"
    )
    assert list(tmp_path.iterdir()) == []
