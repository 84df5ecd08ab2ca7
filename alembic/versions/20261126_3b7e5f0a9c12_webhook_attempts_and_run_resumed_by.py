"""webhook events claimed per attempt; interrupted runs name the run that continues them

``webhook_events`` gets ``attempts``, ``worker`` and ``attempted_at``: each attempt to apply
an event claims it with a conditional update, so that exactly one process applies it, a
process that died while applying it is noticed, and an event that keeps failing ends
``failed`` after a bounded number of attempts instead of staying ``received`` forever.

``sync_runs.resumed_by`` names, on an interrupted run, the run that continues its stream
(the retry crash recovery queued), so that ``hub sync --wait`` follows it to its end.

Revision ID: 3b7e5f0a9c12
Revises: 8d1f4a6c2e90
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dashboard.models

revision: str = "3b7e5f0a9c12"
down_revision: str | None = "8d1f4a6c2e90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table rebuild on SQLite).
    op.add_column(
        "webhook_events", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("webhook_events", sa.Column("worker", sa.String(length=128), nullable=True))
    op.add_column(
        "webhook_events",
        sa.Column("attempted_at", dashboard.models.UTCDateTime(), nullable=True),
    )
    op.add_column("sync_runs", sa.Column("resumed_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch_op:
        batch_op.drop_column("resumed_by")
    with op.batch_alter_table("webhook_events") as batch_op:
        batch_op.drop_column("attempted_at")
        batch_op.drop_column("worker")
        batch_op.drop_column("attempts")
