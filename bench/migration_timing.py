"""Wall time of `upgrade()` on legacy v6 databases of 10k and 1M rows, on an embedded PostgreSQL.

Usage: python bench/migration_timing.py [--no-duplicates] [ROWS ...]   (default: 10000 1000000)
Prints each step's duration as the step log reports it, and the total (every checksum and key filled).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/ package

from sqlalchemy import text

from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner
from tests.support import dbstates
from tests.support.pg import start_test_server, stop_test_server


def main(sizes: list[int], duplicates: bool) -> None:
    server = start_test_server()
    try:
        for rows in sizes:
            name = server.create_database()
            engine = make_engine(server.dsn_for(name))
            dbstates.make_legacy_v6(engine, rows)
            if duplicates:  # a few duplicate sources, as real databases have
                with engine.begin() as conn:
                    dbstates.add_duplicate_sources(conn, (4, 8, 12))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("CHECKPOINT"))
            started = time.perf_counter()
            events = [e for e in runner.upgrade(engine) if e.status not in ("pending", "running")]
            total = time.perf_counter() - started
            with engine.connect() as conn:
                gaps = conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE payload_checksum IS NULL), count(*) FILTER "
                        "(WHERE idempotency_key IS NULL) FROM dead_letter_events"
                    )
                ).one()
            label = f"{rows:,} legacy rows" + (" (+3 duplicate sources)" if duplicates else "")
            print(f"\n{label}: {total:.2f} s total; NULL checksums {gaps[0]}, NULL keys {gaps[1]}")
            for e in events:
                print(f"  {e.number:>2} {e.name:<18} {e.status:<7} {e.duration_s or 0:7.2f} s  {e.detail}")
            engine.dispose()
            server.drop_database(name)
    finally:
        stop_test_server(server)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-duplicates"]
    main([int(a) for a in args] or [10_000, 1_000_000], duplicates="--no-duplicates" not in sys.argv)
