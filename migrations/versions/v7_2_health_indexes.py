"""dlq-tui's health indexes on dead_letter_events (not in the spec; the marker stays '7').

ix_dlq_tui_pending_breakdown (reason, classification, priority) INCLUDE (retry_count) WHERE NOT resolved, and
ix_dlq_tui_resolved_at (resolved_at) WHERE resolved_at IS NOT NULL: the health screen's pending breakdowns and its
resolved-per-hour trend become index scans instead of passes over the whole table (write cost per pipeline
INSERT measured in bench/BENCHMARKS.md). One step creates every missing dlq-tui index, so a run from v7 builds
these in v7_1's step and this revision only acts on a database already stamped v7_1.

Revision ID: v7_2
Revises: v7_1
"""

from __future__ import annotations

from alembic import op

from dlq_tui.migrate.paging import create_health_indexes
from dlq_tui.migrate.revision import steps_for

revision = "v7_2"
down_revision = "v7_1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps = steps_for(op.get_context())
    steps.inspect()
    create_health_indexes(steps)


def downgrade() -> None:
    raise NotImplementedError("dlq-tui migrations are forward-only")
