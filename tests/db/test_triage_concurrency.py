"""Many holders at once, each on its own connection: an event is never held by two of them."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dlq_tui.db import triage
from dlq_tui.db.connect import make_engine
from dlq_tui.db.triage import Operator
from tests.support.factories import add_bare_events

THREADS = 8
EVENTS = 200
ROUNDS = 3
CHUNK = 20  # each thread claims every event, in shuffled chunks, so the statements really interleave

# Row locks and SKIP LOCKED on every supported major (tests/conftest.py).
pytestmark = pytest.mark.pg_versions


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start all workers at the same instant; re-raise the first failure."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = workers[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def claim_all(engine: Engine, op: Operator, ids: list[int], seed: int) -> tuple[list[int], dict[int, str]]:
    """One operator session trying to claim every event, chunk by chunk, in its own random order."""
    order = ids[:]
    random.Random(seed).shuffle(order)
    done: list[int] = []
    skipped: dict[int, str] = {}
    for start in range(0, len(order), CHUNK):
        result = triage.claim(engine, op, order[start : start + CHUNK])
        done += result.done
        skipped.update(result.skipped)
    return done, skipped


@pytest.fixture
def engines(v7_dsn: str) -> Iterator[list[Engine]]:
    """One engine (so one connection of its own) per simulated operator session."""
    made = [make_engine(v7_dsn, pool_size=1) for _ in range(THREADS)]
    for engine in made:  # connect before the race so connection set-up does not serialise the threads
        with engine.connect():
            pass
    yield made
    for engine in made:
        engine.dispose()


def test_concurrent_claims_give_every_event_exactly_one_holder(v7_engine: Engine, engines: list[Engine]) -> None:
    timings = []
    for round_no in range(ROUNDS):
        ids = add_bare_events(v7_engine, EVENTS, reason="json_parsing_failed")
        ops = [Operator(f"op{i}") for i in range(THREADS)]

        started = time.monotonic()
        outcomes = run_together(
            [
                lambda e=e, o=o, ids=ids, s=round_no * 100 + i: claim_all(e, o, ids, s)
                for i, (e, o) in enumerate(zip(engines, ops, strict=True))
            ]
        )
        timings.append(time.monotonic() - started)

        claimed_by: dict[int, list[str]] = {}
        for op, (done, skipped) in zip(ops, outcomes, strict=True):
            for event_id in done:
                claimed_by.setdefault(event_id, []).append(op.name)
            assert set(done).isdisjoint(skipped)
            assert set(done) | set(skipped) == set(ids)  # every id answered, one way or the other
            for reason in skipped.values():
                assert reason.startswith("held by another session until ") or reason == triage.BUSY
        assert sorted(claimed_by) == ids
        assert all(len(holders) == 1 for holders in claimed_by.values()), "an event was claimed twice"
        # Several sessions won some: the race was real, not one thread taking everything.
        assert len({holders[0] for holders in claimed_by.values()}) > 1

        token_of = {op.lock_token: op.name for op in ops}
        with v7_engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, processing_lock, processing_attempts FROM dead_letter_events WHERE id = ANY(:ids)"),
                {"ids": ids},
            ).all()
        for event_id, lock, attempts in rows:
            assert token_of[lock] == claimed_by[event_id][0]
            assert len(attempts) == 1  # exactly one audit entry: losers wrote nothing
            assert attempts[0]["operator"] == claimed_by[event_id][0]
    # Observed claim throughput (printed with -s): attempts per second over all threads.
    print(f"\nclaim rounds: {[f'{t:.2f}s' for t in timings]} for {THREADS} x {EVENTS} claim attempts each")


def legacy_processor_claim(dsn: str, stop: threading.Event, claimed: list[int]) -> None:
    """The existing processor's pattern: batch FOR UPDATE SKIP LOCKED, set its lock, hold the batch a moment."""
    with psycopg.connect(dsn) as conn:
        while not stop.is_set():
            with conn.transaction():
                batch = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM dead_letter_events WHERE NOT resolved"
                        " AND (processing_lock IS NULL OR lock_expires_at < now())"
                        " ORDER BY priority, created_at, id LIMIT 10 FOR UPDATE SKIP LOCKED"
                    )
                ]
                if not batch:
                    return
                conn.execute(
                    "UPDATE dead_letter_events SET processing_lock = %s,"
                    " lock_expires_at = now() + interval '30 minutes' WHERE id = ANY(%s)",
                    (uuid.uuid4(), batch),
                )
                time.sleep(0.005)  # "processing": the rows stay row-locked meanwhile
            claimed.extend(batch)


def test_operators_and_the_processor_never_hold_the_same_event(
    v7_dsn: str, v7_engine: Engine, engines: list[Engine]
) -> None:
    ids = add_bare_events(v7_engine, EVENTS, reason="json_parsing_failed")
    ops = [Operator(f"op{i}") for i in range(4)]
    processor_claimed: list[int] = []
    stop = threading.Event()

    workers: list[Callable[[], Any]] = [
        lambda e=e, o=o, s=i: claim_all(e, o, ids, s)[0] for i, (e, o) in enumerate(zip(engines[:4], ops, strict=True))
    ]
    workers.append(lambda: legacy_processor_claim(v7_dsn, stop, processor_claimed))
    results = run_together(workers)
    stop.set()

    owners = Counter(processor_claimed)
    for done in results[:-1]:
        owners.update(done)
    assert set(owners) <= set(ids)
    assert all(count == 1 for count in owners.values()), "an event was held by two parties"
    with v7_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, processing_attempts FROM dead_letter_events WHERE id = ANY(:ids)"), {"ids": ids}
        ).all()
    for event_id, attempts in rows:
        operator_entries = [a for a in attempts or [] if a["method"] == "operator:claim"]
        # The processor's events carry no operator entry; each operator's event exactly one.
        assert len(operator_entries) == (0 if event_id in processor_claimed else 1 if event_id in owners else 0)
