"""Who holds a lock, and taking back the claims of your own lost session, on a real PostgreSQL.

Each run of dlq-tui is its own lock holder (a random token). A session that dies without releasing (an SSH drop,
kill -9) leaves its live locks behind; another session under the same --operator name may take them back, audited;
a different name may not. The holder is read from the claim audit entries (no schema change).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from sqlalchemy import Engine, text

from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
from dlq_tui.db.triage import Operator
from tests.support.factories import add_bare_events

# Session A in its own process: claims, then is killed by SIGKILL before it can release anything.
SESSION_A = """
import os, signal, sys, uuid
from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
op = triage.Operator(sys.argv[2], lock_token=uuid.UUID(sys.argv[3]))
result = triage.claim(make_engine(sys.argv[1]), op, [int(i) for i in sys.argv[4:]])
assert len(result.done) == len(sys.argv) - 4, result
os.kill(os.getpid(), signal.SIGKILL)
"""


def claim_in_a_process_that_is_killed(dsn: str, ids: list[int], operator: str = "alice") -> uuid.UUID:
    """Session A: claims `ids` as `operator` in a process of its own, which is then SIGKILLed (no release)."""
    token = uuid.uuid4()
    argv = [sys.executable, "-c", SESSION_A, dsn, operator, str(token), *map(str, ids)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr  # killed, not a clean exit
    return token


def state(engine: Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM dead_letter_events WHERE id = :i"), {"i": event_id})
        return dict(found.mappings().one())


def test_same_operator_takes_back_the_claims_of_a_killed_session_and_another_name_cannot(
    v7_dsn: str, v7_engine: Engine
) -> None:
    ids = add_bare_events(v7_engine, 3, reason="json_parsing_failed")
    old_token = claim_in_a_process_that_is_killed(v7_dsn, ids[:2])
    assert state(v7_engine, ids[0])["processing_lock"] == old_token  # the killed session released nothing

    session_b = make_engine(v7_dsn)  # a new run of dlq-tui: its own connection and its own token
    try:
        alice_again = Operator("alice")
        # A claim is refused as before, but the reason says the lock is alice's own.
        refused = triage.claim(session_b, alice_again, ids[:1])
        assert refused.skipped[ids[0]].startswith("held by another session of yours (alice) until ")
        assert "1 held by another session of yours (alice)" in triage.describe(refused)

        bob = Operator("bob")
        not_bobs = triage.take_back(session_b, bob, ids[:2])
        assert not_bobs.done == []
        assert not_bobs.skipped == {ids[0]: "held by alice, not by bob", ids[1]: "held by alice, not by bob"}
        assert state(v7_engine, ids[0])["processing_lock"] == old_token

        result = triage.take_back(session_b, alice_again, ids)
        assert result.done == ids[:2]
        assert result.skipped == {ids[2]: "not held by another session: claim it instead"}
        assert (
            triage.describe(result) == "takeback: 2 done, 1 skipped (1 not held by another session: claim it instead)"
        )
    finally:
        session_b.dispose()

    for event_id in ids[:2]:
        after = state(v7_engine, event_id)
        assert after["processing_lock"] == alice_again.lock_token
        ttl = after["lock_expires_at"] - after["updated_at"]
        assert ttl.total_seconds() == alice_again.lock_ttl_minutes * 60
        entry = after["processing_attempts"][-1]
        assert entry["method"] == "operator:takeback"
        assert entry["operator"] == "alice"
        assert entry["changes"]["processing_lock"] == {"old": str(old_token), "new": str(alice_again.lock_token)}
        assert [e["method"] for e in after["processing_attempts"]] == ["operator:claim", "operator:takeback"]
    # Taken back, the events are this session's own: every action works on them, a second take back says so.
    assert triage.classify(v7_engine, alice_again, ids[:1], "malicious").done == ids[:1]
    assert triage.take_back(v7_engine, alice_again, ids[:1]).skipped == {ids[0]: "already yours"}
    assert triage.lock_holders(v7_engine, ids) == {ids[0]: "alice", ids[1]: "alice"}


def test_the_holder_is_read_from_the_claim_that_set_the_current_token(v7_engine: Engine) -> None:
    mine, processors, re_claimed, expired, free = add_bare_events(v7_engine, 5, reason="json_parsing_failed")
    alice, bob = Operator("alice"), Operator("bob")
    triage.claim(v7_engine, alice, [mine, re_claimed])
    triage.claim(v7_engine, alice, [re_claimed])  # extending: the entry names no token, the holder stays alice
    # The processor locks with its own token and writes its own kind of audit entry (no operator claim).
    processor_token = uuid.uuid4()
    with v7_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE dead_letter_events SET processing_lock = :t, lock_expires_at = now() + interval '1 hour',"
                " processing_attempts = CAST(:a AS jsonb) WHERE id = :i"
            ),
            {
                "t": processor_token,
                "i": processors,
                # An old operator claim with another token, a non-object entry: neither makes it an operator's.
                "a": '[{"method": "operator:claim", "operator": "mallory", "changes": {"processing_lock":'
                f' {{"old": null, "new": "{uuid.uuid4()}"}}}}}}, 42, {{"method": "repair_failure"}}]',
            },
        )
    triage.claim(v7_engine, bob, [expired])
    with v7_engine.begin() as conn:
        conn.execute(
            text("UPDATE dead_letter_events SET lock_expires_at = now() - interval '1 minute' WHERE id = :i"),
            {"i": expired},
        )

    assert triage.lock_holders(v7_engine, [mine, processors, re_claimed, expired, free, 999]) == {
        mine: "alice",
        processors: None,
        re_claimed: "alice",
        expired: "bob",
    }
    # Skip reasons name the holder when a claim of ours set the lock; the processor's stays anonymous.
    result = triage.classify(v7_engine, bob, [mine, processors], "malicious")
    assert result.skipped[mine].startswith("held by another session until ") and result.skipped[mine].endswith(
        " (alice)"
    )
    assert result.skipped[processors].startswith("held by another session until ")
    assert not result.skipped[processors].endswith(")")
    assert triage.take_back(v7_engine, alice, [processors]).skipped == {
        processors: "held by the processor (no operator claim in its audit)"
    }


def test_held_claims_are_this_sessions_live_locks_only(v7_engine: Engine) -> None:
    ids = add_bare_events(v7_engine, 4, reason="json_parsing_failed")
    me, other_terminal = Operator("alice"), Operator("alice")
    triage.claim(v7_engine, me, ids[:3])
    triage.claim(v7_engine, other_terminal, ids[3:])
    with v7_engine.begin() as conn:
        conn.execute(
            text("UPDATE dead_letter_events SET lock_expires_at = now() - interval '1 minute' WHERE id = :i"),
            {"i": ids[2]},
        )
    assert triage.held_claims(v7_engine, me) == ids[:2]
    assert triage.held_claims(v7_engine, other_terminal) == ids[3:]
    assert triage.release(v7_engine, me, triage.held_claims(v7_engine, me)).done == ids[:2]
    assert triage.held_claims(v7_engine, me) == []
