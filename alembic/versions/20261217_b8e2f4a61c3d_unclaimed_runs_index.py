"""The queue the processes claim runs from gets an index of its own: only the runs no process
owns yet, oldest first. A claim reads its window of the oldest queued runs off its head,
whatever the planner's statistics say: with the status index, statistics taken before a burst
(a handful of queued runs) led it to read and sort the whole queue at every claim.

Revision ID: b8e2f4a61c3d
Revises: a7d3f0c2e915
Create Date: 2026-12-17 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b8e2f4a61c3d"
down_revision: str | None = "a7d3f0c2e915"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNCLAIMED = "status = 'queued' AND worker IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_sync_runs_unclaimed", "sync_runs", ["created_at", "id"], unique=False,
        postgresql_where=sa.text(UNCLAIMED), sqlite_where=sa.text(UNCLAIMED),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_sync_runs_unclaimed", table_name="sync_runs")
