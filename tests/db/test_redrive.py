"""Redrive into the pipeline's raw_events on a real PostgreSQL: the row the pipeline would write, once, or nothing."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import Connection, Engine, text

from dlq_tui.db import redrive as R
from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
from dlq_tui.db.queries import fetch_recent_runs
from dlq_tui.db.triage import BUSY, Operator
from dlq_tui.demo import create_raw_events
from tests.support import pg
from tests.support import repair_corpus as C
from tests.support.factories import insert_event

SOURCE = "/var/log/cowrie/cowrie.json.2024-03-01"
INODE = "1837462"

VALID = C.line(C.LOGIN_FAILED)
REPAIRED = C.cut_after(C.line(C.COMMAND_SESSION_FIRST), 'history -c",')  # cut after a comma: mechanical fix
REFUSED = C.cut_after(C.line(C.LOGIN_FAILED), '"session": "3f9a0c')  # the session is cut short
AMBIGUOUS = C.cut_after(C.line(C.COMMAND_SESSION_FIRST), "| chp")  # the command itself is cut: a guess


def blake(event: dict[str, Any]) -> str:
    """The pipeline's payload_hash, written out independently of dlq_tui.repair."""
    return hashlib.blake2b(
        json.dumps(event, sort_keys=True, separators=(",", ":")).encode(), digest_size=32
    ).hexdigest()


def dead_letter(conn: Connection, content: str, offset: int | None, **attrs: Any) -> int:
    attrs.setdefault("source", SOURCE)
    attrs.setdefault("ingest_id", f"ingest-{offset}")
    return insert_event(conn, payload=C.payload(content), source_offset=offset, payload_checksum="auto", **attrs)


def loader_row(conn: Connection, offset: int, inode: str | None, *, source: str = SOURCE, event: Any = None) -> int:
    event = event or dict(C.CONNECT, message=f"line {offset}")
    return conn.execute(
        text(
            "INSERT INTO raw_events (ingest_id, source, source_offset, source_inode, payload, payload_hash, risk_score,"
            " session_id, event_type, event_timestamp)"
            " VALUES ('loader', :s, :o, :i, CAST(:p AS json), :h, 10, :sess, :t, :ts) RETURNING id"
        ),
        {
            "s": source,
            "o": offset,
            "i": inode,
            "p": json.dumps(event),
            "h": blake(event),
            "sess": event.get("session"),
            "t": event.get("eventid"),
            "ts": event.get("timestamp"),
        },
    ).scalar_one()


def raw_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text("SELECT *, payload::text AS payload_text FROM raw_events ORDER BY id")
            ).mappings()
        ]


def dlq(engine: Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM dead_letter_events WHERE id = :i"), {"i": event_id}).mappings().one()
        )


def table(engine: Engine, name: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY id"))]


def everything(engine: Engine) -> tuple[Any, ...]:
    return tuple(table(engine, t) for t in ("dead_letter_events", "raw_events", "dlq_processing_metrics"))


@pytest.fixture
def target(v7_engine: Engine) -> Engine:
    """A v7 database with raw_events of the pipeline's current shape."""
    with v7_engine.begin() as conn:
        create_raw_events(conn)
    return v7_engine


ALICE = Operator("alice")


# --- the row the pipeline would write ----------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["varchar", "timestamptz"])
@pytest.mark.parametrize("key", ["constraint", "index"])
def test_redrive_writes_every_column_as_the_pipeline_does(v7_engine: Engine, stamp: str, key: str) -> None:
    with v7_engine.begin() as conn:
        create_raw_events(conn, timestamp=stamp, key=key)
        for offset in (10, 20, 30):
            loader_row(conn, offset, INODE)
        loader_row(conn, 40, "99")  # a minority inode (the file was replaced once)
        for offset in (50, 60, 70, 80):  # the pipeline's own repair writes the path as inode: not an inode
            loader_row(conn, offset, SOURCE)
        event_id = dead_letter(conn, REPAIRED, 1234)
    result = R.redrive(v7_engine, ALICE, [event_id])
    assert result.done == [event_id] and not result.skipped and not result.failed

    row = raw_rows(v7_engine)[-1]
    expected = dict(C.COMMAND_SESSION_FIRST)
    del expected["message"]  # cut away: never invented
    assert json.loads(row["payload_text"]) == expected
    assert row["id"] == result.raw_ids[event_id]
    assert row["payload_hash"] == blake(expected)
    assert row["ingest_id"] == "ingest-1234"
    assert (row["source"], row["source_offset"], row["source_inode"], row["source_generation"]) == (
        SOURCE,
        1234,
        INODE,
        0,
    )
    assert (row["risk_score"], row["quarantined"]) == (50, False)
    assert (row["session_id"], row["event_type"]) == (C.SESSION, "cowrie.command.input")
    if stamp == "varchar":
        assert row["event_timestamp"] == "2024-03-01T02:11:16.000412Z"
    else:
        assert row["event_timestamp"] == datetime(2024, 3, 1, 2, 11, 16, 412, tzinfo=UTC)
    assert abs(row["ingest_at"] - datetime.now(UTC)) < timedelta(minutes=5)

    letter = dlq(v7_engine, event_id)
    assert letter["resolved"] and letter["resolved_at"] is not None
    assert letter["resolution_method"] == "operator_redriven"
    entry = letter["processing_attempts"][-1]
    assert entry["method"] == "operator:redrive" and entry["operator"] == "alice" and entry["success"] is True
    assert entry["raw_events_id"] == row["id"] and entry["raw_events_row"] == "new"
    assert entry["repair_status"] == "repaired"
    assert "removed the comma left dangling at the cut" in entry["repair_steps"]
    assert entry["changes"]["resolution_method"] == {"old": None, "new": "operator_redriven"}
    assert entry["run"] == result.run_id

    with v7_engine.connect() as conn:
        run = fetch_recent_runs(conn, 1)[0]
    assert (run.method, run.session_id) == ("dlq_tui_redrive", result.run_id)
    assert (run.processed, run.repaired, run.failed, run.skipped) == (1, 1, 0, 0)
    assert run.duration_ms >= 0 and run.completed_at >= run.started_at


def test_no_loader_row_means_inode_null_and_the_preview_says_why(target: Engine) -> None:
    with target.begin() as conn:
        event_id = dead_letter(conn, VALID, 7)
    with target.connect() as conn:
        view = R.preview(conn, ALICE, event_id)
    assert view is not None and view.blocked is None and view.destination is not None
    assert view.destination.source_inode is None
    assert "no row of this source in raw_events" in view.destination.inode_basis
    assert view.target.unique_key == "constraint uq_raw_events_source_offset"
    R.redrive(target, ALICE, [event_id])
    assert raw_rows(target)[0]["source_inode"] is None


def test_preview_writes_nothing(target: Engine) -> None:
    with target.begin() as conn:
        loader_row(conn, 1, INODE)
        ids = [dead_letter(conn, text_, n) for n, text_ in enumerate((VALID, REFUSED, AMBIGUOUS), start=100)]
    before = everything(target)
    with target.connect() as conn:
        views = [R.preview(conn, ALICE, i) for i in ids]
    assert everything(target) == before
    valid, refused, ambiguous = views
    assert valid is not None and valid.result.status == "valid" and valid.blocked is None
    assert valid.destination is not None and valid.destination.source_inode == INODE
    assert "most common inode" in valid.destination.inode_basis
    assert refused is not None and refused.blocked is not None and refused.blocked.startswith("not repairable (")
    assert refused.destination is None
    assert ambiguous is not None and ambiguous.needs_decision and ambiguous.destination is not None


# --- idempotency -------------------------------------------------------------------------------------------------


def test_redriving_twice_makes_one_row_even_after_a_reopen(target: Engine) -> None:
    with target.begin() as conn:
        event_id = dead_letter(conn, VALID, 5)  # no loader rows: source_inode NULL, the unique key cannot help
    first = R.redrive(target, ALICE, [event_id])
    raw_id = first.raw_ids[event_id]
    second = R.redrive(target, ALICE, [event_id])
    assert second.done == [] and second.skipped == {event_id: R.ALREADY_REDRIVEN}
    assert second.details[event_id] == f"as raw_events row {raw_id}"

    triage.reopen(target, ALICE, [event_id])
    third = R.redrive(target, Operator("bob"), [event_id])
    assert third.done == [event_id] and third.existing == {event_id} and third.raw_ids[event_id] == raw_id
    assert len(raw_rows(target)) == 1
    assert dlq(target, event_id)["processing_attempts"][-1]["raw_events_row"] == "existing"


def test_two_dead_letters_of_one_line_make_one_row(target: Engine) -> None:
    with target.begin() as conn:
        a = dead_letter(conn, VALID, 9)
        b = insert_event(  # the same line dead-lettered again, later: a different payload text, the same event
            conn,
            payload={"malformed_content": VALID, "parsing_timestamp": "2024-03-02T00:00:00Z", "original_offset": 9},
            source=SOURCE,
            source_offset=9,
        )
        c = dead_letter(conn, VALID, 9, source=SOURCE + ".1")  # another file: another row
    result = R.redrive(target, ALICE, [a, b])
    assert result.done == [a, b] and result.existing == {b} and result.raw_ids[a] == result.raw_ids[b]
    later = R.redrive(target, ALICE, [c])
    assert later.existing == set()
    assert len(raw_rows(target)) == 2


def test_an_existing_row_with_the_same_key(target: Engine) -> None:
    """The loader's own row for the line: the same event is linked (the row is left as it is), another event
    blocks the redrive (the loader's row wins; the dead letter stays for a person)."""
    other = dict(C.LOGIN_SUCCESS)
    with target.begin() as conn:
        same_row = loader_row(conn, 11, INODE, event=dict(C.LOGIN_FAILED))
        other_row = loader_row(conn, 12, INODE, event=other)
        same = dead_letter(conn, VALID, 11)
        taken = dead_letter(conn, VALID, 12)
    before = raw_rows(target)
    taken_before = dlq(target, taken)
    result = R.redrive(target, ALICE, [same, taken])
    assert result.done == [same] and result.existing == {same} and result.raw_ids[same] == same_row
    assert result.skipped == {taken: R.LINE_TAKEN} and result.details[taken] == f"raw_events row {other_row}"
    assert raw_rows(target) == before
    assert dlq(target, taken) == taken_before


def test_on_conflict_backstop_when_the_loader_writes_the_line_meanwhile(target: Engine) -> None:
    with target.begin() as conn:
        loader_row(conn, 1, INODE)
        event_id = dead_letter(conn, VALID, 77)

    def loader_writes(phase: str, conn: Connection) -> None:
        if phase == "looked":  # after our look at the line, before our insert
            with target.begin() as loader:
                loader_row(loader, 77, INODE, event=dict(C.LOGIN_FAILED, message="the loader's own"))

    result = R.redrive(target, ALICE, [event_id], checkpoint=loader_writes)
    assert result.skipped == {event_id: R.LINE_RACED}
    assert not dlq(target, event_id)["resolved"]
    assert [r["source_offset"] for r in raw_rows(target)] == [1, 77]
    assert json.loads(raw_rows(target)[1]["payload_text"])["message"] == "the loader's own"


# --- a batch with everything in it -------------------------------------------------------------------------------


def test_mixed_batch_gives_exact_outcomes_and_leaves_the_rest_untouched(target: Engine) -> None:
    with target.begin() as conn:
        valid = dead_letter(conn, VALID, 1)
        repaired = dead_letter(conn, REPAIRED, 2)
        refused = dead_letter(conn, REFUSED, 3)
        ambiguous = dead_letter(conn, AMBIGUOUS, 4)
        held = dead_letter(conn, VALID, 5, lock="held")
        expired = dead_letter(conn, VALID, 6, lock="expired")
        resolved = dead_letter(conn, VALID, 7, resolved=True, resolution_method="operator_discarded")
        no_source = dead_letter(conn, VALID, 8, source=None)
        junk = insert_event(conn, payload={"malformed_content": "\x00\x1b[2J\xff\xfe binary junk"}, source_offset=9)
    untouched = [refused, ambiguous, held, resolved, no_source, junk]
    before = {i: dlq(target, i) for i in untouched}
    ids = [valid, repaired, refused, ambiguous, held, expired, resolved, no_source, junk, 999_999]

    result = R.redrive(target, ALICE, ids)
    assert result.done == [valid, repaired, expired]
    assert result.skipped == {
        refused: R.NOT_REPAIRABLE,
        ambiguous: R.NEEDS_DECISION,
        held: result.skipped[held],
        resolved: R.ALREADY_RESOLVED,
        no_source: R.NO_SOURCE,
        junk: R.NOT_REPAIRABLE,
        999_999: triage.NO_SUCH_EVENT,
    }
    assert result.skipped[held].startswith("held by another session until ")
    assert "session" in result.details[refused] and "cut short" in result.details[refused]
    assert "last value truncated: input" in result.details[ambiguous]
    assert result.statuses[refused] == "refused" and result.statuses[ambiguous] == "ambiguous"
    assert {i: dlq(target, i) for i in untouched} == before
    assert len(raw_rows(target)) == 3
    with target.connect() as conn:
        run = fetch_recent_runs(conn, 1)[0]
    assert (run.processed, run.repaired, run.failed, run.skipped) == (10, 3, 2, 5)


def test_ambiguous_goes_only_with_the_accepted_event(target: Engine) -> None:
    with target.begin() as conn:
        event_id = dead_letter(conn, AMBIGUOUS, 4)
    with target.connect() as conn:
        view = R.preview(conn, ALICE, event_id)
    assert view is not None and view.needs_decision and view.destination is not None
    wrong = R.redrive(target, ALICE, [event_id], accept_ambiguous={event_id: "0" * 64})
    assert wrong.skipped == {event_id: R.CHANGED_SINCE_PREVIEW}
    right = R.redrive(target, ALICE, [event_id], accept_ambiguous={event_id: view.destination.payload_hash})
    assert right.done == [event_id]
    entry = dlq(target, event_id)["processing_attempts"][-1]
    assert entry["repair_status"] == "ambiguous"
    assert json.loads(raw_rows(target)[0]["payload_text"])["input"] == "echo 'root:Xk29sla' | chp"


def test_one_event_the_database_refuses_does_not_fail_its_batch(target: Engine) -> None:
    with target.begin() as conn:
        conn.execute(text("ALTER TABLE raw_events ALTER COLUMN payload TYPE jsonb USING CAST(payload AS jsonb)"))
        good = dead_letter(conn, VALID, 1)
        nul = dead_letter(conn, C.line(dict(C.LOGIN_FAILED, password="a\x00b")), 2)  # jsonb takes no \u0000
        also_good = dead_letter(conn, REPAIRED, 3)
    result = R.redrive(target, ALICE, [good, nul, also_good])
    assert result.done == [good, also_good]
    assert result.failed == {nul: R.DATABASE_REFUSED}
    assert result.details[nul].startswith("unsupported Unicode escape sequence")
    assert not dlq(target, nul)["resolved"]
    assert len(raw_rows(target)) == 2


def test_dry_run_writes_nothing_and_says_where_each_would_go(target: Engine) -> None:
    with target.begin() as conn:
        loader_row(conn, 1, INODE)
        valid = dead_letter(conn, VALID, 2)
        refused = dead_letter(conn, REFUSED, 3)
    before = everything(target)
    result = R.redrive(target, ALICE, [valid, refused], dry_run=True)
    assert everything(target) == before
    assert result.done == [valid] and result.skipped == {refused: R.NOT_REPAIRABLE}
    dest = result.destinations[valid]
    assert (dest.source, dest.source_offset, dest.source_inode) == (SOURCE, 2, INODE)
    assert (dest.session_id, dest.event_type, dest.event_timestamp) == (
        C.SESSION,
        "cowrie.login.failed",
        datetime(2024, 3, 1, 2, 11, 12, 4211, tzinfo=UTC),
    )
    assert result.summary == "redrive (dry run): 1 would be redriven, 1 would not"


# --- nothing half-done -------------------------------------------------------------------------------------------


def test_a_connection_killed_mid_batch_leaves_nothing_half_done(target: Engine, v7_dsn: str) -> None:
    with target.begin() as conn:
        ids = [
            dead_letter(conn, C.line(dict(C.LOGIN_FAILED, message=f"n{n}")), n) for n in range(triage.BATCH_SIZE + 40)
        ]
    killer = make_engine(v7_dsn)
    batches = []

    def kill_second_batch(phase: str, conn: Connection) -> None:
        if phase != "inserted":
            return
        batches.append(1)
        if len(batches) == 2:  # the second batch has written its raw_events rows but not resolved its letters
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()

    try:
        with pytest.raises(R.RedriveRefused) as refused:
            R.redrive(target, ALICE, ids, checkpoint=kill_second_batch)
    finally:
        killer.dispose()
    assert refused.value.connection_lost
    assert "connection to the database was lost" in str(refused.value)
    partial = refused.value.result
    assert isinstance(partial, R.RedriveResult) and len(partial.done) == triage.BATCH_SIZE
    with target.connect() as conn:
        pairs = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE d.resolved), count(*) FILTER (WHERE r.id IS NOT NULL),"
                " count(*) FILTER (WHERE d.resolved <> (r.id IS NOT NULL))"
                " FROM dead_letter_events d LEFT JOIN raw_events r"
                " ON r.id = CAST(d.processing_attempts -> -1 ->> 'raw_events_id' AS integer)"
            )
        ).one()
        orphans = conn.execute(
            text("SELECT count(*) FROM raw_events WHERE source_offset >= :n"), {"n": triage.BATCH_SIZE}
        ).scalar_one()
    assert tuple(pairs) == (triage.BATCH_SIZE, triage.BATCH_SIZE, 0)
    assert orphans == 0 and len(raw_rows(target)) == triage.BATCH_SIZE


def test_two_operators_at_once_redrive_each_event_once(target: Engine, v7_dsn: str) -> None:
    with target.begin() as conn:
        ids = [dead_letter(conn, C.line(dict(C.LOGIN_FAILED, message=f"n{n}")), n) for n in range(300)]
    engines = [make_engine(v7_dsn, pool_size=1) for _ in range(2)]
    results: list[R.RedriveResult] = []
    barrier = threading.Barrier(2)

    def work(engine: Engine, name: str, order: list[int]) -> None:
        barrier.wait()
        done = R.RedriveResult("redrive")
        for start in range(0, len(order), 20):  # small runs, so that the two really interleave
            part = R.redrive(engine, Operator(name), order[start : start + 20])
            done.done += part.done
            done.skipped.update(part.skipped)
        results.append(done)

    threads = [
        threading.Thread(target=work, args=(engines[0], "alice", ids)),
        threading.Thread(target=work, args=(engines[1], "bob", list(reversed(ids)))),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for engine in engines:
            engine.dispose()
    a, b = results
    assert set(a.done).isdisjoint(b.done) and set(a.done) | set(b.done) == set(ids)
    assert set(a.skipped.values()) | set(b.skipped.values()) <= {BUSY, R.ALREADY_REDRIVEN}
    assert len(raw_rows(target)) == len(ids)
    with target.connect() as conn:
        entries = conn.execute(
            text(
                "SELECT count(*) FROM dead_letter_events d, jsonb_array_elements(d.processing_attempts) e"
                " WHERE e ->> 'method' = 'operator:redrive'"
            )
        ).scalar_one()
    assert entries == len(ids)


# --- no target, no right to write --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "line"),
    [
        (None, "redrive unavailable: there is no raw_events table (the pipeline's event table) in this database"),
        ("ALTER TABLE raw_events DROP COLUMN event_type", "redrive unavailable: raw_events has no column event_type"),
        (
            "ALTER TABLE raw_events DROP CONSTRAINT uq_raw_events_source_offset; DROP INDEX uq_raw_events_source_gen",
            "redrive unavailable: raw_events has no unique key on"
            " (source, source_inode, source_generation, source_offset)",
        ),
        (
            "ALTER TABLE raw_events ALTER COLUMN event_timestamp TYPE bigint USING 0",
            "redrive unavailable: raw_events.event_timestamp is bigint,"
            " not character varying or text or timestamp with time zone",
        ),
        (
            "ALTER TABLE raw_events ADD COLUMN tenant integer NOT NULL",
            "redrive unavailable: raw_events.tenant may not be NULL and has no default:"
            " the pipeline's rows have no such column",
        ),
    ],
    ids=["no table", "no column", "no unique key", "other type", "unknown required column"],
)
def test_without_a_target_redrive_is_unavailable_but_the_preview_works(
    v7_engine: Engine, ddl: str | None, line: str
) -> None:
    with v7_engine.begin() as conn:
        if ddl is not None:
            create_raw_events(conn)
            for statement in ddl.split(";"):
                conn.execute(text(statement))
        event_id = dead_letter(conn, VALID, 1)
    before = table(v7_engine, "dead_letter_events")
    with pytest.raises(R.RedriveRefused) as refused:
        R.redrive(v7_engine, ALICE, [event_id])
    assert str(refused.value) == line
    with pytest.raises(R.RedriveRefused):
        R.redrive(v7_engine, ALICE, [event_id], dry_run=True)
    with v7_engine.connect() as conn:
        view = R.preview(conn, ALICE, event_id)
    assert view is not None and view.result.status == "valid" and view.blocked == line
    assert table(v7_engine, "dead_letter_events") == before
    assert table(v7_engine, "dlq_processing_metrics") == []


def test_a_unique_index_alone_is_a_key(v7_engine: Engine) -> None:
    with v7_engine.begin() as conn:
        create_raw_events(conn, key="index")
    with v7_engine.connect() as conn:
        assert R.inspect_target(conn).unique_key == "index uq_raw_events_source_gen"


def test_read_only_session_writes_nothing(target: Engine, v7_dsn: str) -> None:
    with target.begin() as conn:
        event_id = dead_letter(conn, VALID, 1)
    before = everything(target)
    read_only = make_engine(v7_dsn, read_only=True)
    try:
        with pytest.raises(R.RedriveRefused) as refused:
            R.redrive(read_only, ALICE, [event_id])
        assert str(refused.value) == "not redriven: the database session is read-only: nothing is written"
        assert R.redrive(read_only, ALICE, [event_id], dry_run=True).done == [event_id]  # a dry run may
    finally:
        read_only.dispose()
    assert everything(target) == before


PASSWORD = "s3cret-Pa55"


@pytest.fixture
def limited_role(pg_server: pg.TestServer, v7_dsn: str) -> Iterator[tuple[str, str]]:
    role = f"redriver_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    yield role, make_conninfo(v7_dsn, user=role, password=PASSWORD)
    owner = make_engine(v7_dsn)
    with owner.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
    owner.dispose()
    with pg_server.admin() as admin:
        admin.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize(
    ("grants", "line"),
    [
        ([], "not redriven: your database role may not INSERT into raw_events"),
        (
            ["GRANT INSERT ON raw_events TO {role}"],
            "not redriven: your database role may not use the sequence of raw_events.id",
        ),
        (
            ["GRANT INSERT ON raw_events TO {role}", "GRANT USAGE ON SEQUENCE raw_events_id_seq TO {role}"],
            "not redriven: your database role may not change events: permission denied on dead_letter_events",
        ),
    ],
    ids=["select only", "no sequence", "no update on events"],
)
def test_a_role_without_the_privileges_writes_nothing(
    target: Engine, limited_role: tuple[str, str], grants: list[str], line: str
) -> None:
    role, dsn = limited_role
    with target.begin() as conn:
        event_id = dead_letter(conn, VALID, 1)
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        for grant in grants:
            conn.execute(text(grant.format(role=role)))
    before = everything(target)
    engine = make_engine(dsn)
    try:
        with pytest.raises(R.RedriveRefused) as refused:
            R.redrive(engine, ALICE, [event_id])
        with engine.connect() as conn:
            view = R.preview(conn, ALICE, event_id)
    finally:
        engine.dispose()
    assert str(refused.value) == line and PASSWORD not in str(refused.value)
    assert view is not None and view.blocked == line
    assert everything(target) == before


def test_select_ids_takes_pending_events_of_a_reason_in_screen_order(target: Engine) -> None:
    with target.begin() as conn:
        late = dead_letter(conn, VALID, 1, priority=5)
        first = dead_letter(conn, VALID, 2, priority=1)
        dead_letter(conn, VALID, 3, reason="file_type_mismatch")
        dead_letter(conn, VALID, 4, resolved=True)
    with target.connect() as conn:
        assert R.select_ids(conn, reason="json_parsing_failed") == [first, late]
        assert R.select_ids(conn, reason="json_parsing_failed", limit=1) == [first]


def test_two_sessions_redriving_two_dead_letters_of_one_line_make_one_row(target: Engine, v7_dsn: str) -> None:
    """No loader rows: source_inode is NULL and the unique key cannot stop a second row. Both sessions hold their
    own dead letter when they look at the line; the per-line advisory lock makes the second look after the first
    commit, so it links instead of inserting."""
    with target.begin() as conn:
        a = dead_letter(conn, VALID, 9)
        b = insert_event(
            conn,
            payload={"malformed_content": VALID, "parsing_timestamp": "2024-03-02T00:00:00Z", "original_offset": 9},
            source=SOURCE,
            source_offset=9,
        )
    both_locked = threading.Barrier(2, timeout=30)
    engines = [make_engine(v7_dsn, pool_size=1) for _ in range(2)]
    results: dict[int, R.RedriveResult] = {}

    def work(engine: Engine, event_id: int) -> None:
        def meet(phase: str, conn: Connection) -> None:
            if phase == "locked":
                both_locked.wait()

        results[event_id] = R.redrive(engine, Operator(f"op{event_id}"), [event_id], checkpoint=meet)

    threads = [threading.Thread(target=work, args=(e, i)) for e, i in zip(engines, (a, b), strict=True)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for engine in engines:
            engine.dispose()
    assert results[a].done == [a] and results[b].done == [b]
    assert len(raw_rows(target)) == 1
    assert len(results[a].existing | results[b].existing) == 1
