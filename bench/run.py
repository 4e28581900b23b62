"""The benchmark runner: `python -m bench [options]`.

Seeds databases on a throw-away embedded PostgreSQL (or --dsn), measures each item as median and
spread over repeated runs, prints a summary and writes every sample to a JSON file. BENCHMARKS.md
explains the numbers and how they were produced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench import seed
from bench.server import BenchServer, open_server
from dlq_tui.db.connect import make_engine
from dlq_tui.db.dsn import mask_dsn

ALL = ("pages", "health", "triage", "migration", "app", "redrive")


def _sizes(value: str) -> list[int]:
    out = []
    for part in value.split(","):
        part = part.strip().lower().replace("_", "")
        mult = 1_000_000 if part.endswith("m") else 1_000 if part.endswith("k") else 1
        out.append(int(float(part.rstrip("mk")) * mult))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--dsn", help="PostgreSQL server to use (its role needs CREATEDB); default: embedded, temporary")
    p.add_argument("--pgdata", type=Path, help="keep the embedded server's data here and reuse seeded databases")
    p.add_argument("--sizes", type=_sizes, default=[10_000, 1_000_000, 10_000_000], help="N for pages/health")
    p.add_argument("--migration-sizes", type=_sizes, default=[10_000, 1_000_000], help="legacy N for migration")
    p.add_argument("--duplicates", type=int, default=3, help="duplicate sources in the migration's legacy data")
    p.add_argument("--triage-size", type=_sizes, default=[100_000], help="N for the triage throughput run")
    p.add_argument("--triage-seconds", type=float, default=10.0)
    p.add_argument("--redrive-size", type=_sizes, default=[10_000], help="repairable dead letters to redrive")
    p.add_argument("--app-size", type=_sizes, default=[1_000_000], help="N for the app measurements")
    p.add_argument("--app-pages", type=int, default=1000, help="pages to scroll for the app memory measurement")
    p.add_argument("--startup-repeats", type=int, default=5, help="launches of the real app in tmux")
    p.add_argument("--table-keys", type=int, default=200, help="timed pgdn (and down) presses in the events table")
    p.add_argument("--db-prefix", default="bench", help="prefix of the databases the runner creates")
    p.add_argument("--repeats", type=int, default=15, help="timed repetitions of each page/health measurement")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--out", type=Path, default=Path("bench/results.json"), help="where to write every sample")
    p.add_argument(
        "--spec-indexes-only",
        action="store_true",
        help="measure pages without dlq-tui's paging indexes (revision v7_1): the 'before' numbers",
    )
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


class Run:
    def __init__(self, args: argparse.Namespace, server: BenchServer) -> None:
        self.args = args
        self.server = server
        self.results: dict[str, Any] = {"machine": machine(server), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.say: Callable[[str], None] = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))

    # --- databases ------------------------------------------------------------------------------
    def v7_database(self, rows: int) -> tuple[str, Engine]:
        """A seeded v7 database of `rows` rows (reused from --pgdata when it already holds one)."""
        name = f"{self.args.db_prefix}_v7_{rows}"
        if self.args.pgdata is not None and self.server.exists(name):
            dsn = self.server.dsn_for(name)
            engine = make_engine(dsn, pool_size=8)
            with engine.connect() as conn:
                seeded = conn.execute(text("SELECT value FROM schema_state WHERE key = 'bench_seed_rows'")).scalar()
            if seeded == str(rows):
                self.say(f"reusing {name}")
                return dsn, engine
            engine.dispose()
        dsn = self.server.create(name)
        engine = make_engine(dsn, pool_size=8)
        self.say(f"seeding {rows:,} v7 rows")
        report = seed.v7(engine, rows, progress=self.say)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO schema_state (key, value) VALUES ('bench_seed_rows', :n)"), {"n": str(rows)})
        self.results.setdefault("seed", {})[f"v7_{rows}"] = {"phases_s": report.phases, "total_s": report.total_s}
        self.say(f"  seeded in {report.total_s:.1f} s {_phases(report.phases)}; {table_size(engine)}")
        return dsn, engine

    def done_with(self, rows: int, engine: Engine) -> None:
        engine.dispose()
        if self.args.pgdata is None:
            self.server.drop(f"{self.args.db_prefix}_v7_{rows}")

    # --- measurements ---------------------------------------------------------------------------
    def reads(self, rows: int, which: set[str]) -> None:
        from bench.reads import measure_health, measure_health_tiers, measure_insert_cost, measure_pages

        _dsn, engine = self.v7_database(rows)
        try:
            label = f"{rows}" + ("-spec-indexes-only" if self.args.spec_indexes_only else "")
            out = self.results.setdefault("reads", {}).setdefault(label, {"table": table_size(engine)})
            if "pages" in which:
                drop = (lambda: set_paging_indexes(engine, present=False)) if self.args.spec_indexes_only else None
                try:
                    pages = measure_pages(engine, self.args.repeats, before_timing=drop)
                finally:
                    set_paging_indexes(engine, present=True)
                for key in ("first", "deep", "middle", "first_all", "deep_all"):
                    out[f"page_{key}"] = getattr(pages, key).as_dict()
                    self.say(f"  N={rows:,} page {key:<9}: {getattr(pages, key)}")
                out["explain_first"], out["explain_deep"] = pages.explain_first, pages.explain_deep
                out["explain_middle"] = pages.explain_middle
            if "health" in which:
                repeats = max(3, self.args.repeats // 3) if rows >= 5_000_000 else self.args.repeats
                health, figures = measure_health(engine, repeats)
                out["health"], out["health_figures"] = health.as_dict(), figures
                self.say(f"  N={rows:,} health refresh: {health}  {figures}")
                tiers = measure_health_tiers(engine, repeats)
                out["health_tiers"] = {name: spread.as_dict() for name, spread in tiers.items()}
                ratio = tiers["fast"].median / tiers["before"].median
                out["health_tiers"]["fast_over_before"] = ratio
                for name, spread in tiers.items():
                    self.say(f"  N={rows:,} health {name:<8}: {spread}")
                self.say(f"  N={rows:,} fast tier / refresh before the split = {ratio:.3f}")
                costs = measure_insert_cost(engine, batches=max(3, repeats))
                out["insert_1000"] = {name: spread.as_dict() for name, spread in costs.items()}
                for name, spread in costs.items():
                    self.say(f"  N={rows:,} INSERT 1000 rows {name}: {spread}")
        finally:
            self.done_with(rows, engine)

    def triage(self, rows: int) -> None:
        from bench.triage_load import measure_triage

        _dsn, engine = self.v7_database(rows)
        try:
            res = measure_triage(engine, operators=4, seconds=self.args.triage_seconds)
            self.results["triage"] = {
                "rows": rows,
                "operators": res.operators,
                "seconds": res.seconds,
                "resolved": res.resolved,
                "events_per_s": res.events_per_s,
                "claim_skipped": res.claim_skipped,
                "cycle_ms": res.cycle_ms.as_dict(),
                "errors": res.errors[:10],
                "error_count": len(res.errors),
            }
            self.say(
                f"  triage, 4 operators on {rows:,} rows: {res.events_per_s:.0f} events/s resolved "
                f"({res.resolved:,} in {res.seconds:.1f} s); batch of 20 claim+classify+resolve {res.cycle_ms}; "
                f"{res.claim_skipped} claims lost to another operator; {len(res.errors)} refusals"
            )
        finally:
            # Triage changed the data: never reuse this database for read measurements.
            engine.dispose()
            self.server.drop(f"{self.args.db_prefix}_v7_{rows}")

    def migration(self, rows: int, duplicates: int) -> None:
        from bench.migration import measure_migration

        name = f"{self.args.db_prefix}_legacy_{rows}_{duplicates}"
        dsn = self.server.create(name)
        engine = make_engine(dsn)
        try:
            self.say(f"seeding {rows:,} legacy rows (+{duplicates} duplicate sources)")
            report = seed.legacy(engine, rows, duplicates=duplicates, progress=self.say)
            res = measure_migration(engine, dsn, rows, duplicates)
            key = f"{rows}" + (f"+{duplicates}dup" if duplicates else "")
            self.results.setdefault("migration", {})[key] = {
                "seed_s": report.total_s,
                "total_s": res.total_s,
                "steps": res.steps,
                "writer_ms": res.writer_ms.as_dict(),
                "writer_inserts": res.writer_inserts,
                "worst_block_ms": res.worst_block_ms,
                "rows_without_checksum": res.gaps[0],
                "rows_without_key": res.gaps[1],
                "notes": res.notes,
            }
            self.say(
                f"  migration of {rows:,} legacy rows (+{duplicates} dup): {res.total_s:.2f} s; concurrent writer "
                f"worst {res.worst_block_ms:,.0f} ms over {res.writer_inserts} inserts; "
                f"NULL checksum/key {res.gaps[0]}/{res.gaps[1]}"
            )
            for step, status, secs, detail in res.steps:
                if secs >= 0.05:
                    self.say(f"    {step:<18} {status:<7} {secs:6.2f} s  {detail}")
        finally:
            engine.dispose()
            self.server.drop(name)

    def redrive(self, rows: int) -> None:
        from bench.redrive import measure_redrive
        from dlq_tui.migrate.runner import upgrade

        name = f"{self.args.db_prefix}_redrive_{rows}"
        dsn = self.server.create(name)
        engine = make_engine(dsn)
        try:
            for _event in upgrade(engine):
                pass
            res = measure_redrive(engine, rows)
            self.results["redrive"] = {
                "rows": rows,
                "seconds": res.seconds,
                "events_per_s": res.events_per_s,
                "redriven": res.redriven,
                "skipped": res.skipped,
                "failed": res.failed,
                "batches": res.batches,
                "repair_us": {k: v.as_dict() for k, v in res.repair_us.items()},
            }
            self.say(
                f"  redrive of {rows:,} repairable dead letters: {res.events_per_s:,.0f} events/s "
                f"({res.redriven:,} in {res.seconds:.2f} s, {res.batches} batches; {res.skipped} skipped, "
                f"{res.failed} failed)"
            )
            for label, spread in res.repair_us.items():
                self.say(f"    repair, {label:<36} {spread}")
        finally:
            engine.dispose()
            self.server.drop(name)

    def app(self, rows: int) -> None:
        from bench.app import measure_app
        from bench.table_keys import measure_table_keys

        dsn, engine = self.v7_database(rows)
        try:
            res = measure_app(dsn, pages=self.args.app_pages, startups=self.args.startup_repeats, say=self.say)
            res["table_keys"] = measure_table_keys(dsn, keys=self.args.table_keys, say=self.say)
            self.results["app"] = {"rows": rows, **res}
        finally:
            self.done_with(rows, engine)

    def write(self) -> None:
        self.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.results["machine"]["load_after"] = os.getloadavg()
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(json.dumps(self.results, indent=2, default=str))
        self.say(f"samples written to {self.args.out}")


def set_paging_indexes(engine: Engine, *, present: bool) -> None:
    """Drop dlq-tui's paging indexes (to measure the spec's indexes alone) or build them back."""
    from dlq_tui.db.schema import PAGING_INDEXES
    from dlq_tui.migrate.sql import paging_index_sql

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for name in PAGING_INDEXES:
            if present:
                if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
                    conn.execute(text(paging_index_sql(name)))
            else:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.execute(text("ANALYZE dead_letter_events"))


def _phases(phases: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) + ")"


def table_size(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT pg_size_pretty(pg_table_size('dead_letter_events')) || ' table, ' || "
                    "pg_size_pretty(pg_indexes_size('dead_letter_events')) || ' indexes'"
                )
            ).scalar_one()
        )


def machine(server: BenchServer) -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": server.version(),
        "load_before": os.getloadavg(),
        "server": "embedded" if server.handle is not None else mask_dsn(server.admin_dsn),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    which = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = which - set(ALL)
    if unknown:
        print(f"unknown measurement(s): {', '.join(sorted(unknown))}; choose from {', '.join(ALL)}")
        return 2
    server = open_server(args.dsn, args.pgdata)
    run = Run(args, server)
    run.say(f"machine: {run.results['machine']}")
    try:
        if "migration" in which:
            for rows in args.migration_sizes:
                run.migration(rows, args.duplicates)
        if "triage" in which:
            run.triage(args.triage_size[0])
        if which & {"pages", "health"}:
            for rows in args.sizes:
                run.reads(rows, which)
        if "redrive" in which:
            run.redrive(args.redrive_size[0])
        if "app" in which:
            run.app(args.app_size[0])
    finally:
        run.write()
        server.stop()
    return 0
