"""`dlq-tui --migrate --online` killed at every distinct point of its sequence, then run again.

A kill is what an operator's kill -9 (or an OOM killer) does: the client process dies at once. When it
dies inside CREATE INDEX CONCURRENTLY the server does not notice and finishes the build on its own, so
the next run finds an index the dead run never saw complete; when instead the migrating backend is
terminated (pg_terminate_backend, a server restart) the build is left INVALID. Either way the next run
must finish the migration to exactly what the atomic `dlq-tui --migrate` makes of the same rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dlq_tui.db import schema
from dlq_tui.db.connect import make_engine
from dlq_tui.migrate import runner
from dlq_tui.migrate.online import online_dry_run, online_upgrade
from dlq_tui.migrate.steps import StepEvent
from tests.support import dbstates
from tests.support.migration_helpers import assert_same_as_atomic, finished

ROOT = Path(__file__).resolve().parents[2]
ROWS = 2000
DUPLICATED = tuple(range(10, 410, 10))  # 40 sources written twice; the copy of 20 is the older row
BATCH = 500
UNIQUE = schema.V7_UNIQUE_CONSTRAINT

# The online sequence's steps in the order they run (the order the "after_step" hook sees them).
STEPS = (
    "baseline",
    "add_columns",
    "backfill",
    "duplicate_keys",
    "create_indexes",
    "paging_indexes",
    "add_constraints",
    "create_tables",
    "create_view",
    "create_function",
    "create_triggers",
    "backfill_new_rows",
    "set_marker",
    "commit",
)


def _trace() -> list[tuple[str, str, int]]:
    """(hook, value, occurrence) as a run on the seed calls them: each step's end and each concurrent build.

    The unique index is built twice: its first build finds the duplicate sources, which are then cleared.
    """
    builds = {
        "duplicate_keys": [UNIQUE, UNIQUE],
        "create_indexes": list(schema.V7_EVENT_INDEXES),
        "paging_indexes": list(schema.OWN_INDEXES),
    }
    out: list[tuple[str, str, int]] = []
    for step in STEPS:
        for index in builds.get(step, []):
            out.append(("before_index", index, 1 + sum(1 for o in out if o[:2] == ("before_index", index))))
        out.append(("after_step", step, 1))
    return out


TRACE = _trace()


def _kill_points() -> list[Any]:
    """One test per distinct point of the sequence, each with how the run dies there.

    "now": in the hook (a step's end, the middle of the backfill). At a build: "before" it starts
    (unless that is the previous step's end again), "sigkill" while the server is inside it (the
    server finishes it alone), "terminate": its backend is terminated (the index is left INVALID).
    """
    points = [pytest.param("after_batch", str(2 * BATCH), 1, "now", id="mid-backfill")]
    for i, (hook, value, nth) in enumerate(TRACE):
        if hook == "after_step":
            points.append(pytest.param(hook, value, nth, "now", id=f"after-{value}"))
            continue
        name = value if value != UNIQUE else f"{value}-{'first' if nth == 1 else 'after-clearing-duplicates'}"
        modes = ("sigkill", "terminate") if TRACE[i - 1][0] == "after_step" else ("before", "sigkill", "terminate")
        points += [pytest.param(hook, value, nth, mode, id=f"{mode}-{name}") for mode in modes]
    return points


_KILLER = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import psycopg
    from dlq_tui.db.connect import make_engine
    from dlq_tui.migrate.online import online_upgrade

    dsn, hook, target, nth, mode, batch = sys.argv[1:7]
    seen, keep = [], []

    def die(why):
        print("KILLING", why, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def when_the_build_waits():
        with psycopg.connect(dsn, autocommit=True) as watcher:
            for _ in range(1000):
                row = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND wait_event_type = 'Lock' "
                    "AND query LIKE %s", ("CREATE %INDEX CONCURRENTLY " + target + " %",)
                ).fetchone()
                if row and mode == "terminate":
                    print("TERMINATING", target, flush=True)
                    watcher.execute("SELECT pg_terminate_backend(%s)", row)
                    return
                if row:
                    die(target)
                time.sleep(0.01)
        print("the build never started", flush=True)
        os._exit(3)

    def on(point):
        def fn(value):
            if point != hook or str(value) != target:
                return
            seen.append(value)
            if len(seen) != int(nth):
                return
            if mode in ("now", "before"):
                die(value)
            # A writer's open transaction holds the build in its first wait, with the index already
            # in the catalog; it ends when this process dies.
            blocker = psycopg.connect(dsn)
            blocker.execute("LOCK TABLE dead_letter_events IN ROW EXCLUSIVE MODE")
            keep.append(blocker)
            threading.Thread(target=when_the_build_waits, daemon=True).start()
        return fn

    hooks = {p: on(p) for p in ("after_step", "after_batch", "before_index")}
    for event in online_upgrade(make_engine(dsn), batch_size=int(batch), hooks=hooks):
        if event.status not in ("pending", "running"):
            print(event.name, event.status, event.detail, flush=True)
    print("never killed", flush=True)
    """
)


def _seed(engine: Engine) -> None:
    dbstates.make_legacy_v6(engine, ROWS)
    with engine.begin() as conn:
        dbstates.add_duplicate_sources(conn, DUPLICATED, earlier_id=20)


@pytest.fixture(scope="module")
def atomic(pg_server) -> Iterator[Engine]:
    """The same seed migrated by the atomic runner: what every resumed run must reach."""
    name = pg_server.create_database()
    engine = make_engine(pg_server.dsn_for(name))
    _seed(engine)
    for _event in runner.upgrade(engine):
        pass
    yield engine
    engine.dispose()
    pg_server.drop_database(name)


def run_online(engine: Engine, **kwargs: Any) -> list[StepEvent]:
    return [e for e in online_upgrade(engine, **kwargs) if e.status not in ("pending", "running")]


def _wait_for_orphaned_builds(dsn: str) -> None:
    """A dead client's CREATE INDEX CONCURRENTLY goes on in the server: let it end, as it would in real life."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(1000):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'CREATE %INDEX CONCURRENTLY%' AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchone()
            if busy == (0,):
                return
            time.sleep(0.01)
    raise AssertionError("a concurrent index build never ended")


def _index_state(engine: Engine, index: str) -> str:
    with engine.connect() as conn:
        valid = conn.execute(
            text("SELECT x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE i.relname = :n"),
            {"n": index},
        ).scalar()
    return "absent" if valid is None else "valid" if valid else "INVALID"


def test_the_kill_points_cover_the_whole_online_sequence(empty_engine: Engine) -> None:
    """A step or a concurrent build added to the online sequence needs its kill points here."""
    _seed(empty_engine)
    seen: list[tuple[str, str, int]] = []

    def record(hook: str, value: Any) -> None:
        seen.append((hook, str(value), 1 + sum(1 for s in seen if s[:2] == (hook, str(value)))))

    run_online(empty_engine, batch_size=BATCH, hooks={h: partial(record, h) for h in ("after_step", "before_index")})
    assert seen == TRACE


@pytest.mark.parametrize(("hook", "value", "nth", "mode"), _kill_points())
def test_killed_online_migration_resumes_to_the_atomic_end_state(
    empty_engine: Engine, empty_dsn: str, atomic: Engine, hook: str, value: str, nth: int, mode: str
) -> None:
    _seed(empty_engine)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, empty_dsn, hook, value, str(nth), mode, str(BATCH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if mode == "terminate":
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "lost the connection" in proc.stdout
    else:
        assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"KILLING {value}" in proc.stdout
    _wait_for_orphaned_builds(empty_dsn)
    left = None
    if hook == "before_index":
        # The server finishes a dead client's build, except the unique index's first: it meets the duplicates.
        left = {
            "before": "absent",
            "sigkill": "INVALID" if (value, nth) == (UNIQUE, 1) else "valid",
            "terminate": "INVALID",
        }[mode]
        assert _index_state(empty_engine, value) == left
    status = runner.check(empty_engine)
    done_before = hook == "after_step" and value in ("set_marker", "commit")
    assert status.current is done_before and status.marker == (7 if done_before else 6)
    if (value, nth, mode) == (UNIQUE, 2, "sigkill"):
        plan = finished(list(online_dry_run(empty_engine)))
        assert plan["backfill"].status == "skipped"
        assert (
            plan["duplicate_keys"].sql
            == f"ALTER TABLE dead_letter_events ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE};"
        )

    events = finished(run_online(empty_engine, batch_size=BATCH))
    assert events["commit"].detail.startswith(
        "already at v7; no schema change" if done_before else "migrated to v7 online in "
    )
    assert_same_as_atomic(empty_engine, atomic)
    assert runner.check(empty_engine).current
    if left == "INVALID":
        assert f"dropped INVALID {value}" in events["baseline"].detail
    # Until the constraint is attached, the resumed run settles the duplicate sources and says how many.
    if hook == "after_batch" or TRACE.index((hook, value, nth)) < TRACE.index(("after_step", "duplicate_keys", 1)):
        assert events["duplicate_keys"].detail.startswith(
            f"{len(DUPLICATED)} later duplicate sources left without key (oldest row keeps it); "
        )
    else:
        assert events["duplicate_keys"].detail == f"{UNIQUE} present (already done)"
    if hook == "after_batch":
        assert events["backfill"].detail.endswith(f"; {2 * BATCH:,} rows were already done")
    if value in schema.V7_EVENT_INDEXES:  # each resumed step says what it found done
        present = list(schema.V7_EVENT_INDEXES).index(value) + (left == "valid")
        detail = f"{8 - present} built concurrently" + (f" ({present} present)" if present else "")
        detail += f"; rebuilt INVALID {value}" if left == "INVALID" else ""
        assert events["create_indexes"].detail == (detail if present < 8 else "all 8 present (already done)")
    if (value, nth, mode) == (UNIQUE, 2, "sigkill"):  # the server finished the build the killed run started
        assert events["backfill"].detail.startswith("unique index from an earlier run in place")
        assert "found its unique index built by an earlier run" in events["duplicate_keys"].detail
