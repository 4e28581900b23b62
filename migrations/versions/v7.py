"""Schema v7: 12 columns, backfill, 8 indexes, 3 constraints, 2 tables, view, function, 2 triggers, marker.

PostgreSQL only; on SQLite it changes nothing but the marker. The order is the fast one (see
dlq_tui/migrate/work.py); every step does only what the catalog shows missing.

Revision ID: v7
Revises: v6_baseline
"""

from __future__ import annotations

from alembic import op

from dlq_tui.migrate import work
from dlq_tui.migrate.revision import steps_for

revision = "v7"
down_revision = "v6_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps = steps_for(op.get_context())
    steps.inspect()  # the catalog as it is now, inside this transaction
    work.v7(steps)


def downgrade() -> None:
    raise NotImplementedError("dlq-tui migrations are forward-only")
