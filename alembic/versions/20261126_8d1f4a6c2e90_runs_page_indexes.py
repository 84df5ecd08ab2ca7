"""indexes behind the paged Runs page: newest first, with or without a status filter

The Runs page reads 50 runs at a time, newest first, ending the order on the id so that runs
queued in the same instant never repeat or go missing between pages. (created_at, id) and
(status, created_at, id) let any page, the last of 50,000 runs included, be read off an
index; they replace the single-column indexes on created_at and status, which they cover.

Revision ID: 8d1f4a6c2e90
Revises: 5e0c1d2a7b44
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8d1f4a6c2e90"
down_revision: str | None = "5e0c1d2a7b44"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sync_runs_created_id", "sync_runs", ["created_at", "id"])
    op.create_index("ix_sync_runs_status_created", "sync_runs", ["status", "created_at", "id"])
    op.drop_index("ix_sync_runs_created_at", table_name="sync_runs")
    op.drop_index("ix_sync_runs_status", table_name="sync_runs")


def downgrade() -> None:
    op.create_index("ix_sync_runs_status", "sync_runs", ["status"])
    op.create_index("ix_sync_runs_created_at", "sync_runs", ["created_at"])
    op.drop_index("ix_sync_runs_status_created", table_name="sync_runs")
    op.drop_index("ix_sync_runs_created_id", table_name="sync_runs")
