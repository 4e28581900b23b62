"""Baseline: the pre-v7 objects the Cowrie pipeline creates (schema_state, dead_letter_events, its two indexes).

Created only when absent, so a database the Cowrie pipeline already wrote is adopted as it is.

Revision ID: v6_baseline
Revises:
"""

from __future__ import annotations

from alembic import op

from dlq_tui.migrate import work
from dlq_tui.migrate.revision import steps_for

revision = "v6_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps_for(op.get_context()).run("baseline", work.baseline)


def downgrade() -> None:
    raise NotImplementedError("dlq-tui migrations are forward-only")
