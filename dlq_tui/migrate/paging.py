"""dlq-tui's own indexes for paging events (revision v7_1): not in the spec, added after v7.

The events screen pages pending events by (priority, created_at, id). The spec's only candidate,
ix_dead_letter_events_priority_resolved (priority, resolved), returns a priority group unordered, so
every page sorted the whole group (Incremental Sort): ~100 ms at 1M rows and growing with the table
(bench/BENCHMARKS.md). A partial index on exactly the paging key, over pending rows only, makes a page
read ~200 index entries at any depth; the full one serves the "include resolved" view the same way.
The schema marker stays '7': these indexes are ours, and the pipeline never needs them.
"""

from __future__ import annotations

from dlq_tui.db import schema
from dlq_tui.migrate.sql import EVENTS, paging_index_sql
from dlq_tui.migrate.steps import Outcome, Steps

SKIP_SQLITE = "PostgreSQL only"


def create_paging_indexes(steps: Steps, out: Outcome) -> None:
    """Create whichever paging index is missing (a no-op that says so when both exist)."""
    if not steps.postgres:
        out.skipped, out.detail = True, SKIP_SQLITE
        return
    cat = steps.cat
    missing = [name for name in schema.PAGING_INDEXES if name not in cat.indexes]
    for name in missing:
        steps.sql(paging_index_sql(name))
        cat.indexes[name] = (EVENTS, schema.PAGING_INDEXES[name][0])
    out.skipped = not missing
    out.detail = f"{len(missing)} created" if missing else "both present"
