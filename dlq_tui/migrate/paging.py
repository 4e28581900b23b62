"""dlq-tui's own indexes: for paging events (revision v7_1) and for the health figures (v7_2); not in the spec.

The events screen pages pending events by (priority, created_at, id). The spec's only candidate,
ix_dead_letter_events_priority_resolved (priority, resolved), returns a priority group unordered, so
every page sorted the whole group (Incremental Sort): ~100 ms at 1M rows and growing with the table
(bench/BENCHMARKS.md). A partial index on exactly the paging key, over pending rows only, makes a page
read ~200 index entries at any depth; the full one serves the "include resolved" view the same way.
The schema marker stays '7': these indexes are ours, and the pipeline never needs them.

Revision v7_2 adds schema.HEALTH_INDEXES (see there). One step creates whichever of dlq-tui's indexes is missing,
so a run from v7 builds them all in one place, and a database stamped v7_1 gets the health ones from v7_2.
"""

from __future__ import annotations

from dlq_tui.db import schema
from dlq_tui.migrate.catalog import Catalog
from dlq_tui.migrate.sql import EVENTS, paging_index_sql
from dlq_tui.migrate.steps import Outcome, Steps

SKIP_SQLITE = "PostgreSQL only"


def missing_indexes(cat: Catalog) -> list[str]:
    return [name for name in schema.OWN_INDEXES if name not in cat.indexes]


def create_paging_indexes(steps: Steps, out: Outcome) -> None:
    """Create whichever of dlq-tui's indexes is missing (a no-op that says so when all exist)."""
    if not steps.postgres:
        out.skipped, out.detail = True, SKIP_SQLITE
        return
    cat = steps.cat
    missing = missing_indexes(cat)
    for name in missing:
        steps.sql(paging_index_sql(name))
        cat.indexes[name] = (EVENTS, schema.OWN_INDEXES[name][0])
    out.skipped = not missing
    out.detail = f"{len(missing)} created" if missing else "all present"


def create_health_indexes(steps: Steps) -> None:
    """Revision v7_2: silent when v7_1's step of this same run already built every dlq-tui index."""
    if "paging_indexes" in steps.reported and steps.postgres and not missing_indexes(steps.cat):
        return
    steps.run("paging_indexes", create_paging_indexes)
