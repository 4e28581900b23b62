"""Claim + classify + resolve throughput with several operators working the same queue at once.

Each operator is a thread with its own Operator (own lock token) and does what a person at the
events screen does: fetch the first page of free pending events, claim a batch of them, classify
what it got, resolve it. Operators race for the same rows on purpose: claims of rows another
operator took first come back skipped, which is the contention a team really produces.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bench.stats import Spread
from dlq_tui.db import queries, triage
from dlq_tui.db.models import EventFilter
from dlq_tui.db.triage import Operator

BATCH = 20


@dataclass
class TriageResults:
    operators: int
    seconds: float
    resolved: int
    claim_skipped: int
    cycle_ms: Spread  # one claim + classify + resolve round trip of one batch
    errors: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.resolved / self.seconds if self.seconds else 0.0


def measure_triage(engine: Engine, *, operators: int = 4, seconds: float = 10.0) -> TriageResults:
    lock = threading.Lock()
    cycles: list[float] = []
    totals = {"resolved": 0, "skipped": 0}
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds
    free = EventFilter(lock="free")

    def work(n: int) -> None:
        op = Operator(f"bench-operator-{n}")
        while time.perf_counter() < stop_at:
            try:
                with engine.connect() as conn:
                    page = queries.fetch_page(conn, free, limit=BATCH * 2)
                    conn.rollback()
                ids = [row.id for row in page.rows]
                # Spread the operators over the page a little, as people pick different rows.
                ids = ids[(n % 2) * BATCH :][:BATCH] or ids[:BATCH]
                if not ids:
                    return
                started = time.perf_counter()
                claimed = triage.claim(engine, op, ids)
                if claimed.done:
                    triage.classify(engine, op, claimed.done, "format_error")
                    resolved = triage.resolve(engine, op, claimed.done, "operator_fixed_upstream")
                else:
                    resolved = None
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    cycles.append(elapsed)
                    totals["skipped"] += len(claimed.skipped)
                    totals["resolved"] += len(resolved.done) if resolved else 0
            except triage.ActionRefused as exc:  # "busy, try again" under contention is allowed
                with lock:
                    errors.append(str(exc))

    threads = [threading.Thread(target=work, args=(n,), name=f"bench-op-{n}") for n in range(operators)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return TriageResults(
        operators=operators,
        seconds=elapsed,
        resolved=totals["resolved"],
        claim_skipped=totals["skipped"],
        cycle_ms=Spread("ms", tuple(cycles) or (0.0,)),
        errors=errors,
    )
