"""Forensic search: first page of matches for a common and a rare term, and the full scan vs the naive query.

    python -m bench.search --rows 1000000 [--pgdata DIR] [--repeats 3]

The naive query is `SELECT count(*) FROM dead_letter_events WHERE NOT resolved AND payload::text ILIKE '%term%'`
(the same rows the search walks: pending events); it runs once with the server's default parallel workers and
once with max_parallel_workers_per_gather = 0 (one core, like the search's keyset chunks). The search's full scan
is dlq_tui.db.search.count_in_table_order (heap-block ranges, as the app's counter runs it); the key-order walk
(count_matches, what a page of a rare term waits for) is timed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench import seed
from bench.server import open_server
from dlq_tui.db.connect import make_engine
from dlq_tui.db.search import count_in_table_order, count_matches, scan
from dlq_tui.search.query import parse_query

# From the seed's generator (bench/seed.py): a quarter of the rows hold "wget http://198.51.100.<g % 255>/x.sh",
# another quarter "url": "http://203.0.113.9/<g>". "198.51.100.3" matches g % 255 in {3, 30..39}: ~1.1 % of rows;
# "113.9/99999" matches g in {99999, 999990..999999} among a quarter: ~3 rows at 1M (0.0003 %), and
# "113.9/9999" ~28 rows at 1M (0.003 %): the two rare terms bracket 0.001 %.
TERMS = {"common (~1 %)": "198.51.100.3", "rare (~0.003 %)": "113.9/9999", "rarest (~0.0003 %)": "113.9/99999"}


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _timed(fn: Any, repeats: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return _median(samples), result


def naive_count(engine: Engine, term: str, *, parallel: bool) -> int:
    with engine.connect() as conn:
        if not parallel:
            conn.exec_driver_sql("SET max_parallel_workers_per_gather = 0")
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM dead_letter_events WHERE NOT resolved AND payload::text ILIKE :p ESCAPE '\\'"
                ),
                {"p": f"%{term}%"},
            ).scalar_one()
        )


def measure(engine: Engine, rows: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows}
    with engine.connect() as conn:
        out["table"] = conn.execute(
            text("SELECT pg_size_pretty(pg_total_relation_size('dead_letter_events'))")
        ).scalar_one()
        out["pending"] = conn.execute(text("SELECT count(*) FROM dead_letter_events WHERE NOT resolved")).scalar_one()
    naive_count(engine, "warm the cache", parallel=False)
    for label, term in TERMS.items():
        query = parse_query(f'"{term}"')
        result: dict[str, Any] = {"term": term}
        result["naive_parallel_s"], matches = _timed(lambda t=term: naive_count(engine, t, parallel=True), repeats)
        result["naive_serial_s"], _ = _timed(lambda t=term: naive_count(engine, t, parallel=False), repeats)
        result["matches"] = matches
        result["share_pct"] = round(100 * matches / max(1, out["pending"]), 5)

        def full(q: Any = query) -> int:
            with engine.connect() as conn:
                return count_in_table_order(conn, q).matches

        def key_walk(q: Any = query) -> int:
            with engine.connect() as conn:
                return count_matches(conn, q).matches

        result["search_full_scan_s"], counted = _timed(full, repeats)
        assert counted == matches, (counted, matches)
        result["key_order_walk_s"], walked = _timed(key_walk, 1)
        assert walked == matches, (walked, matches)

        first_match: list[float] = []

        def first_page(q: Any = query, first_match: list[float] = first_match) -> int:
            started = time.perf_counter()
            first_match.clear()

            def seen(progress: Any) -> None:
                if progress.matches and not first_match:
                    first_match.append(time.perf_counter() - started)

            with engine.connect() as conn:
                return len(scan(conn, q, limit=200, on_progress=seen).matches)

        result["first_page_s"], result["first_page_rows"] = _timed(first_page, repeats)
        result["first_match_s"] = first_match[0] if first_match else None
        result["ratio_vs_naive_serial"] = round(result["search_full_scan_s"] / result["naive_serial_s"], 3)
        result["ratio_vs_naive_parallel"] = round(result["search_full_scan_s"] / result["naive_parallel_s"], 3)
        out[label] = result
        print(label, json.dumps(result), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dsn", default=None, help="a server whose role may CREATE DATABASE (default: embedded)")
    p.add_argument("--pgdata", type=Path, default=None, help="keep the embedded server's data (reuse the seed)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    server = open_server(args.dsn, args.pgdata)
    name = f"bench_search_{args.rows}"
    try:
        if args.pgdata is not None and server.exists(name):
            engine = make_engine(server.dsn_for(name), pool_size=4)
        else:
            engine = make_engine(server.create(name), pool_size=4)
            started = time.perf_counter()
            seed.v7(engine, args.rows, progress=lambda m: print(m, flush=True))
            print(f"seeded {args.rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE dead_letter_events")
        results = measure(engine, args.rows, args.repeats)
        results["load_after"] = os.getloadavg()
        results["server"] = server.version()
        if args.out is not None:
            args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        engine.dispose()
    finally:
        if args.pgdata is None:
            server.drop(name)
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
