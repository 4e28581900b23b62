"""The v7 migration (dlq_tui.migrate.runner.upgrade, the atomic path) on seeded legacy databases.

While it runs, a legacy writer (the Cowrie pipeline: legacy columns only) inserts one row every
20 ms on its own connection; the longest any single INSERT took is how long the pipeline was blocked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Engine, text

from bench.stats import Spread
from dlq_tui.migrate import runner

WRITER_INTERVAL_S = 0.020


@dataclass
class MigrationResult:
    rows: int
    duplicates: int
    total_s: float
    steps: list[tuple[str, str, float, str]]  # name, status, seconds, detail
    writer_ms: Spread  # every concurrent INSERT's latency
    writer_inserts: int
    gaps: tuple[int, int]  # rows left without checksum, without key (duplicates, late writes)
    notes: list[str] = field(default_factory=list)

    @property
    def worst_block_ms(self) -> float:
        return max(self.writer_ms.samples)


class Writer(threading.Thread):
    def __init__(self, dsn: str) -> None:
        super().__init__(name="bench-legacy-writer", daemon=True)
        self.dsn = dsn
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    started = time.perf_counter()
                    conn.execute(
                        "INSERT INTO dead_letter_events (ingest_id, source, source_offset, reason, payload) "
                        "VALUES ('bench-writer', 'bench-writer', %s, 'json_parsing_failed', '{\"n\": 1}')",
                        (n,),
                    )
                    self.latencies.append((time.perf_counter() - started) * 1000)
                    self.stop.wait(WRITER_INTERVAL_S)
        except psycopg.Error as exc:
            self.error = str(exc).splitlines()[0]


def measure_migration(engine: Engine, dsn: str, rows: int, duplicates: int) -> MigrationResult:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))  # the seed's dirty pages are not the migration's cost
    writer = Writer(dsn)
    writer.start()
    time.sleep(0.2)  # a few unblocked inserts first: the baseline latency
    started = time.perf_counter()
    events = [e for e in runner.upgrade(engine) if e.status not in ("pending", "running")]
    total = time.perf_counter() - started
    time.sleep(0.2)
    writer.stop.set()
    writer.join()
    with engine.connect() as conn:
        gaps = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE payload_checksum IS NULL), "
                "count(*) FILTER (WHERE idempotency_key IS NULL) FROM dead_letter_events "
                "WHERE ingest_id IS DISTINCT FROM 'bench-writer'"
            )
        ).one()
    notes = [f"writer error: {writer.error}"] if writer.error else []
    return MigrationResult(
        rows=rows,
        duplicates=duplicates,
        total_s=total,
        steps=[(e.name, e.status, e.duration_s or 0.0, e.detail) for e in events],
        writer_ms=Spread("ms", tuple(writer.latencies) or (0.0,)),
        writer_inserts=len(writer.latencies),
        gaps=(int(gaps[0]), int(gaps[1])),
        notes=notes,
    )
