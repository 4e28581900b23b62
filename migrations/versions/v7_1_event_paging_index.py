"""dlq-tui's paging indexes on dead_letter_events (not in the spec; the marker stays '7').

ix_dlq_tui_pending_order (priority, created_at, id) WHERE NOT resolved, and ix_dlq_tui_event_order on
the same key for every row: an events page then costs the same at any depth and any table size (the
spec's (priority, resolved) index made each page sort a whole priority group). See dlq_tui/migrate/paging.py
and bench/BENCHMARKS.md.

Revision ID: v7_1
Revises: v7
"""

from __future__ import annotations

from alembic import op

from dlq_tui.migrate.paging import create_paging_indexes
from dlq_tui.migrate.revision import steps_for

revision = "v7_1"
down_revision = "v7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps = steps_for(op.get_context())
    steps.inspect()
    steps.run("paging_indexes", create_paging_indexes)


def downgrade() -> None:
    raise NotImplementedError("dlq-tui migrations are forward-only")
