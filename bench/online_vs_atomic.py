"""Online vs atomic v7 migration on a legacy database, with a live writer inserting every 20 ms.

Usage: python bench/online_vs_atomic.py [ROWS]   (default 1000000)
For each path: a fresh legacy v6 database of ROWS rows (+3 duplicate sources) on an embedded
PostgreSQL, a writer thread inserting one legacy-shaped row every 20 ms on its own connection (each
INSERT's latency measured), then the migration. Prints total time, worst and p99 writer latency, and
whether every row ended with checksum and key. Run it on a quiet machine (the numbers are wall time).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/ package

from sqlalchemy import Engine, text

from bench.migration import Writer
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner
from dlq_tui.migrate.online import online_upgrade
from dlq_tui.migrate.steps import StepEvent
from tests.support import dbstates
from tests.support.pg import start_test_server, stop_test_server


def measure(
    server: object, rows: int, label: str, migrate: Callable[[Engine], Iterator[StepEvent]]
) -> dict[str, object]:
    name = server.create_database()  # type: ignore[attr-defined]
    dsn = server.dsn_for(name)  # type: ignore[attr-defined]
    engine = make_engine(dsn)
    try:
        dbstates.make_legacy_v6(engine, rows)
        with engine.begin() as conn:
            dbstates.add_duplicate_sources(conn, (4, 8, 12))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CHECKPOINT"))
        writer = Writer(dsn)  # the same legacy writer as bench/migration.py: one INSERT every 20 ms
        writer.start()
        time.sleep(0.5)
        started = time.perf_counter()
        try:
            events = [e for e in migrate(engine) if e.status not in ("pending", "running")]
        finally:
            total = time.perf_counter() - started
            writer.stop.set()
            writer.join(10)
        with engine.connect() as conn:
            gaps = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE payload_checksum IS NULL), "
                    "count(*) FILTER (WHERE idempotency_key IS NULL) FROM dead_letter_events"
                )
            ).one()
        lat = sorted(writer.latencies)  # milliseconds
        print(f"\n{label}: {rows:,} legacy rows, {total:.2f} s total")
        for e in events:
            print(f"  {e.number:>2} {e.name:<18} {e.status:<7} {e.duration_s or 0:7.2f} s  {e.detail}")
        result = {
            "path": label,
            "total_s": total,
            "worst_ms": lat[-1],
            "p99_ms": lat[int(len(lat) * 0.99) - 1],
            "inserts": len(lat),
            "null_checksums": gaps[0],
            "null_keys": gaps[1],
        }
        print(
            f"  writer: {len(lat)} inserts, worst {result['worst_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms; "
            f"afterwards NULL checksums {gaps[0]}, NULL keys {gaps[1]} (3 are duplicate sources)"
        )
        return result
    finally:
        engine.dispose()
        server.drop_database(name)  # type: ignore[attr-defined]


def main(rows: int) -> None:
    server = start_test_server()
    try:
        results = [
            measure(server, rows, "atomic", lambda e: runner.upgrade(e)),
            measure(server, rows, "online", lambda e: online_upgrade(e)),
        ]
    finally:
        stop_test_server(server)
    print("\n| path | total | worst writer INSERT | p99 INSERT | inserts during run |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['path']} | {r['total_s']:.1f} s | {r['worst_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['inserts']} |"
        )
    print(f"\nonline / atomic total: {results[1]['total_s'] / results[0]['total_s']:.2f}x")  # type: ignore[operator]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
