"""The same 1M legacy rows migrated two ways: the spec's step order (as the existing tool runs it, with the
built-in sha256() instead of pgcrypto) and dlq-tui's runner. Same server, same seeded data (a template copy),
so the ratio says what the order is worth whatever the payload size.

    python -m bench.spec_order [ROWS]      (default 1,000,000; embedded throw-away server)
"""

from __future__ import annotations

import sys
import time

import psycopg
from sqlalchemy import text

from bench import seed
from bench.server import open_server
from dlq_tui.db import schema
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner
from dlq_tui.migrate.sql import HASH_SQL, key_sql


def spec_order_sql() -> list[str]:
    """The spec's nine steps in its order: columns, indexes, constraints, tables, view, function, triggers,
    then the two backfill UPDATEs (on a table that by now has every index and the trigger), then the marker."""
    sql = [
        f"ALTER TABLE dead_letter_events ADD COLUMN {name} {sqltype}"
        + (" NOT NULL" if not_null else "")
        + (f" DEFAULT {default}" if default else "")
        for name, (sqltype, not_null, default) in schema.V7_COLUMNS.items()
    ]
    sql += [f"CREATE INDEX {n} ON dead_letter_events ({', '.join(c)})" for n, c in schema.V7_EVENT_INDEXES.items()]
    sql += [
        f"ALTER TABLE dead_letter_events ADD CONSTRAINT {n} CHECK ({expr})"
        for n, expr in schema.V7_CHECK_CONSTRAINTS.items()
    ]
    sql.append(f"ALTER TABLE dead_letter_events ADD CONSTRAINT {schema.V7_UNIQUE_CONSTRAINT} UNIQUE (idempotency_key)")
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    for table in (schema.dlq_processing_metrics, schema.dlq_circuit_breaker_state):
        sql.append(str(CreateTable(table).compile(dialect=postgresql.dialect())))
        sql += [str(CreateIndex(ix).compile(dialect=postgresql.dialect())) for ix in table.indexes]
    sql += [schema.HEALTH_VIEW_SQL, schema.UPDATED_AT_FUNCTION_SQL]
    sql += [
        f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()"
        for trigger, table in schema.UPDATED_AT_TRIGGERS.items()
    ]
    sql.append(f"UPDATE dead_letter_events SET payload_checksum = {HASH_SQL} WHERE payload_checksum IS NULL")
    sql.append(
        f"UPDATE dead_letter_events SET idempotency_key = {key_sql('payload_checksum')} WHERE idempotency_key IS NULL"
    )
    sql.append("UPDATE schema_state SET value = '7' WHERE key = 'schema_version'")
    return sql


def main(rows: int) -> None:
    server = open_server(None, None)
    try:
        template = "bench_spec_template"
        server.create(template)
        engine = make_engine(server.dsn_for(template))
        report = seed.legacy(engine, rows)
        engine.dispose()
        print(f"seeded {rows:,} legacy rows in {report.total_s:.1f} s", flush=True)
        for label in ("dlq-tui runner", "spec order", "dlq-tui runner"):
            name = f"bench_spec_{int(time.time() * 1000)}"
            with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            engine = make_engine(server.dsn_for(name))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("CHECKPOINT"))
            started = time.perf_counter()
            if label == "spec order":
                with engine.begin() as conn:
                    for statement in spec_order_sql():
                        conn.exec_driver_sql(statement)
            else:
                for _ in runner.upgrade(engine):
                    pass
            elapsed = time.perf_counter() - started
            with engine.connect() as conn:
                missing = conn.execute(
                    text("SELECT count(*) FROM dead_letter_events WHERE payload_checksum IS NULL")
                ).scalar_one()
            print(f"{label:15} {elapsed:6.1f} s  (rows without checksum: {missing})", flush=True)
            engine.dispose()
            server.drop(name)
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
